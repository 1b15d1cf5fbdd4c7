"""What the lab's `flux bootstrap` installs: Flux v2.4.0's gotk-components objects."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from drtool.kube import apisurface
from drtool.lab.flux import components, manifests
from drtool.lab.k3s.server import _ensure_base_objects
from drtool.lab.api import Store

FLUX2 = Path("/work/.mirror/fluxcd+flux2/repo")


def _index(objs):
    return {(o["kind"], o["metadata"]["name"]): o for o in objs}


def test_default_install_objects():
    objs = components.components()
    idx = _index(objs)
    assert objs[0]["kind"] == "Namespace" and all(o["kind"] == "CustomResourceDefinition" for o in objs[1:11])
    for key in [("ResourceQuota", "critical-pods-flux-system"), ("ClusterRole", "crd-controller-flux-system"),
                ("ClusterRole", "flux-edit-flux-system"), ("ClusterRole", "flux-view-flux-system"),
                ("ClusterRoleBinding", "cluster-reconciler-flux-system"),
                ("ClusterRoleBinding", "crd-controller-flux-system"), ("NetworkPolicy", "allow-egress"),
                ("NetworkPolicy", "allow-scraping"), ("NetworkPolicy", "allow-webhooks"),
                ("Service", "source-controller"), ("Service", "notification-controller"),
                ("Service", "webhook-receiver"), ("ServiceAccount", "helm-controller"),
                ("Deployment", "kustomize-controller")]:
        assert key in idx, key
    crb = idx[("ClusterRoleBinding", "crd-controller-flux-system")]
    assert crb["roleRef"]["name"] == "crd-controller-flux-system"      # kustomize renames the reference too
    assert idx[("ClusterRoleBinding", "cluster-reconciler-flux-system")]["roleRef"]["name"] == "cluster-admin"
    assert not any(k == "Deployment" and n.startswith("image-") for k, n in idx)
    assert len([o for o in objs if o["kind"] == "CustomResourceDefinition"]) == 10
    dep = idx[("Deployment", "helm-controller")]["spec"]["template"]["spec"]
    assert dep["containers"][0]["image"] == "ghcr.io/fluxcd/helm-controller:v1.1.0"
    assert dep["priorityClassName"] == "system-cluster-critical"
    assert "priorityClassName" not in idx[("Deployment", "notification-controller")]["spec"]["template"]["spec"]
    for o in objs:
        assert o["metadata"]["labels"]["app.kubernetes.io/version"] == "v2.4.0"


def test_components_extra_adds_image_automation():
    objs = components.components(extra=("image-reflector-controller", "image-automation-controller"))
    idx = _index(objs)
    assert ("Deployment", "image-automation-controller") in idx
    assert ("CustomResourceDefinition", "imageupdateautomations.image.toolkit.fluxcd.io") in idx
    assert idx[("Deployment", "image-reflector-controller")]["spec"]["template"]["spec"]["containers"][0][
        "image"] == "ghcr.io/fluxcd/image-reflector-controller:v0.33.0"
    with pytest.raises(ValueError, match="^component tf-controller is not available$"):
        components.components(extra=("tf-controller",))


def test_every_component_object_is_of_a_served_kind():
    for o in components.components(extra=components.EXTRA_COMPONENTS):
        assert apisurface.lookup(o["apiVersion"], o["kind"]) is not None, o["kind"]


def test_manifests_module_delegates():
    assert manifests.components() == components.components()
    assert "# Components: source-controller,kustomize-controller,helm-controller,notification-controller" in \
        manifests.components_yaml()


def _flux2(path: str) -> list[dict]:
    text = subprocess.run(["git", "-C", str(FLUX2), "show", f"v2.4.0:{path}"], check=True, capture_output=True,
                          text=True).stdout
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.mark.skipif(not FLUX2.exists(), reason="no checkout of fluxcd/flux2")
def test_rbac_and_policies_match_flux2_v2_4_0():
    ours = _index(components.components())
    for f in ("allow-egress", "allow-scraping", "allow-webhooks"):
        real = _flux2(f"manifests/policies/{f}.yaml")[0]
        assert ours[("NetworkPolicy", f)]["spec"] == real["spec"], f
    for real in _flux2("manifests/rbac/controller.yaml") + _flux2("manifests/rbac/edit.yaml") + \
            _flux2("manifests/rbac/view.yaml") + _flux2("manifests/rbac/reconciler.yaml"):
        mine = ours[(real["kind"], real["metadata"]["name"] + "-flux-system")]
        if real["kind"] == "ClusterRole":
            assert mine["rules"] == real["rules"]
            for k, v in (real["metadata"].get("labels") or {}).items():
                assert mine["metadata"]["labels"][k] == v
        else:
            assert mine["subjects"] == real["subjects"]
    quota = _flux2("manifests/rbac/resourcequota.yaml")[0]
    assert ours[("ResourceQuota", "critical-pods-flux-system")]["spec"] == quota["spec"]


def test_k3s_server_registers_its_crds():
    store = Store()
    _ensure_base_objects(store)
    names = {o["metadata"]["name"] for o in store.iter_objects("apiextensions.k8s.io", "CustomResourceDefinition")}
    assert names == {"helmcharts.helm.cattle.io", "helmchartconfigs.helm.cattle.io", "addons.k3s.cattle.io",
                     "etcdsnapshotfiles.k3s.cattle.io"}
    assert store.kinds.by_kind("k3s.cattle.io", "ETCDSnapshotFile").namespaced is False


def test_reapplying_an_unchanged_crd_changes_nothing(monkeypatch):
    # kustomize-controller re-applies gotk-components on every reconcile; the CRD must not churn.
    from drtool.lab.api import store as store_module

    store = Store()
    crd = components.crds()[0]
    store.apply(crd)
    rv = store.resource_version
    # Later (timestamps have one-second resolution): a rewritten lastTransitionTime would show.
    monkeypatch.setattr(store_module, "now_rfc3339", lambda: "2999-01-01T00:00:00Z")
    store.apply(crd)
    assert store.resource_version == rv


def test_crd_versions_in_kubernetes_priority_order():
    # apiextensions-apiserver sortGroupDiscoveryByKubeAwareVersion: GA first, the first is preferred.
    store = Store()
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.io"},
           "spec": {"group": "example.io", "scope": "Namespaced",
                    "names": {"kind": "Widget", "plural": "widgets"},
                    "versions": [{"name": "v1beta1", "served": True, "storage": True},
                                 {"name": "v2alpha1", "served": True, "storage": False},
                                 {"name": "v1", "served": True, "storage": False}]}}
    created = store.create(crd)
    assert store.kinds.by_kind("example.io", "Widget").versions == ("v1", "v1beta1", "v2alpha1")
    assert created["status"]["storedVersions"] == ["v1beta1"]
