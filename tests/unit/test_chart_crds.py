"""The chart → CRDs catalog."""
from __future__ import annotations

import pytest

from drtool.gitops import charts


def _kinds(crds):
    return sorted(c.kind for c in crds)


def test_cert_manager_installs_crds_only_when_asked():
    assert charts.crds_for_chart("cert-manager", "v1.16.2") == []
    got = charts.crds_for_chart("cert-manager", "v1.16.2", values={"crds": {"enabled": True}})
    assert _kinds(got) == ["Certificate", "CertificateRequest", "Challenge", "ClusterIssuer", "Issuer", "Order"]
    assert _kinds(charts.crds_for_chart("cert-manager", "1.15.3", values={"installCRDs": True})) == _kinds(got)
    issuer = [c for c in got if c.kind == "ClusterIssuer"][0]
    assert (issuer.group, issuer.plural, issuer.namespaced, issuer.versions) == (
        "cert-manager.io", "clusterissuers", False, ("v1",))


def test_version_ranges_pick_the_entry():
    v16 = charts.crds_for_chart("cert-manager", "v1.16.2", values={"installCRDs": True})
    v19 = charts.crds_for_chart("cert-manager", "v1.19.1", values={"installCRDs": True})
    assert [c.short_names for c in v16 if c.kind == "Issuer"] == [()]
    assert [c.short_names for c in v19 if c.kind == "Issuer"] == [("iss",)]
    # Past the last range: the nearest entry below; a range spec: the newest entry.
    assert charts.crds_for_chart("cert-manager", "v1.25.0", values={"installCRDs": True}) == v19
    assert charts.crds_for_chart("cert-manager", "1.x", values={"installCRDs": True}) == v19


@pytest.mark.parametrize("chart,version,kind,group", [
    ("kube-prometheus-stack", "65.1.1", "ServiceMonitor", "monitoring.coreos.com"),
    ("external-secrets", "0.10.4", "ClusterSecretStore", "external-secrets.io"),
    ("sealed-secrets", "2.16.1", "SealedSecret", "bitnami.com"),
    ("traefik", "33.0.0", "IngressRoute", "traefik.io"),
    ("traefik", "33.0.0", "HTTPRoute", "gateway.networking.k8s.io"),
    ("longhorn", "1.7.2", "RecurringJob", "longhorn.io"),
    ("cloudnative-pg", "0.22.1", "Cluster", "postgresql.cnpg.io"),
    ("kyverno", "3.3.4", "ClusterPolicy", "kyverno.io"),
    ("gateway-helm", "v1.2.8", "EnvoyProxy", "gateway.envoyproxy.io"),
])
def test_common_charts(chart, version, kind, group):
    assert any(c.kind == kind and c.group == group for c in charts.crds_for_chart(chart, version))


def test_gated_chart_off_by_value():
    assert charts.crds_for_chart("kube-prometheus-stack", "65.0.0", values={"crds": {"enabled": False}}) == []
    assert charts.crds_for_chart("unknown-chart", "1.0.0") == []


def test_overrides_win_for_their_chart(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("charts:\n- chart: cert-manager\n  crds:\n"
                 "  - {group: example.io, kind: Widget, plural: widgets, scope: Cluster, versions: [v1beta1, v1]}\n"
                 "- chart: my-app\n  versions: '>=2'\n"
                 "  crds: [{group: my.io, kind: Thing, plural: things, versions: [v1]}]\n")
    cat = charts.load_catalog(f)
    got = charts.crds_for_chart("cert-manager", "v1.16.2", overrides=cat)
    assert [(c.kind, c.namespaced, c.versions) for c in got] == [("Widget", False, ("v1", "v1beta1"))]
    assert _kinds(charts.crds_for_chart("my-app", "2.1.0", overrides=cat)) == ["Thing"]
    assert _kinds(charts.crds_for_chart("traefik", "33.0.0", overrides=cat))   # built-ins still there


@pytest.mark.parametrize("text,field", [
    ("charts: {}\n", "charts: expected a list"),
    ("charts:\n- chart: x\n  crds: [{group: g, kind: K, plural: Ks, versions: [v1]}]\n", "charts[0].crds[0].plural"),
    ("charts:\n- chart: x\n  crds: [{group: g, kind: K, plural: ks, versions: [one]}]\n", "charts[0].crds[0].versions"),
    ("charts:\n- chart: x\n  versions: 'not a range'\n  crds: []\n", "charts[0].versions"),
    ("charts:\n- chart: x\n  colour: red\n  crds: []\n", "charts[0].colour: unknown key"),
    ("nope: 1\n", "charts: required"),
])
def test_bad_catalog_names_file_and_field(tmp_path, text, field):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(charts.ChartCatalogError) as e:
        charts.load_catalog(f)
    assert str(e.value).startswith(f"{f}: ") and field in str(e.value)


def test_built_in_catalog_names_its_sources():
    cat = charts.default_catalog()
    assert {e.chart for e in cat.entries} >= {"cert-manager", "gateway-helm", "kube-prometheus-stack",
                                             "external-secrets", "sealed-secrets", "traefik", "longhorn",
                                             "cloudnative-pg", "kyverno"}
    assert all(" at " in e.source for e in cat.entries)


@pytest.mark.parametrize("chart,rng", [("cert-manager", ">=1.14.0,<1.18.0"), ("sealed-secrets", ">=2.16.0,<2.17.0")])
def test_catalog_entry_is_what_the_chart_files_say_when_they_are_at_hand(chart, rng):
    import importlib.util
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("gen_chart_crds", repo / "scripts" / "gen_chart_crds.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    _, _, source, tag, paths, *_ = next(c for c in gen.CHARTS if c[0] == chart and c[1] == rng)
    local = Path("/work/.mirror") / source.replace("/", "+") / "repo"
    if not local.exists():
        pytest.skip(f"no checkout of {source}")
    read = []
    for p in paths:
        for f in gen.files(str(local), tag, p):
            text = subprocess.run(["git", "-C", str(local), "show", f"{tag}:{f}"], check=True, capture_output=True,
                                  text=True).stdout
            read += [(c["group"], c["kind"], c["plural"], c["scope"] == "Namespaced") for c in gen.crds_in(text)]
    entry = next(e for e in charts.default_catalog().entries if e.chart == chart and e.versions == rng)
    assert sorted(read) == sorted((c.group, c.kind, c.plural, c.namespaced) for c in entry.crds)


def test_fixture_charts_are_covered_exactly():
    cat = charts.default_catalog()
    assert cat.entry_for("gateway-helm", "v1.4.6").versions == ">=1.4.0,<1.5.0"
    assert cat.entry_for("kube-prometheus-stack", "66.3.1").source.endswith("kube-prometheus-stack-66.3.1")
