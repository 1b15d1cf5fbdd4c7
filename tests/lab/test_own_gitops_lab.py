"""`inv lab.up --gitops PATH --path P`: rehearse the rebuild of the operator's own repo."""
from __future__ import annotations

import json

import subprocess

import pytest

from .fulllab import start_full_lab, stop_full_lab_dir

pytestmark = pytest.mark.slow

KUSTOMIZATION = """apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: apps, namespace: flux-system}
spec:
  interval: 10m
  path: ./apps
  prune: true
  wait: true
  sourceRef: {kind: GitRepository, name: flux-system}
"""
APP = """apiVersion: v1
kind: Namespace
metadata: {name: web}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: hello, namespace: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      containers: [{name: hello, image: nginx:1.27}]
"""


def _own_repo(root, broken: bool = False):
    repo = root / "my-gitops"
    (repo / "clusters" / "mylab").mkdir(parents=True)
    (repo / "apps").mkdir()
    (repo / "clusters" / "mylab" / "apps.yaml").write_text(KUSTOMIZATION)
    (repo / "apps" / "hello.yaml").write_text(APP if not broken else APP + "---\nkind: [unclosed\n")
    for cmd in (["init", "-q", "-b", "main"], ["add", "-A"],
                ["-c", "user.name=op", "-c", "user.email=op@example.invalid", "commit", "-qm", "my cluster"]):
        subprocess.run(["git", *cmd], cwd=repo, check=True, capture_output=True, timeout=30)
    return repo


def _mutate(data):
    data["flux"]["path"] = "clusters/mylab"
    data["expectations"] = {"kustomizations": ["apps"]}
    data["secrets"] = []
    data["timeouts"]["converge"] = "30s"


@pytest.mark.parametrize("broken", [False, True], ids=["own-repo", "broken-repo"])
def test_rebuild_of_an_operators_own_repo(tmp_path, broken):
    repo = _own_repo(tmp_path, broken)
    full = start_full_lab("127.0.197", nodes=2, mutate=_mutate, gitops=str(repo), path="clusters/mylab")
    try:
        res = full.inv("rebuild", "-i", str(full.inventory), "--yes", timeout=240)
        reports = sorted(full.runs.glob("*/report.json"))
        report = json.loads(reports[-1].read_text()) if reports else {}
    finally:
        stop_full_lab_dir(full.lab)
    out = res.stdout + res.stderr
    if not broken:
        assert res.returncode == 0, out[-3000:]
        # The operator's own Kustomization was waited for and became Ready.
        outcomes = {o["id"]: o["outcome"] for o in report.get("objects", ())}
        assert outcomes.get("Kustomization/flux-system/apps") == "ready", outcomes
    else:
        # A repo that does not build is found by the GitOps check in preflight, before any node is
        # touched: exit 3, a clear message naming the Kustomization and the file, no traceback.
        assert res.returncode == 3, out[-3000:]
        assert "Traceback" not in out
        assert "Kustomization flux-system/apps does not build" in out and "hello.yaml" in out, out[-3000:]
