"""`inv lab.up` for an operator's own repository and node names, then the README's rebuild
command (`inv rebuild -i .lab/inventory.yaml --yes`) on the inventory lab.up wrote."""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from drtool.lab.nodes import Lab
from drtool.lab.setup import lab_up

from .fulllab import FullLab, stop_full_lab_dir, write_inventory
from .own_repos import hello_app, own_repo
from .subnets import for_worker

pytestmark = pytest.mark.slow

def _lab(subnet: str) -> Lab:
    root = Path(tempfile.mkdtemp(prefix="drtool-labup-"))
    root.chmod(0o755)
    (root / "runs").mkdir()
    return Lab(root, subnet=for_worker(subnet))


def test_own_repo_and_node_names_rebuild_with_the_inventory_lab_up_wrote(tmp_path):
    repo = own_repo(tmp_path, "clusters/edge", hello_app(node="worker-1"))
    lab = _lab("127.0.196")
    try:
        lab_up(lab, gitops=str(repo), path="clusters/edge", names="cp-1,worker-1")
        inventory = lab.root / "inventory.yaml"
        data = yaml.safe_load(inventory.read_text())
        assert data["flux"]["path"] == "clusters/edge"
        assert data["expectations"] == {"kustomizations": ["flux-system", "apps"]}
        assert [n["name"] for n in data["nodes"]] == ["cp-1", "worker-1"]
        full = FullLab(lab, inventory, lab.root / "runs")
        res = full.inv("rebuild", "-i", str(inventory), "--yes", timeout=240)
        out = res.stdout + res.stderr
        assert res.returncode == 0, out[-3000:]
        run = full.runs_list()[-1]
        report = json.loads((run / "report.json").read_text())
        assert [(p["name"], p["outcome"]) for p in report["phases"]][-1] == ("converge", "ok")
        outcomes = {o["id"]: o["outcome"] for o in report["objects"]}
        assert outcomes["Kustomization/flux-system/apps"] == "ready"
        # Its only pod selects the operator's node name: Ready means it was scheduled there.
        assert outcomes["Deployment/web/hello"] == "ready"
        # Real kubectl against the rebuilt cluster (the simulated K3s server, after flux bootstrap).
        kubectl = shutil.which("kubectl")
        if kubectl:
            listed = subprocess.run([kubectl, "--kubeconfig", str(run / "kubeconfig"), "api-resources", "--no-headers"],
                                    capture_output=True, text=True, timeout=60)
            assert listed.returncode == 0, listed.stderr
            first = {line.split()[0] for line in listed.stdout.splitlines()}
            assert {"storageclasses", "networkpolicies", "cronjobs", "poddisruptionbudgets", "helmcharts",
                    "helmchartconfigs", "addons", "etcdsnapshotfiles", "kustomizations", "alerts"} <= first
            nodes = subprocess.run([kubectl, "--kubeconfig", str(run / "kubeconfig"), "get", "nodes", "-o", "name"],
                                   capture_output=True, text=True, timeout=60).stdout.split()
            assert nodes == ["node/cp-1", "node/worker-1"]
    finally:
        stop_full_lab_dir(lab)


def test_inventory_node_names_other_than_the_labs_still_reach_the_api(tmp_path):
    """The issue's case: lab nodes node1/node2, an inventory naming them node-1/node-2."""
    # A repository that pins nothing to node names (the fixture's PersistentVolumes pin node2,
    # which the GitOps check in preflight rightly refuses for an inventory without node2).
    repo = tmp_path / "tiny"
    (repo / "clusters" / "tiny").mkdir(parents=True)
    (repo / "clusters" / "tiny" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hello, namespace: default}\ndata: {a: b}\n")
    lab = _lab("127.0.195")
    try:
        lab_up(lab, 2, gitops=str(repo), path="clusters/tiny")
        full = FullLab(lab, lab.root / "renamed.yaml", lab.root / "runs")

        def rename(data):
            data["nodes"][0]["name"], data["nodes"][1]["name"] = "node-1", "node-2"
            data["flux"]["path"] = "clusters/tiny"
            data["expectations"] = {"kustomizations": ["flux-system"]}
        write_inventory(lab, full.inventory, agents=1, mutate=rename)
        # The fixture pins its PersistentVolumes to node2: the GitOps check rightly blocks the renamed
        # nodes; accepted here, since this test is about reaching the API.
        accept = [a for pv in ("llm-models", "loki-data")
                  for a in ("--accept", f"node-reference:infrastructure:PersistentVolume/{pv}")]
        res = full.inv("rebuild", "-i", str(full.inventory), "--yes", "--to", "nodes_ready", *accept, timeout=240)
        out = res.stdout + res.stderr
        assert res.returncode == 0, out[-3000:]
        assert "API not answering" not in out
    finally:
        stop_full_lab_dir(lab)


def test_lab_up_without_gitops_goes_back_to_the_fixture(tmp_path, capsys):
    repo = own_repo(tmp_path, "clusters/edge", hello_app())
    lab = _lab("127.0.194")
    try:
        lab_up(lab, 1, gitops=str(repo), path="clusters/edge")
        assert json.loads(lab.lab_json_path.read_text())["gitops"]["source"] == str(repo.resolve())
        capsys.readouterr()
        lab_up(lab, 1)
        assert f"no longer serves {repo.resolve()}" in capsys.readouterr().out
        gitops = json.loads(lab.lab_json_path.read_text())["gitops"]
        assert gitops["source"] is None and gitops["path"] == "clusters/homelab"
        assert yaml.safe_load((lab.root / "inventory.yaml").read_text())["flux"]["path"] == "clusters/homelab"
    finally:
        stop_full_lab_dir(lab)
