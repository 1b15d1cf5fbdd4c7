"""The recorded API surface: Kubernetes 1.31 GA kinds, K3s CRDs, Flux v2.4.0 CRDs."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from drtool.kube import apisurface

REPO = Path(__file__).resolve().parents[2]


def _by_kind(resources):
    return {(r.group, r.kind): r for r in resources}


def test_data_file_is_what_the_generator_makes_from_the_recorded_sources(tmp_path):
    out = tmp_path / "apisurface.yaml"
    subprocess.run([sys.executable, str(REPO / "scripts" / "gen_apisurface.py"), "--flux-from",
                    str(apisurface.DATA_FILE), "--output", str(out)], check=True)
    assert out.read_text() == apisurface.DATA_FILE.read_text()


@pytest.mark.parametrize("controller,tag", [("kustomize-controller", "v1.4.0"), ("helm-controller", "v1.1.0"),
                                            ("source-controller", "v1.4.1"), ("notification-controller", "v1.4.0")])
def test_flux_part_matches_the_controllers_crds_when_their_repositories_are_at_hand(controller, tag):
    repo = Path(f"/work/.mirror/fluxcd+{controller}/repo")
    if not repo.exists():
        pytest.skip(f"no checkout of fluxcd/{controller}")
    spec = importlib.util.spec_from_file_location("gen_apisurface", REPO / "scripts" / "gen_apisurface.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    recorded = yaml.safe_load(apisurface.DATA_FILE.read_text())["flux"]["components"][controller]
    assert recorded["version"] == tag
    assert gen.flux_from_git(controller, str(repo), tag) == recorded["resources"]


@pytest.mark.parametrize("group,kind,plural,namespaced,short,versions", [
    ("storage.k8s.io", "StorageClass", "storageclasses", False, ("sc",), ("v1",)),
    ("rbac.authorization.k8s.io", "ClusterRole", "clusterroles", False, (), ("v1",)),
    ("networking.k8s.io", "NetworkPolicy", "networkpolicies", True, ("netpol",), ("v1",)),
    ("networking.k8s.io", "Ingress", "ingresses", True, ("ing",), ("v1",)),
    ("batch", "CronJob", "cronjobs", True, ("cj",), ("v1",)),
    ("policy", "PodDisruptionBudget", "poddisruptionbudgets", True, ("pdb",), ("v1",)),
    ("autoscaling", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True, ("hpa",), ("v2", "v1")),
    ("", "ResourceQuota", "resourcequotas", True, ("quota",), ("v1",)),
    ("", "Endpoints", "endpoints", True, ("ep",), ("v1",)),
    ("apiextensions.k8s.io", "CustomResourceDefinition", "customresourcedefinitions", False, ("crd", "crds"), ("v1",)),
])
def test_builtin_kinds_as_kubernetes_1_31_discovery_lists_them(group, kind, plural, namespaced, short, versions):
    r = _by_kind(apisurface.builtin_resources())[(group, kind)]
    assert (r.plural, r.namespaced, r.short_names, r.versions) == (plural, namespaced, short, versions)


def test_builtins_are_ga_only_and_categories_kept():
    res = apisurface.builtin_resources()
    assert all("alpha" not in v and "beta" not in v for r in res for v in r.versions)
    kinds = _by_kind(res)
    assert kinds[("apps", "Deployment")].categories == ("all",)
    assert kinds[("admissionregistration.k8s.io", "ValidatingAdmissionPolicy")].categories == ("api-extensions",)
    assert kinds[("", "Namespace")].verbs == ("create", "delete", "get", "list", "patch", "update", "watch")
    assert len(res) == 58
    with pytest.raises(ValueError, match="1.30"):
        apisurface.builtin_resources("1.30")


def test_k3s_kinds():
    kinds = _by_kind(apisurface.k3s_resources())
    assert set(kinds) == {("helm.cattle.io", "HelmChart"), ("helm.cattle.io", "HelmChartConfig"),
                          ("k3s.cattle.io", "Addon"), ("k3s.cattle.io", "ETCDSnapshotFile")}
    assert kinds[("k3s.cattle.io", "ETCDSnapshotFile")].namespaced is False
    assert kinds[("helm.cattle.io", "HelmChart")].plural == "helmcharts"


def test_flux_v2_4_0_serves_the_old_versions_too():
    kinds = _by_kind(apisurface.flux_resources())
    assert kinds[("kustomize.toolkit.fluxcd.io", "Kustomization")].versions == ("v1", "v1beta2", "v1beta1")
    assert kinds[("helm.toolkit.fluxcd.io", "HelmRelease")].versions == ("v2", "v2beta2", "v2beta1")
    assert kinds[("source.toolkit.fluxcd.io", "OCIRepository")].versions == ("v1beta2",)
    assert kinds[("source.toolkit.fluxcd.io", "Bucket")].versions == ("v1", "v1beta2", "v1beta1")
    alert = kinds[("notification.toolkit.fluxcd.io", "Alert")]
    assert alert.versions == ("v1beta3", "v1beta2", "v1beta1") and alert.storage_version == "v1beta3"
    assert ("image.toolkit.fluxcd.io", "ImagePolicy") not in kinds


def test_flux_image_automation_kinds_only_with_components_extra():
    extra = ("image-reflector-controller", "image-automation-controller")
    kinds = _by_kind(apisurface.flux_resources(components_extra=extra))
    assert kinds[("image.toolkit.fluxcd.io", "ImageUpdateAutomation")].versions == ("v1beta2", "v1beta1")
    assert kinds[("image.toolkit.fluxcd.io", "ImagePolicy")].versions == ("v1beta2", "v1beta1")
    with pytest.raises(ValueError, match="unknown Flux component"):
        apisurface.flux_resources(components_extra=("nope-controller",))


def test_lookup():
    assert apisurface.lookup("kustomize.toolkit.fluxcd.io/v1beta2", "Kustomization").plural == "kustomizations"
    assert apisurface.lookup("networking.k8s.io/v1", "Ingress").resource == "ingresses.networking.k8s.io"
    assert apisurface.lookup("networking.k8s.io/v1beta1", "Ingress") is None   # removed in 1.22
    assert apisurface.lookup("cert-manager.io/v1", "ClusterIssuer") is None
    assert apisurface.lookup("image.toolkit.fluxcd.io/v1beta2", "ImagePolicy") is not None
    assert apisurface.lookup("image.toolkit.fluxcd.io/v1beta2", "ImagePolicy", components_extra=()) is None


def test_crd_object_of_a_flux_kind():
    ks = apisurface.lookup("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
    crd = ks.crd()
    assert crd["metadata"]["name"] == "kustomizations.kustomize.toolkit.fluxcd.io"
    assert [(v["name"], v["storage"], v.get("deprecated", False)) for v in crd["spec"]["versions"]] == [
        ("v1", True, False), ("v1beta2", False, True), ("v1beta1", False, True)]
    assert crd["spec"]["names"]["shortNames"] == ["ks"]
