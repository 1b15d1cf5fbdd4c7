"""The lab's helm-controller registers the CRDs a chart installs (drtool/gitops/chart_crds.yaml)."""
from __future__ import annotations

from pathlib import Path

import pytest

from drtool.errors import BadInput
from drtool.lab.api import Store
from drtool.lab.controllers.chartcrds import chart_crd_objects, crd_policy, lab_catalog
from drtool.gitops.charts import default_catalog
from tests.unit.test_controllers import _eventually, _ks, _ready, _run

REPO = ("apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\n"
        "metadata: {name: charts, namespace: flux-system}\nspec: {url: 'https://charts.example'}\n")
NS = "apiVersion: v1\nkind: Namespace\nmetadata: {name: cert-manager}\n"


def _release(chart: str, version: str, values: str = "{}", extra: str = "") -> str:
    return ("apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\n"
            f"metadata: {{name: {chart}, namespace: cert-manager}}\n"
            f"spec: {{chart: {{spec: {{chart: {chart}, version: '{version}', sourceRef: {{kind: HelmRepository, "
            f"name: charts, namespace: flux-system}}}}}}, values: {values}{extra}}}\n")


ISSUER = "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata: {name: letsencrypt}\nspec: {selfSigned: {}}\n"
KS, HR, CRD = "kustomize.toolkit.fluxcd.io", "helm.toolkit.fluxcd.io", "apiextensions.k8s.io"


def test_release_brings_crds_that_a_later_kustomization_uses(tmp_path: Path) -> None:
    files = {"infra/repo.yaml": REPO, "infra/ns.yaml": NS,
             "infra/cm.yaml": _release("cert-manager", "v1.16.2", "{crds: {enabled: true}}"),
             "issuers/issuer.yaml": ISSUER}

    async def body(store: Store, repo: Path) -> None:
        store.create(_ks("infra", "./infra", wait=True))
        store.create(_ks("issuers", "./issuers", dependsOn=[{"name": "infra"}]))
        cond = await _eventually(lambda: (c := _ready(store, KS, "Kustomization", "flux-system", "issuers"))
                                 and c["status"] == "True" and c)
        assert cond
        crd = store.get(CRD, "CustomResourceDefinition", None, "clusterissuers.cert-manager.io")
        assert crd["metadata"]["labels"]["helm.toolkit.fluxcd.io/name"] == "cert-manager"
        assert crd["spec"]["scope"] == "Cluster"
        assert store.get("cert-manager.io", "ClusterIssuer", None, "letsencrypt") is not None
        assert store.get(CRD, "CustomResourceDefinition", None, "orders.acme.cert-manager.io") is not None

    _run(tmp_path, {}, body, files)


def test_without_the_crds_value_the_issuer_has_no_kind(tmp_path: Path) -> None:
    files = {"infra/repo.yaml": REPO, "infra/ns.yaml": NS, "infra/cm.yaml": _release("cert-manager", "v1.16.2"),
             "issuers/issuer.yaml": ISSUER}

    async def body(store: Store, repo: Path) -> None:
        store.create(_ks("infra", "./infra", wait=True))
        store.create(_ks("issuers", "./issuers", dependsOn=[{"name": "infra"}]))
        await _eventually(lambda: (_ready(store, HR, "HelmRelease", "cert-manager", "cert-manager") or {})
                          .get("status") == "True")
        cond = await _eventually(lambda: (c := _ready(store, KS, "Kustomization", "flux-system", "issuers"))
                                 and c["status"] == "False" and "ClusterIssuer" in c["message"] and c)
        assert 'no matches for kind "ClusterIssuer" in version "cert-manager.io/v1"' in cond["message"]
        assert store.get(CRD, "CustomResourceDefinition", None, "clusterissuers.cert-manager.io") is None

    _run(tmp_path, {}, body, files)


def test_scenario_overrides_the_catalog(tmp_path: Path) -> None:
    scenario = {"chart_crds": [{"chart": "widgets", "crds": [
        {"group": "widgets.example.io", "kind": "Widget", "plural": "widgets", "scope": "Namespaced",
         "versions": ["v1beta1", "v1"]}]}]}
    files = {"infra/repo.yaml": REPO, "infra/ns.yaml": NS, "infra/w.yaml": _release("widgets", "1.0.0")}

    async def body(store: Store, repo: Path) -> None:
        store.create(_ks("infra", "./infra", wait=True))
        await _eventually(lambda: (_ready(store, HR, "HelmRelease", "cert-manager", "widgets") or {})
                          .get("status") == "True")
        info = store.kinds.by_kind("widgets.example.io", "Widget")
        assert info is not None and info.versions == ("v1", "v1beta1")

    _run(tmp_path, scenario, body, files)


def _hr(chart, version, spec=None):
    return {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": chart, "namespace": "x"}, "spec": spec or {}}


def test_crds_directory_follows_the_install_and_upgrade_policy() -> None:
    cat = default_catalog()
    assert len(chart_crd_objects(cat, "traefik", "33.0.0", _hr("traefik", "33.0.0"), "install")) == 23
    assert chart_crd_objects(cat, "traefik", "33.0.0", _hr("traefik", "33.0.0", {"install": {"crds": "Skip"}}),
                             "install") == []
    assert chart_crd_objects(cat, "traefik", "33.0.0", _hr("traefik", "33.0.0", {"install": {"skipCRDs": True}}),
                             "install") == []
    assert chart_crd_objects(cat, "traefik", "33.0.0", _hr("traefik", "33.0.0"), "upgrade") == []
    assert crd_policy({"upgrade": {"crds": "CreateReplace"}}, "upgrade") == "CreateReplace"
    # Templated CRDs (kube-prometheus-stack's are in a sub-chart's crds/, cert-manager's in templates/):
    cm = _hr("cert-manager", "v1.16.2", {"values": {"installCRDs": True}, "install": {"crds": "Skip"}})
    assert len(chart_crd_objects(cat, "cert-manager", "v1.16.2", cm, "install")) == 6


def test_lab_json_catalog_file_and_bad_file(tmp_path: Path) -> None:
    f = tmp_path / "charts.yaml"
    f.write_text("charts:\n- chart: traefik\n  crds: [{group: t.io, kind: Route, plural: routes, versions: [v1]}]\n")
    cat = lab_catalog({"chart_crds": str(f)})
    assert [c.kind for c in cat.crds_for_chart("traefik", "33.0.0")] == ["Route"]
    f.write_text("charts:\n- chart: traefik\n  crds: [{group: t.io, kind: Route, versions: [v1]}]\n")
    with pytest.raises(ValueError, match=r"charts\[0\]\.crds\[0\]\.plural: required"):
        lab_catalog({"chart_crds": str(f)})


def test_bad_chart_crds_in_a_scenario_is_bad_input(tmp_path: Path) -> None:
    from drtool.lab.scenarios import parse_scenario
    with pytest.raises(BadInput, match=r"chart_crds\[0\]\.crds\[0\]\.scope: expected Namespaced or Cluster"):
        parse_scenario({"name": "x", "chart_crds": [{"chart": "c", "crds": [
            {"group": "g.io", "kind": "K", "plural": "ks", "scope": "Global", "versions": ["v1"]}]}]}, "s.yaml")
