"""`inv lab.up --gitops PATH --path P`: rehearse the rebuild of the operator's own repo."""
from __future__ import annotations

import json

import pytest

from .fulllab import start_full_lab, stop_full_lab_dir
from .own_repos import hello_app, own_repo

pytestmark = pytest.mark.slow

def _mutate(data):
    data["flux"]["path"] = "clusters/mylab"
    data["expectations"] = {"kustomizations": ["apps"]}
    data["secrets"] = []
    data["timeouts"]["converge"] = "30s"


@pytest.mark.parametrize("broken", [False, True], ids=["own-repo", "broken-repo"])
def test_rebuild_of_an_operators_own_repo(tmp_path, broken):
    app = hello_app(replicas=2)
    repo = own_repo(tmp_path, "clusters/mylab", app + "---\nkind: [unclosed\n" if broken else app)
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
