"""Simulated controllers: kustomize building, scheduling, and faults on an in-memory Store.

Building and scheduling are pure and tested table-style. Controller behaviour runs the
real controllers against the lab's real ``Store`` in an event loop (no HTTP), with tiny
scenario delays, and checks the conditions and pod states an operator would see.
"""
from __future__ import annotations

import asyncio
import textwrap
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest

from drtool.lab.api import Store
from drtool.lab.controllers import start_controllers
from drtool.lab.controllers.conditions import get_condition
from drtool.lab.controllers.health import health
from drtool.gitops.kustomize import build_kustomization
from drtool.lab.controllers.scheduler import schedule
from drtool.lab.flux import manifests
from drtool.lab.gitops_repo import fixture_dir, git, prepare_gitops

# ----------------------------------------------------------------------------- kustomize


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n"


def test_lab_fixture_builds_with_flux_rules_and_skips_the_backup_file() -> None:
    refs = [f"{o['kind']}/{o['metadata'].get('namespace', '')}/{o['metadata']['name']}"
            for o in build_kustomization(fixture_dir(), "./clusters/homelab")]
    assert refs == ["Kustomization/flux-system/infrastructure", "Kustomization/flux-system/workloads"]
    infra = [(o["kind"], o["metadata"]["name"]) for o in build_kustomization(fixture_dir(), "./infrastructure")]
    assert ("HelmRelease", "loki") in infra and ("PersistentVolume", "loki-data") in infra


# ----------------------------------------------------------------------------- scheduler

def _node(name: str, labels: dict | None = None, taints: list | None = None, ready: bool = True) -> dict:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": taints or []},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


HEAVY = [{"key": "heavy", "value": "true", "effect": "NoSchedule"}]
NODES = [_node("node1"), _node("node2", {"hardware": "heavy"}, HEAVY)]
TOLERATE = [{"key": "heavy", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]


@pytest.mark.parametrize(("pod_spec", "expected"), [
    ({}, "node1"),
    ({"tolerations": TOLERATE}, "node1"),                                   # least loaded wins, node1 has 0
    ({"nodeSelector": {"hardware": "heavy"}, "tolerations": TOLERATE}, "node2"),
    ({"nodeSelector": {"hardware": "heavy"}, "tolerations": [{"operator": "Exists"}]}, "node2"),
    ({"nodeSelector": {"hardware": "heavy"}, "tolerations": [{"key": "heavy", "operator": "Exists"}]}, "node2"),
])
def test_scheduler_places_pods(pod_spec: dict, expected: str) -> None:
    assert schedule(pod_spec, NODES).node == expected


def test_scheduler_explains_unschedulable_pods_like_kube_scheduler() -> None:
    no_toleration = schedule({"nodeSelector": {"hardware": "heavy"}}, NODES)
    assert no_toleration.node is None
    assert no_toleration.message.startswith(
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {heavy: true}.")
    wrong_effect = schedule({"nodeSelector": {"hardware": "heavy"},
                             "tolerations": [{"key": "heavy", "value": "true", "effect": "NoExecute"}]}, NODES)
    assert "untolerated taint {heavy: true}" in wrong_effect.message
    not_ready = schedule({}, [_node("node1", ready=False)])
    assert "1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }" in not_ready.message
    assert schedule({}, []).message == "no nodes available to schedule pods"


def test_scheduler_spreads_by_load() -> None:
    assert schedule({"tolerations": TOLERATE}, NODES, {"node1": 3, "node2": 1}).node == "node2"


# ----------------------------------------------------------------------------- controllers on a Store

FAST = {"git_repository": 0.01, "helm_repository": 0.01, "kustomization": 0.01, "helm_release": 0.01,
        "pod": 0.01, "flux_controllers": 0.01, "node_ready": 0, "retry_interval": 0.05}
# Flux's own durations a thousand times faster: the 30 s dependency requeue takes 30 ms,
# a 10m retry interval 0.6 s.
FAST_SCALE = 0.001


def _ks(name: str, path: str, **spec: Any) -> dict:
    return {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": "flux-system"},
            "spec": {"interval": "10m", "path": path, "prune": True,
                     "sourceRef": {"kind": "GitRepository", "name": "flux-system"}, **spec}}


async def _eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout}s: {check.__doc__ or check}")


def _run(tmp_path: Path, scenario: dict, body: Callable[..., Awaitable[None]],
         files: dict[str, str] | None = None, nodes: list[dict] | None = None, restartable: bool = False) -> None:
    """Run ``body`` with controllers on a fresh Store, a lab GitOps repo and a scenario file.

    With ``restartable`` the body gets a third argument: an async callable that stops the
    controllers and starts new ones on the same store (a K3s server restart), returning them.
    """
    source = tmp_path / "content"
    _tree(source, {"clusters/lab/.keep": "", **(files or {})})
    gitops = prepare_gitops(tmp_path / "lab", source, "clusters/lab")
    scenario_file = tmp_path / "scenario.yaml"
    import yaml
    scenario_file.write_text(yaml.safe_dump({"name": "test", "defaults": FAST, "time_scale": FAST_SCALE,
                                             **scenario}))
    config = {"root": str(tmp_path / "lab"), "gitops": gitops, "scenario": str(scenario_file)}

    async def main() -> None:
        store = Store()
        running = [await start_controllers(store, config)]

        async def restart() -> Any:
            await running[0].stop()
            running[0] = await start_controllers(store, config)
            return running[0]
        try:
            for obj in manifests.crds():
                store.create(obj)
            for node in nodes if nodes is not None else NODES:
                store.create(node)
            store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}})
            store.create(manifests.sync_objects("https://github.com/lab/homelab-gitops", "main", "clusters/lab")[0])
            await body(store, Path(gitops["default"]), *((restart,) if restartable else ()))
        finally:
            await running[0].stop()

    asyncio.run(asyncio.wait_for(main(), 30))


def _ready(store: Store, group: str, kind: str, ns: str, name: str) -> dict | None:
    return get_condition(store.get(group, kind, ns, name), "Ready")


def _pods(store: Store, ns: str) -> list[dict]:
    return store.list("", "Pod", ns)


DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: apps}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: main, image: "ghcr.io/lab/{name}:1"}}]{extra}}}
"""
APPS = {"apps/ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: apps}\n"}


def test_faulty_pods_crashloop_and_image_pull(tmp_path: Path) -> None:
    files = {**APPS, "apps/web.yaml": DEPLOY.format(name="web", extra=""),
             "apps/llm.yaml": DEPLOY.format(name="llm", extra="")}
    scenario = {"objects": {"Deployment/apps/web": {"crashloop": True}, "Deployment/apps/llm": {"image_pull_error": True}}}

    async def body(store: Store, repo: Path) -> None:
        store.create(_ks("apps", "./apps"))

        def restarts() -> int:
            pods = [p for p in _pods(store, "apps") if p["metadata"]["name"].startswith("web-")]
            statuses = (pods[0].get("status") or {}).get("containerStatuses") or [{}] if pods else [{}]
            return statuses[0].get("restartCount", 0) >= 2 and statuses[0]
        crashing = await _eventually(restarts)
        assert crashing["state"]["waiting"]["reason"] == "CrashLoopBackOff"

        def pulling() -> dict | None:
            pods = [p for p in _pods(store, "apps") if p["metadata"]["name"].startswith("llm-")]
            states = [cs["state"].get("waiting", {}) for p in pods for cs in (p.get("status") or {}).get("containerStatuses", [])]
            return next((s for s in states if s.get("reason") == "ImagePullBackOff"), None)
        await _eventually(pulling)
        assert health(store.get("apps", "Deployment", "apps", "web")).status == "InProgress"
        events = [e["reason"] for e in store.list("", "Event", "apps")]
        assert "BackOff" in events and "Scheduled" in events

    _run(tmp_path, scenario, body, files)


def test_pending_pods_are_scheduled_when_a_fitting_node_appears(tmp_path: Path) -> None:
    files = {**APPS, "apps/llm.yaml": DEPLOY.format(
        name="llm", extra=', nodeSelector: {hardware: heavy}, tolerations: [{key: heavy, operator: Exists}]')}

    async def body(store: Store, repo: Path) -> None:
        store.create(_ks("apps", "./apps"))

        def unschedulable() -> dict | None:
            pods = _pods(store, "apps")
            return pods and get_condition(pods[0], "PodScheduled")
        cond = await _eventually(unschedulable)
        assert (cond["status"], cond["reason"]) == ("False", "Unschedulable")
        assert cond["message"].startswith("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector")
        store.create(_node("node2", {"hardware": "heavy"}, HEAVY))
        running = await _eventually(lambda: health(store.get("apps", "Deployment", "apps", "llm")).current)
        assert running
        assert _pods(store, "apps")[0]["spec"]["nodeName"] == "node2"

    _run(tmp_path, {}, body, files, nodes=[_node("node1")])


HELM = {
    "infra/repo.yaml": "apiVersion: source.toolkit.fluxcd.io/v1beta2\nkind: HelmRepository\n"
                       "metadata: {name: charts, namespace: flux-system}\nspec: {url: 'https://charts.example'}\n",
    "infra/ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: logging}\n",
    "infra/loki.yaml": "apiVersion: helm.toolkit.fluxcd.io/v2beta1\nkind: HelmRelease\nmetadata: {name: loki, namespace: logging}\n"
                       "spec: {chart: {spec: {chart: loki, version: '6.21.0', sourceRef: {kind: HelmRepository, name: charts, namespace: flux-system}}},"
                       " install: {remediation: {retries: 3}}, values: {workloadKind: StatefulSet}}\n",
    "infra/grafana.yaml": "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: grafana, namespace: logging}\n"
                          "spec: {dependsOn: [{name: loki}], chart: {spec: {chart: grafana, version: '10.2.0',"
                          " sourceRef: {kind: HelmRepository, name: charts, namespace: flux-system}}}}\n",
}


def test_helmrelease_retries_then_succeeds_and_stalls_on_retries_exceeded(tmp_path: Path) -> None:
    scenario = {"objects": {"HelmRelease/logging/loki": {"fail_times": 2},
                            "HelmRelease/logging/grafana": {"retries_exceeded": True}}}

    async def body(store: Store, repo: Path) -> None:
        store.create(_ks("infra", "./infra", wait=True))
        ready = await _eventually(lambda: (_ready(store, "helm.toolkit.fluxcd.io", "HelmRelease", "logging", "loki")
                                           or {}).get("status") == "True")
        assert ready
        loki = store.get("helm.toolkit.fluxcd.io", "HelmRelease", "logging", "loki")
        assert get_condition(loki, "Ready")["reason"] == "InstallSucceeded"
        assert loki["status"]["history"][0]["chartVersion"] == "6.21.0"
        assert loki["status"]["lastAttemptedRevision"] == "6.21.0"
        assert store.get("apps", "StatefulSet", "logging", "loki") is not None
        warnings = [e["message"] for e in store.list("", "Event", "logging") if e["reason"] == "InstallFailed"]
        assert any("logging/loki" in w for w in warnings)

        def stalled() -> dict | None:
            return get_condition(store.get("helm.toolkit.fluxcd.io", "HelmRelease", "logging", "grafana"), "Stalled")
        cond = await _eventually(stalled)
        assert cond["reason"] == "RetriesExceeded"
        infra = await _eventually(lambda: (_ready(store, "kustomize.toolkit.fluxcd.io", "Kustomization",
                                                  "flux-system", "infra") or {}).get("reason") == "HealthCheckFailed"
                                  and _ready(store, "kustomize.toolkit.fluxcd.io", "Kustomization", "flux-system", "infra"))
        assert "HelmRelease/logging/grafana status: 'Failed'" in infra["message"]

    _run(tmp_path, scenario, body, HELM)


def test_a_helmrelease_whose_first_install_fails_is_stalled_with_default_remediation(tmp_path: Path) -> None:
    """helm-controller v1.1.0: install.remediation.retries defaults to 0, so one failure is terminal."""
    scenario = {"objects": {"HelmRelease/logging/loki": {"fail_times": 1}}}
    files = {k: v for k, v in HELM.items() if k != "infra/grafana.yaml"}
    files["infra/loki.yaml"] = files["infra/loki.yaml"].replace(" install: {remediation: {retries: 3}},", "")

    async def body(store: Store, repo: Path) -> None:
        store.create(_ks("infra", "./infra"))

        def stalled() -> dict | None:
            return get_condition(store.get("helm.toolkit.fluxcd.io", "HelmRelease", "logging", "loki"), "Stalled")
        cond = await _eventually(stalled)
        assert (cond["status"], cond["reason"], cond["message"]) == ("True", "RetriesExceeded",
                                                                     "Failed to install after 1 attempt(s)")
        await asyncio.sleep(0.3)          # many retry periods at this time scale: no second attempt
        loki = store.get("helm.toolkit.fluxcd.io", "HelmRelease", "logging", "loki")
        assert loki["status"]["installFailures"] == 1
        assert get_condition(loki, "Ready")["reason"] == "InstallFailed"
        assert store.get("apps", "StatefulSet", "logging", "loki") is None

    _run(tmp_path, scenario, body, files)


def test_bad_repos_give_clear_conditions_and_the_controllers_keep_going(tmp_path: Path) -> None:
    files = {**APPS, "apps/web.yaml": DEPLOY.format(name="web", extra=""),
             "broken/bad.yaml": "kind: [oops\n",
             "unknown/x.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: default}\n",
             "secret/s.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s, namespace: flux-system}\n"}

    async def body(store: Store, repo: Path) -> None:
        store.create(_ks("broken", "./broken"))
        store.create(_ks("unknown", "./unknown"))
        store.create(_ks("nopath", "./does-not-exist"))
        store.create(_ks("sops", "./secret", decryption={"provider": "sops", "secretRef": {"name": "sops-age"}}))
        store.create(_ks("waits", "./apps", dependsOn=[{"name": "sops"}]))
        group, kind = "kustomize.toolkit.fluxcd.io", "Kustomization"

        async def reason(name: str, expected: str) -> dict:
            return await _eventually(lambda: (c := _ready(store, group, kind, "flux-system", name)) and
                                     c["reason"] == expected and c)
        assert "failed to decode Kubernetes YAML from broken/bad.yaml" in (await reason("broken", "BuildFailed"))["message"]
        assert 'no matches for kind "Widget" in version "example.com/v1"' in \
            (await reason("unknown", "ReconciliationFailed"))["message"]
        assert "kustomization path not found" in (await reason("nopath", "BuildFailed"))["message"]
        # kustomize-controller v1.4.0: the decryptor returns the API's NotFound; build() fails with it.
        assert (await reason("sops", "BuildFailed"))["message"] == 'secrets "sops-age" not found'
        assert (await reason("waits", "DependencyNotReady"))["message"] == \
            "dependency 'flux-system/sops' is not ready"
        store.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sops-age", "namespace": "flux-system"},
                      "data": {"age.agekey": "eA=="}})
        applied = await reason("waits", "ReconciliationSucceeded")
        assert applied["message"].startswith("Applied revision: main@sha1:")
        await _eventually(lambda: health(store.get("apps", "Deployment", "apps", "web")).current)

    _run(tmp_path, {}, body, files)


def test_a_failed_build_stays_failed_until_its_retry_interval(tmp_path: Path) -> None:
    """Its own status write must not retrigger it (the real controller ignores status-only changes)."""
    async def body(store: Store, repo: Path) -> None:
        store.create(_ks("broken", "./broken", retryInterval="10m"))          # 0.6 s at FAST_SCALE
        group, kind = "kustomize.toolkit.fluxcd.io", "Kustomization"
        await _eventually(lambda: (_ready(store, group, kind, "flux-system", "broken") or {}).get("reason")
                          == "BuildFailed")
        seen = set()
        for _ in range(20):
            seen.add(_ready(store, group, kind, "flux-system", "broken")["reason"])
            await asyncio.sleep(0.02)
        assert seen == {"BuildFailed"}

    _run(tmp_path, {}, body, {"broken/bad.yaml": "kind: [oops\n"})


def test_new_commits_are_picked_up_and_pruned(tmp_path: Path) -> None:
    files = {**APPS, "apps/a.yaml": CM.format(name="a").replace("{name: a}", "{name: a, namespace: apps}"),
             "apps/b.yaml": CM.format(name="b").replace("{name: b}", "{name: b, namespace: apps}")}

    async def body(store: Store, repo: Path) -> None:
        store.create(_ks("apps", "./apps"))
        await _eventually(lambda: store.get("", "ConfigMap", "apps", "b"))
        git(repo, "rm", "--quiet", "apps/b.yaml")
        git(repo, "commit", "--quiet", "-m", "drop b")
        gitrepo = store.get("source.toolkit.fluxcd.io", "GitRepository", "flux-system", "flux-system")
        gitrepo["metadata"]["annotations"] = {"reconcile.fluxcd.io/requestedAt": "now"}
        store.update(gitrepo)
        await _eventually(lambda: store.get("", "ConfigMap", "apps", "b") is None)
        assert store.get("", "ConfigMap", "apps", "a") is not None

    _run(tmp_path, {}, body, files)


def test_restarted_controllers_reconcile_every_object_they_find(tmp_path: Path) -> None:
    """After a K3s server restart (or a restored datastore), Flux resumes from what is stored.

    The new controllers start with empty artifact storage while the stored GitRepository
    still advertises its artifact: the Kustomization must not wait forever for a source
    event that never comes.
    """
    files = {**APPS, "apps/web.yaml": DEPLOY.format(name="web", extra="")}
    group, kind = "kustomize.toolkit.fluxcd.io", "Kustomization"

    async def body(store: Store, repo: Path, restart: Callable[[], Awaitable[Any]]) -> None:
        store.create(_ks("apps", "./apps", wait=True))
        await _eventually(lambda: (_ready(store, group, kind, "flux-system", "apps") or {}).get("status") == "True")
        before = store.get("source.toolkit.fluxcd.io", "GitRepository", "flux-system", "flux-system")
        restarted = await restart()

        def source_rebuilt() -> dict | None:
            gitrepo = store.get("source.toolkit.fluxcd.io", "GitRepository", "flux-system", "flux-system")
            artifact = (gitrepo.get("status") or {}).get("artifact") or {}
            changed = gitrepo["metadata"]["resourceVersion"] != before["metadata"]["resourceVersion"]
            return changed and artifact.get("revision") == before["status"]["artifact"]["revision"] and gitrepo
        await _eventually(source_rebuilt)

        def ks_ready_again() -> dict | None:
            ks = store.get(group, kind, "flux-system", "apps")
            cond = get_condition(ks, "Ready")
            return cond and cond["status"] == "True" and ks
        ks = await _eventually(ks_ready_again)
        assert ks["status"]["observedGeneration"] == ks["metadata"]["generation"]
        assert health(store.get("apps", "Deployment", "apps", "web")).current
        assert restarted.runtime.reconcile_count > 0

    _run(tmp_path, {}, body, files, restartable=True)


def _dep(name: str, ready: str = "True", generation: int = 1, observed: int = 1, applied: str = "main@sha1:new",
         source: str = "flux-system") -> dict:
    return {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": "flux-system", "generation": generation},
            "spec": {"sourceRef": {"kind": "GitRepository", "name": source}},
            "status": {"observedGeneration": observed, "lastAppliedRevision": applied,
                       "conditions": [{"type": "Ready", "status": ready, "reason": "X", "message": ""}]}}


@pytest.mark.parametrize(("dep", "problem"), [
    (_dep("base"), ""),
    (None, "dependency 'flux-system/base' not found: kustomizations.kustomize.toolkit.fluxcd.io \"base\" not found"),
    (_dep("base", ready="Unknown"), "dependency 'flux-system/base' is not ready"),
    (_dep("base", generation=2, observed=1), "dependency 'flux-system/base' is not ready"),
    (_dep("base", applied="main@sha1:old"), "dependency 'flux-system/base' revision is not up to date"),
    # Another source: its revision cannot be compared, Ready is enough.
    (_dep("base", applied="main@sha1:old", source="other"), ""),
])
def test_dependency_check_follows_kustomize_controller(dep: dict | None, problem: str) -> None:
    """kustomization_controller.go checkDependencies (kustomize-controller v1.4.0)."""
    from types import SimpleNamespace

    from drtool.lab.controllers.kustomizations import KustomizationReconciler

    store = SimpleNamespace(peek=lambda group, kind, ns, name: dep if dep and name == dep["metadata"]["name"] else None)
    reconciler = KustomizationReconciler(SimpleNamespace(store=store), None)    # type: ignore[arg-type]
    obj = _ks("apps", "./apps", dependsOn=[{"name": "base"}])
    assert reconciler._check_dependencies(obj, obj["spec"], "main@sha1:new") == problem


def test_staged_apply_order_follows_fluxcd_ssa() -> None:
    """kustomization_controller.go apply(): definitions, then *Class kinds, then the rest in ssa's kind order."""
    from drtool.lab.controllers.kustomizations import sort_key, stage_of

    def obj(api: str, kind: str, name: str = "x", ns: str | None = None) -> dict:
        return {"apiVersion": api, "kind": kind, "metadata": {"name": name, **({"namespace": ns} if ns else {})}}
    crd, ns = obj("apiextensions.k8s.io/v1", "CustomResourceDefinition"), obj("v1", "Namespace")
    sc, gwc = obj("storage.k8s.io/v1", "StorageClass"), obj("gateway.networking.k8s.io/v1", "GatewayClass")
    assert [stage_of(o) for o in (crd, ns, sc, gwc)] == [0, 0, 1, 1]
    # A CRD-looking kind of another group is not a cluster definition.
    assert stage_of(obj("example.com/v1", "CustomResourceDefinition")) == 2
    rest = [obj("networking.k8s.io/v1", "NetworkPolicy"), obj("apps/v1", "Deployment", "b", "a"),
            obj("v1", "ConfigMap"), obj("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
            obj("apps/v1", "Deployment", "a", "a"), obj("v1", "ServiceAccount"), obj("helm.toolkit.fluxcd.io/v2",
                                                                                    "HelmRelease")]
    order = [f"{o['kind']}/{o['metadata']['name']}" for o in sorted(rest, key=sort_key)]
    assert order == ["ServiceAccount/x", "ConfigMap/x", "Deployment/a", "Deployment/b", "HelmRelease/x",
                     "NetworkPolicy/x", "ValidatingWebhookConfiguration/x"]


@pytest.mark.parametrize(("spec", "timeout", "retry"), [
    ({"interval": "10m"}, 570.0, 600.0),                          # interval - 30s; retry = interval
    ({"interval": "40s"}, 30.0, 40.0),                            # never under 30s
    ({"interval": "1h", "timeout": "5m", "retryInterval": "1m"}, 300.0, 60.0),
])
def test_kustomization_timeout_and_retry_interval(spec: dict, timeout: float, retry: float) -> None:
    """kustomize-controller v1.4.0 api/v1 GetTimeout / GetRetryInterval."""
    from drtool.lab.controllers.kustomizations import get_retry_interval, get_timeout
    assert (get_timeout(spec), get_retry_interval(spec)) == (timeout, retry)


def test_substitute_from_a_missing_configmap_fails_unless_optional(tmp_path: Path) -> None:
    files = {"apps/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web, namespace: flux-system}\n"
                             "data: {greeting: '${greeting:=hello}', who: '${who}'}\n"}

    async def body(store: Store, repo: Path) -> None:
        group, kind = "kustomize.toolkit.fluxcd.io", "Kustomization"
        store.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vars", "namespace": "flux-system"},
                      "data": {"who": "d29ybGQ="}})
        store.create(_ks("strict", "./apps", postBuild={"substituteFrom": [{"kind": "ConfigMap", "name": "absent"}]}))
        cond = await _eventually(lambda: (c := _ready(store, group, kind, "flux-system", "strict")) and
                                 c["reason"] == "BuildFailed" and c)
        assert cond["message"] == ("post build failed for 'web': substitute from 'ConfigMap/absent' error: "
                                   "configmaps \"absent\" not found")
        store.delete(group, kind, "flux-system", "strict")
        store.create(_ks("lenient", "./apps", postBuild={"substituteFrom": [
            {"kind": "ConfigMap", "name": "absent", "optional": True}, {"kind": "Secret", "name": "vars"}]}))
        await _eventually(lambda: (_ready(store, group, kind, "flux-system", "lenient") or {}).get("status") == "True")
        assert store.get("", "ConfigMap", "flux-system", "web")["data"] == {"greeting": "hello", "who": "world"}

    _run(tmp_path, {}, body, files)


def test_helmrelease_timeout_counts_as_a_failed_install(tmp_path: Path) -> None:
    """helm install --wait past spec.timeout fails the release; with retries 0 it is Stalled."""
    files = {k: v for k, v in HELM.items() if k != "infra/grafana.yaml"}
    files["infra/loki.yaml"] = files["infra/loki.yaml"].replace(
        " install: {remediation: {retries: 3}}, values: {workloadKind: StatefulSet}",
        " timeout: 2m, values: {nodeSelector: {disk: none-has-it}}")

    async def body(store: Store, repo: Path) -> None:
        store.create(_ks("infra", "./infra"))
        cond = await _eventually(lambda: get_condition(
            store.get("helm.toolkit.fluxcd.io", "HelmRelease", "logging", "loki"), "Stalled"))
        assert cond["message"] == "Failed to install after 1 attempt(s)"
        ready = _ready(store, "helm.toolkit.fluxcd.io", "HelmRelease", "logging", "loki")
        assert ready["reason"] == "InstallFailed"
        assert "timed out waiting for the condition" in ready["message"]

    _run(tmp_path, {}, body, files)
