"""Real kubectl against the lab API: the Kubernetes 1.31, K3s and Flux v2.4.0 API surface."""
from __future__ import annotations

import json
import subprocess
import time

import pytest

from drtool.kube import apisurface
from drtool.lab.flux import components
from drtool.lab.k3s.server import k3s_crds
from tests.lab.test_api_conformance import KUBECTL, TOKEN, ServerThread

pytestmark = [pytest.mark.lab, pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    state = tmp_path_factory.mktemp("surface")
    st = ServerThread(state_dir=state, tokens=[TOKEN], bookmark_interval=0.2)
    st.kubeconfig = state / "kubeconfig.yaml"
    # What the K3s server registers at start and what `flux bootstrap` installs.
    for obj in k3s_crds() + components.crds():
        st.call(st.server.store.create, obj)
    yield st
    st.close()


def kubectl(lab, *args, timeout=30, input_text=None):
    proc = subprocess.run([KUBECTL, "--kubeconfig", str(lab.kubeconfig), *args], capture_output=True, text=True,
                          timeout=timeout, input=input_text)
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def test_api_resources_lists_kubernetes_k3s_and_flux_kinds(lab):
    out = kubectl(lab, "api-resources", "--no-headers", "-o", "wide")
    rows = {}
    for line in out.splitlines():
        cols = line.split()
        rows.setdefault(cols[0], []).append(line)
    expected = [*apisurface.builtin_resources(), *apisurface.k3s_resources(), *apisurface.flux_resources()]
    missing = [r.resource for r in expected if r.plural not in rows]
    assert not missing, missing
    sc = " ".join(rows["storageclasses"][0].split())
    assert sc.startswith("storageclasses sc storage.k8s.io/v1 false StorageClass")
    assert any("helm.cattle.io/v1 true HelmChart" in " ".join(r.split()) for r in rows["helmcharts"])
    assert any("k3s.cattle.io/v1 false ETCDSnapshotFile" in " ".join(r.split()) for r in rows["etcdsnapshotfiles"])
    # kubectl shows the preferred version; a CRD's preferred one is its highest-priority served version.
    assert "kustomize.toolkit.fluxcd.io/v1 " in " ".join(rows["kustomizations"][0].split())
    assert "autoscaling/v2 " in " ".join(rows["horizontalpodautoscalers"][0].split())


def test_api_versions_include_flux_v1beta2_and_hpa_v1(lab):
    versions = set(kubectl(lab, "api-versions").split())
    assert {"kustomize.toolkit.fluxcd.io/v1beta2", "kustomize.toolkit.fluxcd.io/v1beta1",
            "helm.toolkit.fluxcd.io/v2beta1", "notification.toolkit.fluxcd.io/v1beta3", "autoscaling/v1",
            "policy/v1", "networking.k8s.io/v1", "helm.cattle.io/v1"} <= versions
    assert "image.toolkit.fluxcd.io/v1beta2" not in versions          # not without --components-extra


MANIFESTS = {
    "storageclass/local-fast": """apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local-fast}
provisioner: rancher.io/local-path
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
""",
    "clusterrole/reader": """apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
rules: [{apiGroups: [""], resources: [pods], verbs: [get, list, watch]}]
""",
    "networkpolicy/deny-all": """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: surface}
spec: {podSelector: {}, policyTypes: [Ingress]}
""",
    "ingress/web": """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: surface}
spec:
  rules:
  - host: web.lab
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}
""",
    "cronjob/nightly": """apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: surface}
spec:
  schedule: "0 3 * * *"
  jobTemplate: {spec: {template: {spec: {restartPolicy: Never, containers: [{name: c, image: busybox}]}}}}
""",
    "poddisruptionbudget/web": """apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: surface}
spec: {minAvailable: 1, selector: {matchLabels: {app: web}}}
""",
    "kustomizations.v1beta2.kustomize.toolkit.fluxcd.io/apps": """apiVersion: kustomize.toolkit.fluxcd.io/v1beta2
kind: Kustomization
metadata: {name: apps, namespace: surface}
spec: {interval: 10m, path: ./apps, prune: true, sourceRef: {kind: GitRepository, name: flux-system}}
""",
}


@pytest.mark.parametrize("ref", list(MANIFESTS))
def test_kubectl_create_get_list_watch(lab, ref, tmp_path):
    kubectl(lab, "create", "namespace", "surface") if "surface" not in kubectl(lab, "get", "ns", "-o", "name") else None
    resource, name = ref.split("/")
    namespaced = ["-n", "surface"] if "namespace: surface" in MANIFESTS[ref] else []
    watcher = subprocess.Popen([KUBECTL, "--kubeconfig", str(lab.kubeconfig), "get", resource, *namespaced, "-w",
                                "-o", "name", "--request-timeout=8s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        time.sleep(1.0)
        f = tmp_path / "obj.yaml"
        f.write_text(MANIFESTS[ref])
        assert "created" in kubectl(lab, "create", "-f", str(f))
        got = json.loads(kubectl(lab, "get", resource, name, *namespaced, "-o", "json"))
        assert got["metadata"]["name"] == name and got["metadata"]["uid"]
        listed = kubectl(lab, "get", resource, *namespaced, "-o", "name")
        assert name in listed
        time.sleep(1.0)
    finally:
        watcher.terminate()
        seen, _ = watcher.communicate(timeout=10)
    assert name in seen, f"watch of {resource} saw {seen!r}"


def test_flux_v1beta2_object_reads_back_as_v1(lab):
    got = json.loads(kubectl(lab, "get", "kustomizations.v1.kustomize.toolkit.fluxcd.io", "apps", "-n", "surface",
                             "-o", "json"))
    assert got["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"


def test_unknown_kind_is_no_match(lab, tmp_path):
    f = tmp_path / "issuer.yaml"
    f.write_text("apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata: {name: le}\nspec: {}\n")
    # --validate=false: the lab serves no /openapi/v2, which kubectl's client-side validation
    # of a kind missing from /openapi/v3 falls back to (README, differences from a real cluster).
    proc = subprocess.run([KUBECTL, "--kubeconfig", str(lab.kubeconfig), "create", "--validate=false", "-f", str(f)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert 'no matches for kind "ClusterIssuer" in version "cert-manager.io/v1"' in proc.stderr
