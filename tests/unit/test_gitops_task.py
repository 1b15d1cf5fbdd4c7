"""`inv gitops.check` as an operator runs it: exit codes, messages, JSON, --accept."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from drtool.inventory import load_inventory
from drtool.lab.gitops_repo import DEFAULT_REPOSITORY
from drtool.lab.nodes import Lab

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "gitops"
DEADLOCK = "crd-ordering:infrastructure:Gateway/envoy-gateway-system/public"


def _inventory(tmp_path: Path, checkout: str | None = None) -> Path:
    data = yaml.safe_load((REPO / "inventory" / "lab.yaml").read_text())
    data["flux"]["path"] = "clusters/test"
    data["flux"].pop("checkout", None)
    if checkout:
        data["flux"]["checkout"] = checkout
    path = tmp_path / "inv.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def inv(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "invoke", "gitops.check", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "COLUMNS": "200"})


def test_a_blocker_exits_3_naming_the_finding_its_file_and_fix(tmp_path):
    res = inv("-i", str(_inventory(tmp_path)), "--repo", str(FIXTURES / "crd-ordering"))
    assert res.returncode == 3, res.stdout + res.stderr
    assert DEADLOCK in res.stderr and "Traceback" not in res.stdout + res.stderr
    assert "infrastructure/gateway.yaml" in res.stdout and "fix: move" in res.stdout


def test_json_output_and_accept(tmp_path):
    res = inv("-i", str(_inventory(tmp_path, str(FIXTURES / "crd-ordering"))), "--json", "--accept", DEADLOCK)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["ok"] is True and out["accepted"] == [DEADLOCK] and out["blockers"] == 1
    assert out["findings"][0]["file"] == "infrastructure/gateway.yaml" and out["findings"][0]["accepted"] is True


def test_no_checkout_is_bad_input(tmp_path):
    res = inv("-i", str(_inventory(tmp_path)))
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "--repo" in res.stderr and "flux.checkout" in res.stderr
    res = inv("-i", str(_inventory(tmp_path)), "--repo", str(tmp_path / "missing"))
    assert res.returncode == 2 and "is not a directory" in res.stderr
    res = inv("-i", str(_inventory(tmp_path, str(tmp_path / "gone"))))
    assert res.returncode == 2 and "inv.yaml: flux.checkout:" in res.stderr and "Traceback" not in res.stderr


def test_the_lab_inventory_reads_the_repo_lab_up_creates():
    inv_ = load_inventory(REPO / "inventory" / "lab.yaml")
    assert inv_.resolve(inv_.flux.checkout) == (Lab().root / "gitops" / DEFAULT_REPOSITORY).resolve()


def test_the_inventory_lab_up_writes_points_gitops_check_at_the_served_repo(tmp_path):
    from drtool.gitops.check import checkout_of
    from drtool.lab.gitops_repo import fixture_dir
    from drtool.lab.lab_inventory import write_inventory
    from drtool.lab.nodes import LabNodeSpec

    gitops = {"default": str(fixture_dir()), "path": "clusters/homelab", "branch": "main", "owner": "lab",
              "repository": "homelab-gitops", "source": None}
    specs = [LabNodeSpec(n, f"127.0.80.{11 + i}", 2222, tmp_path / n) for i, n in enumerate(("node1", "node2"))]
    dest = write_inventory(tmp_path, specs, gitops)
    assert checkout_of(load_inventory(dest)) == fixture_dir()
    res = inv("-i", str(dest), "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["findings"] == [], res.stderr
