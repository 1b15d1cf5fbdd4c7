"""The GitOps check on one fixture repository per finding kind, and on the lab's homelab repo."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from drtool.gitops.check import LiveSnapshot, run_check
from drtool.gitops.check.findings import KINDS
from drtool.inventory import parse_inventory
from drtool.lab.gitops_repo import fixture_dir

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "gitops"
LAB_INVENTORY = REPO / "inventory" / "lab.yaml"


def inventory(path: str = "clusters/test", **changes):
    data = yaml.safe_load(LAB_INVENTORY.read_text())
    data["flux"]["path"] = path
    for dotted, value in changes.items():
        section, _, key = dotted.partition("__")
        data.setdefault(section, {})[key] = value
    return parse_inventory(data, LAB_INVENTORY)


def check(name: str, live: LiveSnapshot | None = None, **inv_changes):
    return run_check(inventory(**inv_changes), FIXTURES / name, live)


def only(result, kind: str, subject_part: str):
    found = [f for f in result.findings if f.kind == kind and subject_part in f.subject]
    assert found, f"no {kind} finding about {subject_part}: {[f.id for f in result.findings]}"
    return found[0]


def test_the_labs_homelab_repository_gives_no_finding():
    result = run_check(inventory("clusters/homelab"), fixture_dir())
    assert result.findings == [], [f.id for f in result.findings]
    assert result.kustomizations == 3  # flux-system, infrastructure, workloads


def test_every_finding_kind_has_a_fixture():
    assert sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()) == sorted(KINDS)


def test_crd_ordering_deadlock_names_the_file_and_the_fix():
    f = only(check("crd-ordering"), "crd-ordering", "Gateway/envoy-gateway-system/public")
    assert f.severity == "blocker"
    assert f.kustomization == "flux-system/infrastructure"
    assert f.file == "infrastructure/gateway.yaml"
    assert "HelmRelease/envoy-gateway-system/eg" in f.message and "deadlock" in f.message
    assert "dependsOn" in f.fix and "infrastructure" in f.fix
    assert f.id == "crd-ordering:infrastructure:Gateway/envoy-gateway-system/public"


def test_crd_ordering_is_fixed_by_a_kustomization_that_depends_on_the_helmrelease(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / "crd-ordering", repo)
    (repo / "infrastructure" / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [namespace.yaml, envoy-gateway.yaml]\n")
    (repo / "config").mkdir()
    shutil.move(repo / "infrastructure" / "gateway.yaml", repo / "config" / "gateway.yaml")
    (repo / "clusters" / "test" / "config.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": "config", "namespace": "flux-system"},
        "spec": {"interval": "10m", "path": "./config", "prune": True, "dependsOn": [{"name": "infrastructure"}],
                 "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}}))
    result = run_check(inventory(), repo)
    assert result.findings == [], [f.id for f in result.findings]


def _widget_repo(tmp_path) -> Path:
    """A chart the catalog does not know (my-operator) and its custom resource in one Kustomization."""
    repo = tmp_path / "widgets"
    shutil.copytree(FIXTURES / "crd-ordering", repo)
    (repo / "infrastructure" / "gateway.yaml").write_text(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: envoy-gateway-system}\n")
    text = (repo / "infrastructure" / "envoy-gateway.yaml").read_text()
    (repo / "infrastructure" / "envoy-gateway.yaml").write_text(text.replace("name: eg", "name: my-operator")
                                                                .replace("gateway-helm", "my-operator"))
    return repo


def test_crd_ordering_learns_from_the_live_cluster_which_release_installed_a_crd(tmp_path):
    repo = _widget_repo(tmp_path)
    # Without the live cluster the check cannot tell whether my-operator installs the CRD: a warning.
    offline = only(run_check(inventory(), repo), "crd-ordering", "Widget/")
    assert offline.severity == "warning" and "HelmRelease/envoy-gateway-system/my-operator" in offline.message
    assert "deadlock" in offline.message
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com", "labels": {"app.kubernetes.io/managed-by": "Helm"},
                        "annotations": {"meta.helm.sh/release-name": "my-operator",
                                        "meta.helm.sh/release-namespace": "envoy-gateway-system"}},
           "spec": {"group": "example.com", "names": {"kind": "Widget", "plural": "widgets"},
                    "versions": [{"name": "v1", "served": True, "storage": True}]}}
    live = run_check(inventory(), repo, LiveSnapshot({"CustomResourceDefinition": [crd]}))
    f = only(live, "crd-ordering", "Widget/")
    assert f.severity == "blocker" and "HelmRelease/envoy-gateway-system/my-operator" in f.message
    assert f.file == "infrastructure/gateway.yaml"


def test_api_versions_not_served_in_objects_and_health_checks():
    result = check("api-version")
    hpa = only(result, "api-version", "HorizontalPodAutoscaler/web/web")
    assert hpa.severity == "blocker" and hpa.file == "apps/web.yaml"
    assert "autoscaling/v2beta2" in hpa.message and hpa.fix == "change apiVersion to autoscaling/v2"
    hc = only(result, "api-version", "healthCheck Deployment/web/web")
    assert hc.file == "clusters/test/apps.yaml" and "apps/v1" in hc.fix


def test_node_references_against_inventory_names_labels_and_taints():
    result = check("node-reference")
    pv = only(result, "node-reference", "PersistentVolume/models")
    assert pv.severity == "blocker" and pv.file == "storage/volumes.yaml"
    assert "node-2" in pv.message and "did you mean node2" in pv.message and "node2" in pv.fix
    gpu = only(result, "node-reference", "Deployment/ml/trainer")
    assert gpu.severity == "warning" and "accelerator=gpu" in gpu.message and "--node-label" in gpu.fix
    taint = only(result, "node-reference", "Deployment/ml/heavy")
    assert "heavy=true:NoSchedule" in taint.message and "toleration" in taint.fix


def test_inputs_outside_git_are_blockers_unless_optional():
    result = check("outside-git")
    subjects = {f.subject: f for f in result.findings if f.kind == "outside-git"}
    for blocker in ("Secret/flux-system/sops-gpg", "Secret/flux-system/cluster-secrets", "Secret/app/app-values",
                    "Secret/flux-system/chart-credentials"):
        assert subjects[blocker].severity == "blocker", blocker
        assert "secrets:" in subjects[blocker].fix
    assert subjects["Secret/flux-system/cluster-secrets"].file == "clusters/test/apps.yaml"
    assert subjects["Secret/app/app-values"].file == "apps/app.yaml"
    assert subjects["Secret/app/registry-login"].severity == "warning"
    # optional references are not findings
    assert not any("optional-vars" in s or "app-extra" in s for s in subjects)


def test_a_secret_the_inventory_restores_is_not_a_finding():
    restored = [{"name": "sops-gpg", "namespace": "flux-system", "from_file": "x.asc"},
                {"name": "cluster-secrets", "namespace": "flux-system", "from_file": "vars.env"}]
    data = yaml.safe_load(LAB_INVENTORY.read_text())
    data["flux"]["path"] = "clusters/test"
    data["secrets"] = restored
    result = run_check(parse_inventory(data, LAB_INVENTORY), FIXTURES / "outside-git")
    subjects = {f.subject for f in result.findings}
    assert "Secret/flux-system/sops-gpg" not in subjects and "Secret/flux-system/cluster-secrets" not in subjects
    assert "Secret/app/app-values" in subjects


def test_live_only_secret_is_said_to_exist_only_in_the_cluster():
    live = LiveSnapshot({"Secret": [{"kind": "Secret", "metadata": {"name": "app-values", "namespace": "app"}}]})
    f = only(check("outside-git", live), "outside-git", "Secret/app/app-values")
    assert "exists only in the live cluster" in f.message


def _deployment(name, ns, labels=None, owner=False):
    meta = {"name": name, "namespace": ns, "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": "x"}]
    return {"kind": "Deployment", "metadata": meta}


def test_drift_hand_made_objects_and_suspended_reconcilers():
    live = LiveSnapshot({
        "Deployment": [_deployment("debug-shell", "web"),
                       _deployment("from-flux", "web", {"kustomize.toolkit.fluxcd.io/name": "apps"}),
                       _deployment("from-helm", "web", {"app.kubernetes.io/managed-by": "Helm"}),
                       _deployment("coredns", "kube-system")],
        "Kustomization": [{"kind": "Kustomization", "metadata": {"name": "apps", "namespace": "flux-system"},
                           "spec": {"suspend": True}}],
        "Secret": [{"kind": "Secret", "type": "helm.sh/release.v1", "metadata": {"name": "sh.helm.release.v1.cache.v1", "namespace": "web"}},
                   {"kind": "Secret", "type": "Opaque", "metadata": {"name": "sops-age", "namespace": "flux-system"}}],
    })
    result = check("drift", live)
    drift = {f.subject: f for f in result.findings if f.kind == "drift"}
    assert set(drift) == {"Deployment/web/debug-shell", "Kustomization/flux-system/apps", "HelmRelease/web/cache"}
    assert "will not come back" in drift["Deployment/web/debug-shell"].message
    assert "suspended in the live cluster" in drift["Kustomization/flux-system/apps"].message
    git = drift["HelmRelease/web/cache"]
    assert git.file == "apps/web.yaml" and "suspend" in git.fix
    assert all(f.severity == "warning" for f in drift.values())


def test_data_under_the_data_dir_and_outside_protected_paths():
    live_pv = {"kind": "PersistentVolume", "metadata": {"name": "pvc-1234"},
               "spec": {"hostPath": {"path": "/var/lib/rancher/k3s/storage/pvc-1234_db_postgres-data"},
                        "claimRef": {"namespace": "db", "name": "postgres-data"}},
               "status": {"phase": "Bound"}}
    result = check("data", LiveSnapshot({"PersistentVolume": [live_pv]}))
    pvc = only(result, "data", "PersistentVolumeClaim/db/postgres-data")
    assert pvc.severity == "warning" and pvc.file == "apps/storage.yaml" and "/var/lib/rancher/k3s/storage" in pvc.message
    assert "archive_volumes" in pvc.fix
    outside = only(result, "data", "PersistentVolume/backups")
    assert "/srv/backups" in outside.message and "protected_paths" in outside.fix
    bound = only(result, "data", "PersistentVolume/pvc-1234")
    assert bound.severity == "blocker" and "db/postgres-data" in bound.message
    # With the volumes archived by the backup, data under the data dir is not a finding.
    archived = check("data", LiveSnapshot({"PersistentVolume": [live_pv]}), backup__archive_volumes=True)
    assert not any(f.subject in ("PersistentVolume/pvc-1234", "PersistentVolumeClaim/db/postgres-data")
                   for f in archived.findings)


def test_data_follows_the_k3s_default_local_storage_path_flag():
    result = check("data", k3s__server_args=["--default-local-storage-path=/data/local-path"])
    assert "/data/local-path" in only(result, "data", "PersistentVolumeClaim/db/postgres-data").message


def test_repository_findings():
    result = check("repository")
    ids = {f.id: f for f in result.findings}
    sops = only(result, "repository", "sops apps/secret.sops.yaml")
    assert sops.severity == "blocker" and sops.file == "apps/secret.sops.yaml" and "decryption" in sops.fix
    missing = only(result, "repository", "path apps-old")
    assert missing.severity == "blocker" and missing.file == "clusters/test/apps.yaml"
    newer = only(result, "repository", "OCIRepository/flux-system/podinfo")
    assert "newer than the pinned Flux v2.4.0" in newer.message and newer.file == "apps/sources.yaml"
    assert newer.fix.endswith("or write source.toolkit.fluxcd.io/v1beta2")
    sealed = only(result, "repository", "SealedSecret/default/api-token")
    assert sealed.severity == "blocker" and "sealed-secrets-key" in sealed.fix
    twice = only(result, "repository", "path clusters/test/extra")
    assert twice.severity == "warning" and "no kustomization.yaml" in twice.message
    claim = only(result, "repository", "PersistentVolumeClaim/default/grafana-storage")
    assert claim.file == "apps/grafana.yaml" and "existingClaim" in claim.message
    source = only(result, "repository", "HelmRepository/flux-system/grafana")
    assert source.severity == "blocker"
    order = only(result, "repository", "PrometheusRule/monitoring/node-alerts")
    assert order.severity == "warning" and order.fix == "add dependsOn: [{name: monitoring}] to Kustomization alerts"
    assert all(f.fix and f.file for f in ids.values())


def test_missing_cluster_path_is_one_blocker():
    result = run_check(inventory("clusters/nope"), fixture_dir())
    assert [f.kind for f in result.findings] == ["repository"]
    assert result.findings[0].severity == "blocker" and "clusters/nope" in result.findings[0].message


def test_finding_ids_are_unique_and_shell_safe():
    for kind in KINDS:
        result = check(kind)
        ids = [f.id for f in result.findings]
        assert len(ids) == len(set(ids))
        assert all(" " not in i and "'" not in i for i in ids)


@pytest.mark.parametrize("accepted, ok", [((), False), (("crd-ordering:infrastructure:Gateway/envoy-gateway-system/public",), True)])
def test_accepting_a_blocker(accepted, ok):
    result = check("crd-ordering")
    out = result.to_dict(set(accepted))
    assert out["ok"] is ok
    assert out["accepted"] == list(accepted)
    assert [f["accepted"] for f in out["findings"]] == [bool(accepted)]


def test_the_benchmark_repository_has_500_files_builds_in_process_and_is_clean(tmp_path):
    from drtool.gitops.plainbuild import PlainBuilder
    from drtool.tasks.bench import BENCHMARKS
    from tests.bench.bench_gitops import make_repo
    from tests.bench.run import ORDER

    repo = make_repo(tmp_path / "repo")
    assert sum(1 for p in repo.rglob("*") if p.is_file()) == 500
    result = run_check(inventory("clusters/bench"), repo)
    assert result.findings == [] and result.files == 500 and result.kustomizations == 8
    # Every path of it takes the in-process build (no kustomize process per Kustomization).
    assert len(PlainBuilder(repo).build("./apps/group0")) == 70
    assert "gitops" in ORDER and "gitops" in BENCHMARKS


def test_plain_build_leaves_anything_else_to_the_real_builder(tmp_path):
    from drtool.gitops.plainbuild import NotPlain, PlainBuilder

    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / "crd-ordering", repo)
    plain = PlainBuilder(repo)
    assert {src for _, src in plain.build("./infrastructure")} == {
        "infrastructure/namespace.yaml", "infrastructure/envoy-gateway.yaml", "infrastructure/gateway.yaml"}
    with pytest.raises(NotPlain):
        plain.build("./infrastructure", {"targetNamespace": "other"})
    (repo / "infrastructure" / "kustomization.yaml").write_text(
        "resources: [namespace.yaml]\npatches: [{path: p.yaml}]\n")
    with pytest.raises(NotPlain):
        plain.build("./infrastructure")
    (repo / ".sourceignore").write_text("drafts/\n")
    with pytest.raises(NotPlain):
        PlainBuilder(repo).build("./clusters/test")


@pytest.mark.parametrize("fixture, path", [("crd-ordering", "./infrastructure"), ("repository", "./clusters/test"),
                                           ("node-reference", "./storage"), (None, "./infrastructure")])
def test_plain_build_gives_what_the_real_kustomize_gives(fixture, path):
    import json

    from drtool.gitops.plainbuild import PlainBuilder

    kustomize = pytest.importorskip("drtool.gitops.kustomize")
    root = FIXTURES / fixture if fixture else fixture_dir()
    plain = sorted(json.dumps(o, sort_keys=True) for o, _ in PlainBuilder(root).build(path))
    real = sorted(json.dumps(dict(o), sort_keys=True) for o in kustomize.build_kustomization(root, path, {}))
    assert plain == real


def test_a_kustomization_the_real_kustomize_builds_keeps_the_files_of_its_objects(tmp_path):
    pytest.importorskip("drtool.gitops.kustomize")
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / "crd-ordering", repo)
    ks = repo / "clusters" / "test" / "infrastructure.yaml"
    data = yaml.safe_load(ks.read_text())
    data["spec"]["namePrefix"] = "x-"  # a Flux build field: not a plain build
    ks.write_text(yaml.safe_dump(data))
    result = run_check(inventory(), repo)
    f = only(result, "crd-ordering", "Gateway/envoy-gateway-system/x-public")
    assert f.file == "infrastructure/gateway.yaml"
    # kustomize does not rename references inside custom resources: the HelmRelease's
    # sourceRef still names the unprefixed HelmRepository, which no longer exists.
    assert only(result, "repository", "HelmRepository/flux-system/envoy-gateway").severity == "blocker"


def test_depends_on_and_release_names_follow_the_controllers():
    from drtool.gitops.check.kinds import release_of
    from drtool.gitops.check.repo import Kustomization

    # kustomize-controller v1.4.0 checkDependencies: no namespace means the Kustomization's own.
    ks = Kustomization("apps", "web", {"dependsOn": [{"name": "infra"}, {"name": "db", "namespace": "flux-system"}]})
    assert ks.depends_on == ["apps/infra", "flux-system/db"]
    # helm-controller v1.1.0 GetReleaseName / GetReleaseNamespace.
    hr = {"metadata": {"name": "eg", "namespace": "flux-system"}, "spec": {"targetNamespace": "gw"}}
    assert release_of(hr) == ("gw-eg", "gw")
    assert release_of({"metadata": {"name": "eg", "namespace": "ns"}, "spec": {"releaseName": "x"}}) == ("x", "ns")


def test_a_dependency_nothing_declares_is_a_blocker(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / "crd-ordering", repo)
    ks = repo / "clusters" / "test" / "infrastructure.yaml"
    data = yaml.safe_load(ks.read_text())
    data["spec"]["dependsOn"] = [{"name": "crds"}]
    ks.write_text(yaml.safe_dump(data))
    f = only(run_check(inventory(), repo), "repository", "dependsOn flux-system/crds")
    assert f.severity == "blocker" and f.file == "clusters/test/infrastructure.yaml"


def test_the_lab_fidelity_fixtures_agree_with_what_the_lab_does():
    """``drtool/lab/gitops_fixtures``: ``layered`` (patches, components, generators, namePrefix,
    substituteFrom, SOPS, .sourceignore) reconciles in the lab; ``crd-same-kustomization`` fails there
    with "no matches for kind ClusterIssuer"."""
    base = REPO / "drtool" / "lab" / "gitops_fixtures"
    assert run_check(inventory("clusters/lab"), base / "layered").findings == []
    result = run_check(inventory("clusters/lab"), base / "crd-same-kustomization")
    assert [f.id for f in result.findings] == ["crd-ordering:infrastructure:ClusterIssuer/selfsigned"]
    assert result.findings[0].file == "infrastructure/cluster-issuer.yaml"


def test_a_chart_from_the_bootstrap_repository_needs_no_source_in_git(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / "drift", repo)
    text = (repo / "apps" / "web.yaml").read_text()
    (repo / "apps" / "web.yaml").write_text(text.replace(
        "sourceRef: {kind: HelmRepository, name: bitnami, namespace: flux-system}",
        "sourceRef: {kind: GitRepository, name: flux-system, namespace: flux-system}"))
    assert not [f for f in run_check(inventory(), repo).findings if f.kind == "repository"]
    (repo / "apps" / "web.yaml").write_text(text.replace("name: bitnami, namespace", "name: bitnamii, namespace"))
    assert only(run_check(inventory(), repo), "repository", "HelmRepository/flux-system/bitnamii").severity == "blocker"


def test_a_substitution_flux_refuses_is_a_blocker_not_a_crash(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / "drift", repo)
    ks = repo / "clusters" / "test" / "apps.yaml"
    data = yaml.safe_load(ks.read_text())
    data["spec"]["postBuild"] = {"substitute": {"bad-name": "x"}}  # not a valid variable name
    ks.write_text(yaml.safe_dump(data))
    f = only(run_check(inventory(), repo), "repository", "postBuild apps")
    assert f.severity == "blocker" and "bad-name" in f.message and f.file == "clusters/test/apps.yaml"


def test_a_malformed_kustomization_is_a_finding_not_a_crash(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / "drift", repo)
    ks = repo / "clusters" / "test" / "apps.yaml"
    data = yaml.safe_load(ks.read_text())
    data["spec"]["dependsOn"] = "infrastructure"
    ks.write_text(yaml.safe_dump(data))
    f = only(run_check(inventory(), repo), "repository", "Kustomization/flux-system/apps")
    assert f.severity == "blocker" and "spec.dependsOn" in f.message and f.file == "clusters/test/apps.yaml"


def test_an_object_of_an_unexpected_shape_does_not_stop_the_other_rules(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / "node-reference", repo)
    (repo / "storage" / "odd.yaml").write_text(
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: odd, namespace: ml}\nspec:\n  chart: just-a-string\n")
    result = run_check(inventory(), repo)
    assert only(result, "node-reference", "PersistentVolume/models").severity == "blocker"
    assert any("stopped early" in n for n in result.notes)


def test_reading_the_live_cluster_is_bounded_and_never_raises():
    from drtool.gitops.check.live import LISTS, read_live
    from drtool.kube.client import KubeRetryable, NotFound

    class Transport:
        def __init__(self):
            self.calls = 0

        def get_json(self, path, query=None, category="get"):
            self.calls += 1
            if "ingresses" in path:
                raise NotFound("GET ingresses: HTTP 404", 404)
            if "cronjobs" in path:
                raise KubeRetryable("GET cronjobs: HTTP 503", 503)
            if path.endswith("/secrets"):
                return {"items": [{"metadata": {"name": "s", "namespace": "a"}, "type": "Opaque", "data": {"k": "c2VjcmV0"}}]}
            return {"items": []}

    t = Transport()
    snap = read_live(t)
    assert t.calls == len(LISTS) and snap.of("Ingress") == []
    assert [e.split(":")[0] for e in snap.errors] == ["CronJob"]
    assert "data" not in snap.of("Secret")[0]  # values are dropped as they arrive
    spent = read_live(Transport(), budget_s=0)
    assert all(not v for v in spent.objects.values()) and len(spent.errors) == len(LISTS)


def test_a_custom_kind_nothing_can_install_is_a_blocker_and_an_unknown_chart_in_a_dependency_a_warning(tmp_path):
    repo = _widget_repo(tmp_path)
    # Only the Widget left: nothing in Git can install its CRD.
    (repo / "infrastructure" / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [namespace.yaml, gateway.yaml]\n")
    f = only(run_check(inventory(), repo), "crd-ordering", "Widget/")
    assert f.severity == "blocker" and "nothing in Git applies its CRD" in f.message
    # The unknown chart in a Kustomization it dependsOn may install it: a warning to confirm or accept.
    (repo / "operators").mkdir()
    shutil.move(repo / "infrastructure" / "envoy-gateway.yaml", repo / "operators" / "operator.yaml")
    (repo / "clusters" / "test" / "operators.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": "operators", "namespace": "flux-system"},
        "spec": {"interval": "10m", "path": "./operators", "prune": True,
                 "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}}))
    ks = repo / "clusters" / "test" / "infrastructure.yaml"
    data = yaml.safe_load(ks.read_text())
    data["spec"]["dependsOn"] = [{"name": "operators"}]
    ks.write_text(yaml.safe_dump(data))
    f = only(run_check(inventory(), repo), "crd-ordering", "Widget/")
    assert f.severity == "warning" and "may install it" in f.message


def test_image_automation_kinds_need_the_extra_flux_components(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / "drift", repo)
    (repo / "apps" / "image.yaml").write_text(
        "apiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImageRepository\n"
        "metadata: {name: web, namespace: flux-system}\nspec: {image: ghcr.io/example/web, interval: 5m}\n")
    f = only(run_check(inventory(), repo), "api-version", "ImageRepository/flux-system/web")
    assert f.severity == "blocker" and "components_extra" in f.fix
    extra = inventory(flux__components_extra=["image-reflector-controller", "image-automation-controller"])
    assert not [f for f in run_check(extra, repo).findings if "ImageRepository" in f.subject]
