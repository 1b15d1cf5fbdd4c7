"""The GitOps check in a real rebuild's preflight: a CRD-ordering deadlock stops it before K3s is touched."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .fulllab import REPO, FullLab, start_full_lab, stop_full_lab_dir

pytestmark = pytest.mark.slow

FIXTURE = REPO / "tests" / "fixtures" / "gitops" / "crd-ordering"
DEADLOCK = "crd-ordering:infrastructure:Gateway/envoy-gateway-system/public"
# What K3s's install puts on a node and a reinstall would rewrite (not the datastore, which a
# running server keeps writing).
K3S_PATHS = ("etc/rancher", "etc/systemd/system", "usr/local/bin", "var/lib/rancher/k3s/server/tls",
             "var/lib/rancher/k3s/server/token", "mnt")


def _mutate(data):
    data["flux"]["path"] = "clusters/test"
    data["expectations"] = {"kustomizations": ["infrastructure"]}
    data["timeouts"]["converge"] = "15s"


def _nodes(kubeconfig: Path) -> str:
    """Node names with their uids, read through the API of the cluster the first run built."""
    out = subprocess.run([sys.executable, "-c", (
        "from drtool.kube.client import api_client_from_kubeconfig, KubeTransport;"
        f"t=KubeTransport(api_client_from_kubeconfig({str(kubeconfig)!r}));"
        "print(sorted((n['metadata']['name'], n['metadata']['uid']) for n in t.get_json('/api/v1/nodes')['items']))")],
        capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture(scope="module")
def deadlock_lab():
    full = start_full_lab("127.0.150", nodes=2, mutate=_mutate, gitops=str(FIXTURE), path="clusters/test")
    yield full
    stop_full_lab_dir(full.lab)


def test_accepted_deadlock_goes_on_and_the_report_records_it_then_without_accept_it_stops_in_preflight(
        deadlock_lab: FullLab):
    full = deadlock_lab
    # 1. Accepted: the rebuild goes on, and the deadlock is real: infrastructure never becomes Ready.
    first = full.inv("rebuild", "-i", str(full.inventory), "--yes", "--accept", DEADLOCK, timeout=300)
    out = first.stdout + first.stderr
    assert first.returncode == 4, out[-3000:]
    run1 = full.runs_list()[-1]
    report = json.loads((run1 / "report.json").read_text())
    check = report["gitops_check"]
    assert check["accepted"] == [DEADLOCK]
    assert [(f["id"], f["accepted"], f["file"]) for f in check["findings"]] == [
        (DEADLOCK, True, "infrastructure/gateway.yaml")]
    assert DEADLOCK in (run1 / "report.md").read_text()
    assert json.loads((run1 / "gitops-check.json").read_text())["findings"][0]["id"] == DEADLOCK

    # 2. Not accepted: the old cluster is running; the rebuild stops in preflight and K3s is untouched.
    before = {n: full.tree_digest(n, *K3S_PATHS) for n in ("node1", "node2")}
    assert before["node1"] and any("k3s" in p for p in before["node1"])
    nodes_before = _nodes(run1 / "kubeconfig")
    second = full.inv("rebuild", "-i", str(full.inventory), "--yes", timeout=120)
    out = second.stdout + second.stderr
    assert second.returncode == 3, out[-3000:]
    assert DEADLOCK in second.stderr and "--accept" in second.stderr and "Traceback" not in out
    assert "infrastructure/gateway.yaml" in out and "dependsOn" in out
    run2 = full.runs_list()[-1]
    journal = json.loads((run2 / "journal.json").read_text())
    assert journal["stopped_at"] == "preflight" and [p["name"] for p in journal["phases"]] == ["preflight"]
    assert journal["gitops_check"]["live"] is True  # the old cluster answered and was read
    commands = (run2 / "commands.log").read_text()
    assert "uninstall" not in commands and "install.sh" not in commands
    assert {n: full.tree_digest(n, *K3S_PATHS) for n in ("node1", "node2")} == before
    assert _nodes(run1 / "kubeconfig") == nodes_before  # the same cluster still serves


def test_a_drill_stops_in_preflight_and_its_outputs_list_the_finding(deadlock_lab: FullLab, tmp_path):
    full = deadlock_lab
    junit = tmp_path / "drill-junit.xml"
    res = full.inv("drill", "-i", str(full.inventory), "--junit", str(junit), timeout=120)
    out = res.stdout + res.stderr
    assert res.returncode == 3, out[-3000:]
    assert DEADLOCK in res.stderr
    run = full.runs_list()[-1]
    outputs = json.loads((run / "drill-outputs.json").read_text())
    assert [(f["id"], f["accepted"]) for f in outputs["gitops_check"]["findings"]] == [(DEADLOCK, False)]
    xml = junit.read_text()
    assert f'name="gitops_check.{DEADLOCK}"' in xml and "gitops-blocker" in xml


def test_inv_preflight_alone_runs_the_gitops_check_too(deadlock_lab: FullLab):
    """`inv preflight` is the same preflight as the rebuild's: a blocker exits 3, --accept lets it pass."""
    full = deadlock_lab
    refused = full.inv("preflight", "-i", str(full.inventory), timeout=120)
    out = refused.stdout + refused.stderr
    assert refused.returncode == 3, out[-3000:]
    assert DEADLOCK in refused.stderr and "--accept" in refused.stderr and "Traceback" not in out
    assert "infrastructure/gateway.yaml" in refused.stdout
    accepted = full.inv("preflight", "-i", str(full.inventory), "--json", "--accept", DEADLOCK, timeout=120)
    assert accepted.returncode == 0, (accepted.stdout + accepted.stderr)[-3000:]
    check = json.loads(accepted.stdout)["gitops_check"]
    assert check["accepted"] == [DEADLOCK] and [f["id"] for f in check["findings"]] == [DEADLOCK]
