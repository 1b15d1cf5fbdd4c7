"""End to end on the cost model: without the image cache (``images.keep: false``) every pod pulls
its chart's images again, and the rebuild's report charges those pulls, read from the kubelet's
Events, to image pulls in "Where the time went"."""
from __future__ import annotations


import pytest
import yaml

from drtool.lab.scenarios import builtin_scenario_path

from .faults_support import rebuild
from .fulllab import full_lab_with_scenario

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


def _no_cache(data: dict) -> None:
    data.setdefault("images", {})["keep"] = False


@pytest.fixture(scope="module")
def lab2():
    # homelab-costs played slower (0.25 instead of 0.05) over a 25 Mbit/s link: a pull then takes
    # as many lab seconds as model seconds at 100 Mbit/s (Loki's image: 2.8 s), and the kubelet's
    # Events, stamped in whole seconds as real ones are, can time it.
    data = yaml.safe_load(builtin_scenario_path("homelab-costs").read_text())
    data.update(name="homelab-costs-slower", time_scale=0.25)
    data["images"]["bandwidth_mbit"] = 25
    with full_lab_with_scenario("127.0.218", "where-time-went", data, nodes=2, mutate=_no_cache) as full:
        yield full


def test_a_rebuild_without_kept_images_shows_the_pulls_where_the_time_went(lab2):
    out = rebuild(lab2, timeout=300)
    assert out.code == 0, out.tail()
    report = out.report()
    pulls = [s for s in report["critical_time"] if s["cause"] == "image_pull"]
    assert pulls, report["critical_time"]
    assert report["critical_time_by_cause"]["image_pull"] >= 1.0, report["critical_time_by_cause"]
    assert abs(sum(s["duration_s"] for s in report["critical_time"]) - report["recovery_s"]) < 0.05
    md = (out.run / "report.md").read_text()
    where = md.split("## Where the time went", 1)[1].split("\n## ", 1)[0]
    assert "| image pull |" in where and "image pulls 0s" not in where, where
    # Nothing was given back: the install and join say so, no reuse recorded.
    phases = {p["name"]: p for p in out.journal()["phases"]}
    assert "images_reused" not in phases["install_servers"]["details"]
