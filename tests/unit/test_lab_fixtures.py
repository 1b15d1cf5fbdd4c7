"""The lab's GitOps fixture repositories, reconciled by the simulated Flux controllers.

Each fixture (``drtool/lab/gitops_fixtures/``) is served from a real Git repo to the real
lab ``Store`` with every controller running, as after ``flux bootstrap``; the checks are what
``flux get all`` would show. Timing runs at a small ``time_scale`` so Flux's 30 s dependency
requeue takes a fraction of a second, and the tests measure it.
"""
from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from drtool.lab.api import Store
from drtool.lab.controllers.conditions import get_condition
from drtool.lab.controllers.health import health
from drtool.lab.flux import manifests
from drtool.lab.scenarios import critical_path, parse_scenario

from .test_controllers import _eventually, _run

FIXTURES = Path(__file__).resolve().parents[2] / "drtool" / "lab" / "gitops_fixtures"
KS = ("kustomize.toolkit.fluxcd.io", "Kustomization")
HR = ("helm.toolkit.fluxcd.io", "HelmRelease")


def fixture_files(name: str) -> dict[str, str]:
    root = FIXTURES / name
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def bootstrap(store: Store) -> None:
    """What ``flux bootstrap`` leaves behind: the flux-system Kustomization and the restored age key."""
    store.create(manifests.sync_objects("https://github.com/lab/homelab-gitops", "main", "clusters/lab")[1])
    store.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sops-age", "namespace": "flux-system"},
                  "data": {"age.agekey": "QUdFLVNFQ1JFVC1LRVktTEFC"}})


def cond(store: Store, gk: tuple[str, str], ns: str, name: str, type_: str = "Ready") -> dict:
    return get_condition(store.get(gk[0], gk[1], ns, name), type_) or {}


def all_ready(store: Store) -> bool:
    flux = store.list(*KS) + store.list(*HR)
    return bool(flux) and all(cond(store, (o["apiVersion"].split("/")[0], o["kind"]), o["metadata"]["namespace"],
                                   o["metadata"]["name"]).get("status") == "True" for o in flux) and \
        all(health(d).current for d in store.list("apps", "Deployment"))


def test_layered_fixture_rebuilds_to_all_ready_with_substitution_patches_components_and_sops(tmp_path: Path) -> None:
    async def body(store: Store, repo: Path) -> None:
        bootstrap(store)
        await _eventually(lambda: all_ready(store), timeout=20)
        assert [k["metadata"]["name"] for k in store.list(*KS)] == \
            ["apps", "flux-system", "infra-configs", "infra-controllers"]
        web = store.get("apps", "Deployment", "shop", "shop-web")
        pod = web["spec"]["template"]
        env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
        # postBuild: substituteFrom the ConfigMap, inline substitute, ${var:=default}.
        assert env == {"PUBLIC_URL": "https://shop.lab.example.internal", "OWNER": "storefront", "QUEUE": "enabled"}
        assert web["spec"]["replicas"] == 2
        assert store.get("apps", "Deployment", "shop", "shop-worker")["spec"]["replicas"] == 1
        # The Kustomization's own patch (labelSelector target), images, namePrefix, the component.
        assert pod["metadata"]["annotations"] == {"cluster": "lab"}
        assert pod["spec"]["containers"][0]["image"] == "ghcr.io/example/shop-web:1.4.2"
        assert store.get("", "Service", "shop", "shop-web")["spec"]["ports"][0]["port"] == 8080
        # configMapGenerator's hash suffix, as kustomize computes it.
        assert store.get("", "ConfigMap", "shop", "shop-defaults-6762bb9f2h") is not None
        secret = store.get("", "Secret", "shop", "shop-payment-keys")
        assert "sops" not in secret
        assert base64.b64decode(secret["data"]["api-key"]) == b"decrypted-by-lab"
        labels = web["metadata"]["labels"]
        assert labels["kustomize.toolkit.fluxcd.io/name"] == "apps"
        assert cond(store, HR, "platform", "reloader")["reason"] == "InstallSucceeded"

    _run(tmp_path, {"time_scale": 0.002}, body, fixture_files("layered"))


def test_platform_fixture_rebuilds_with_chart_crds_used_by_a_later_kustomization_rbac_and_policies(
        tmp_path: Path) -> None:
    async def body(store: Store, repo: Path) -> None:
        bootstrap(store)
        await _eventually(lambda: all_ready(store), timeout=20)
        assert [k["metadata"]["name"] for k in store.list(*KS)] == \
            ["flux-system", "infra-configs", "infra-controllers", "tenants"]
        # The chart's CRDs made the later Kustomization's kinds exist.
        assert store.get("cert-manager.io", "ClusterIssuer", None, "internal-ca") is not None
        assert store.get("cert-manager.io", "Certificate", "cert-manager", "internal-ca") is not None
        assert store.get("storage.k8s.io", "StorageClass", None, "fast-local") is not None
        for group, kind, ns, name in [("rbac.authorization.k8s.io", "Role", "team-a", "deployer"),
                                      ("rbac.authorization.k8s.io", "RoleBinding", "team-a", "team-a-deployer"),
                                      ("rbac.authorization.k8s.io", "ClusterRole", None, "team-a-namespace-viewer"),
                                      ("networking.k8s.io", "NetworkPolicy", "team-a", "default-deny-ingress"),
                                      ("policy", "PodDisruptionBudget", "team-a", "api"),
                                      ("networking.k8s.io", "Ingress", "team-a", "api")]:
            assert store.get(group, kind, ns, name) is not None, (kind, name)
        # kustomize's namespace transformer leaves cluster-scoped kinds alone.
        binding = store.get("rbac.authorization.k8s.io", "ClusterRoleBinding", None, "team-a-namespace-viewer")
        assert "namespace" not in binding["metadata"]
        assert binding["subjects"][0]["namespace"] == "team-a"

    _run(tmp_path, {"time_scale": 0.002}, body, fixture_files("platform"))


def test_custom_resources_beside_the_helmrelease_that_brings_their_crds_fail_as_flux_does(tmp_path: Path) -> None:
    async def body(store: Store, repo: Path) -> None:
        bootstrap(store)
        ready = await _eventually(lambda: (c := cond(store, KS, "flux-system", "infrastructure")).get("reason")
                                  == "ReconciliationFailed" and c)
        # Flux's own message (fluxcd/pkg ssa DryRunErr + apimachinery NoKindMatchError); the first
        # attempt's Event also carries the change log of the stage already applied (the Namespace).
        expected = ('ClusterIssuer/selfsigned dry-run failed: no matches for kind "ClusterIssuer" '
                    'in version "cert-manager.io/v1"')
        assert ready["message"].splitlines()[0] == expected
        events = [e["message"] for e in store.list("", "Event", "flux-system")
                  if e["reason"] == "ReconciliationFailed" and e["involvedObject"]["name"] == "infrastructure"]
        assert expected + "\nNamespace/cert-manager created\n" in events
        # Nothing of the failing stage is applied: not even the HelmRelease that would add the CRD.
        assert store.get(*HR, "cert-manager", "cert-manager") is None
        assert store.get("", "Namespace", None, "cert-manager") is not None

    _run(tmp_path, {}, body, fixture_files("crd-same-kustomization"))


def _layered_scenario(requeue: float) -> dict:
    return {"name": "layered", "time_scale": 0.1,
            "defaults": {"git_repository": 0, "helm_repository": 0, "kustomization": 1, "helm_release": 0,
                         "pod": 0, "flux_controllers": 0, "node_ready": 0},
            "flux": {"requeue_dependency": requeue}}


def test_two_dependency_levels_put_the_requeue_in_the_critical_path() -> None:
    # flux-system applied 1 → infra-controllers applied 2, Ready 2. infra-configs is first looked at
    # when flux-system creates it (1) and re-checks every 30 s × 0.1 = 3 s: at 4 → applied 5 → Ready.
    # apps, also first looked at 1, re-checks at 4 (infra-configs not ready) and 7 → applied 8.
    with_requeue = critical_path(parse_scenario(_layered_scenario(30.0)), FIXTURES / "layered", "clusters/lab")
    assert with_requeue == pytest.approx(8.0)
    # Were dependencies looked at the moment they turned Ready, it would be 4.
    immediate = critical_path(parse_scenario(_layered_scenario(0.001)), FIXTURES / "layered", "clusters/lab")
    assert immediate == pytest.approx(4.0, abs=0.01)


def test_a_dependent_waits_for_the_requeue_not_for_the_dependency_event(tmp_path: Path) -> None:
    """kustomize-controller re-checks a not-ready dependency every --requeue-dependency, not on its events."""
    scale = 0.02                                   # 30 s → 0.6 s
    requeue = 30 * scale
    seen: dict[str, float] = {}

    async def body(store: Store, repo: Path) -> None:
        bootstrap(store)
        t0 = time.monotonic()

        def watch() -> bool:
            now = time.monotonic() - t0
            configs = cond(store, KS, "flux-system", "infra-configs")
            if configs.get("reason") == "DependencyNotReady":
                seen.setdefault("configs_blocked", now)
            controllers = cond(store, KS, "flux-system", "infra-controllers")
            if controllers.get("status") == "True":
                seen.setdefault("controllers_ready", now)
            if (store.get(*KS, "flux-system", "infra-configs") or {}).get("status", {}).get("lastAttemptedRevision"):
                seen.setdefault("configs_started", now)
            return all_ready(store)
        await _eventually(watch, timeout=30)
        events = [e["message"] for e in store.list("", "Event", "flux-system") if e["reason"] == "DependencyNotReady"]
        assert "Dependencies do not meet ready condition, retrying in 30s" in events

    _run(tmp_path, {"time_scale": scale}, body, fixture_files("layered"))
    assert seen["controllers_ready"] > seen["configs_blocked"]
    # It did not start the moment its dependency turned Ready, but at its next requeue.
    assert seen["configs_started"] - seen["configs_blocked"] >= requeue * 0.9
    assert seen["configs_started"] - seen["controllers_ready"] <= requeue + 0.5
