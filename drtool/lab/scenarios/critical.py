"""The critical path of a scenario: least seconds from K3s install start to all-ready.

It replays the simulated controllers' rules on the dependency graph, with no faults and
no processing overhead: t=0 is when the API answers and ``flux bootstrap`` applies the
Flux components and sync objects; nodes turn Ready after their ``ready_delay``; a pod
runs ``delay`` after both its creation and a fitting node's readiness; the Flux
controllers run once their pods do; then sources, Kustomizations (``dependsOn``,
``wait``/``healthChecks``), HelmRepositories and HelmReleases (source, ``dependsOn``,
install delay, then ``--wait`` for their workload) follow. Flux's own timing is part of it,
played at the scenario's ``time_scale``: a not-ready dependency is looked at again only every
``--requeue-dependency`` (30 s), and health checks are polled every 5 s. The answer is the latest
ready time of everything. Measured rebuilds can only be slower: this is the bound
benchmarks compare drtool's recovery time against.

With ``kept`` (the images each node gives back to K3s, as a rebuild with the image cache does),
the path also counts the K3s start the model makes unavoidable, which no tool can skip: every
node imports its kept archives at disk speed before its kubelet runs, so its ``ready_delay``
counts from the end of that import. The server's API answers meanwhile (k3s-io/k3s
pkg/cli/server/server.go run(): READY=1 once the API server is ready, the server's own agent
started alongside), and an agent, which can join only once that API answers, imports after it
got its configuration (pkg/agent/run.go: token validated, ``config.Get``, then containerd, which
preloads ``agent/images``: pkg/agent/containerd/containerd.go). The install scripts' own run and
``flux bootstrap``'s process are not modelled costs; bootstrap's waiting (controllers, the
flux-system GitRepository and Kustomization) is already on the path.
"""
from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any, Callable

from drtool.errors import BadInput
from drtool.gitops.kustomize import BuildError, build_kustomization, substitute
from drtool.lab.api.kinds import KindRegistry, split_api_version
from drtool.lab.controllers.charts import chart_of as _chart, workload_for
from drtool.lab.controllers.durations import HEALTH_POLL
from drtool.lab.controllers.scheduler import schedule

from . import Scenario

Ref = tuple[str, str, str]          # (kind, namespace, name)
INF = math.inf
DEFAULT_NODES: dict[str, dict[str, Any]] = {
    "node1": {"labels": {}, "taints": []},
    "node2": {"labels": {"hardware": "heavy"},
              "taints": [{"key": "heavy", "value": "true", "effect": "NoSchedule"}]},
}
FLUX_CONTROLLERS = ("source-controller", "kustomize-controller", "helm-controller")


_KINDS = KindRegistry.with_builtins()


def _ref(obj: dict[str, Any], default_ns: str | None = None) -> Ref:
    meta = obj.get("metadata") or {}
    kind = str(obj.get("kind"))
    info = _KINDS.by_kind(split_api_version(str(obj.get("apiVersion", "")))[0], kind)
    cluster_scoped = info is not None and not info.namespaced
    ns = "" if cluster_scoped else (meta.get("namespace") or default_ns or "default")
    return kind, ns, str(meta.get("name"))


def _next_look(start: float, ready_at: float, period: float) -> float:
    """First time at or after ``ready_at`` on the grid ``start + k * period`` (a requeue or poll)."""
    if ready_at <= start or ready_at == INF:
        return max(start, ready_at)
    steps = math.ceil((ready_at - start) / period - 1e-9)
    return start + steps * period


class _Plan:
    def __init__(self, scenario: Scenario, repo: Path, nodes: dict[str, dict[str, Any]], nudged: bool = False,
                 node_start: dict[str, float] | None = None):
        # nudged: a reconcile is requested the moment the last dependency is Ready (drtool's
        # nudges, as `flux reconcile` does), so no requeue-dependency wait is left.
        self.nudged = nudged
        self.sc, self.repo = scenario, repo
        self.nodes = []
        for name, info in nodes.items():
            delay = scenario.node_ready_delay(name)
            if delay is not None:       # the node's own K3s start (its import) comes first
                delay += (node_start or {}).get(name, 0.0)
            # The kubelet's own labels too: Flux's Deployments select kubernetes.io/os=linux.
            labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                      **dict(info.get("labels") or {})}
            self.nodes.append(({"metadata": {"name": name, "labels": labels},
                                "spec": {"taints": list(info.get("taints") or [])},
                                "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
                               INF if delay is None else delay))
        self.objects: dict[Ref, tuple[dict[str, Any], Ref | None]] = {}
        self.memo: dict[tuple[str, Ref], float] = {}
        self.also_applied_by: dict[Ref, list[Ref]] = {}
        self.requeue = scenario.scaled(scenario.flux.requeue_dependency)
        self.poll = scenario.scaled(HEALTH_POLL)
        self.active: set[tuple[str, Ref]] = set()

    # -- discovery --

    def discover(self, ks: dict[str, Any], parent: Ref | None) -> None:
        ref = _ref(ks)
        if ref in self.objects and ref[0] == "Kustomization" and self.objects[ref][1] is not None:
            return
        self.objects[ref] = (ks, parent)
        spec = ks.get("spec") or {}
        build_spec = {k: spec[k] for k in ("targetNamespace", "namePrefix", "nameSuffix", "patches", "components",
                                           "patchesStrategicMerge", "patchesJson6902", "images") if spec.get(k)}
        try:
            manifests = build_kustomization(self.repo, spec.get("path") or "./", build_spec)
            post = spec.get("postBuild") or {}
            if post:
                manifests = substitute(manifests, self._variables(post, ref[1]))
        except BuildError as exc:
            raise BadInput(str(self.repo), f"Kustomization/{ref[1]}/{ref[2]}", str(exc)) from None
        target_ns = spec.get("targetNamespace")
        for child in manifests:
            child_ref = _ref(child, target_ns)
            if target_ns and child_ref[1]:
                child_ref = (child_ref[0], target_ns, child_ref[2])
            if child_ref == ref:
                continue
            if child_ref[0] == "Kustomization":
                child = dict(child, metadata=dict(child["metadata"], namespace=child_ref[1]))
                self.discover(child, ref)
            else:
                if child_ref not in self.objects:
                    self.objects[child_ref] = (child, ref)
                self.also_applied_by.setdefault(child_ref, []).append(ref)

    def _variables(self, post: dict[str, Any], namespace: str) -> dict[str, str]:
        """postBuild variables from ConfigMaps/Secrets the repository itself declares, then inline ones."""
        variables: dict[str, str] = {}
        for src in post.get("substituteFrom") or []:
            found = self.objects.get((str(src.get("kind")), namespace, str(src.get("name"))))
            data = dict((found[0].get("data") or {}) if found else {})
            if src.get("kind") == "Secret":
                data = {k: base64.b64decode(str(v)).decode(errors="replace") for k, v in data.items()}
            variables.update({str(k): str(v) for k, v in data.items()})
        variables.update({str(k): str(v) for k, v in (post.get("substitute") or {}).items()})
        return variables

    # -- times --

    def _memo(self, what: str, ref: Ref, fn: Callable[[], float]) -> float:
        key = (what, ref)
        if key in self.memo:
            return self.memo[key]
        if key in self.active:            # a dependency cycle never converges
            return INF
        self.active.add(key)
        try:
            self.memo[key] = value = fn()
        finally:
            self.active.discard(key)
        return value

    def created(self, ref: Ref) -> float:
        entry = self.objects.get(ref)
        if entry is None:
            return INF
        parent = entry[1]
        if parent is None:
            return 0.0
        # An object several Kustomizations apply exists once the first of them applies it.
        return min(self.applied(p) for p in self.also_applied_by.get(ref, [parent]))

    def pods_ready(self, pod_spec: dict[str, Any], created: float, delay: float, replicas: int,
                   ordered: bool) -> float:
        """When ``replicas`` pods of ``pod_spec`` are Ready (one after another when ``ordered``)."""
        fitting = [ready for node, ready in self.nodes if schedule(pod_spec, [node]).node is not None]
        if not fitting or replicas < 0:
            return INF
        start = max(created, min(fitting))
        if replicas == 0:
            return created
        return start + delay * (replicas if ordered else 1)

    def _dependencies_seen(self, start: float, deps_ready: float) -> float:
        """When the controller sees its dependencies Ready: at its next requeue, or at once when nudged."""
        return max(start, deps_ready) if self.nudged else _next_look(start, deps_ready, self.requeue)

    def start_cost(self, containers: int) -> float:
        """Lab seconds to start a pod's containers with every image already on its node: the
        critical path counts images as cached (no pulls), so only container starts cost."""
        return self.sc.scaled(self.sc.images.container_start * containers)

    def controller(self, name: str) -> float:
        delay = self.sc.delay("Deployment", "flux-system", name, self.sc.defaults.flux_controllers)
        delay += self.start_cost(1)
        return self.pods_ready({}, 0.0, delay, 1, False)

    def ready(self, ref: Ref) -> float:
        return self._memo("ready", ref, lambda: self._ready(ref))

    def applied(self, ref: Ref) -> float:
        return self._memo("applied", ref, lambda: self._applied(ref))

    def _source_ready(self, kind: str, ns: str, name: str) -> float:
        ref = (kind, ns, name)
        if ref in self.objects:
            return self.ready(ref)
        if kind == "GitRepository" and (ns, name) == ("flux-system", "flux-system"):
            return self.controller("source-controller") + self.sc.defaults.git_repository
        return INF

    def _applied(self, ref: Ref) -> float:
        ks = self.objects[ref][0]
        spec = ks.get("spec") or {}
        src = spec.get("sourceRef") or {}
        start = max(self.created(ref), self.controller("kustomize-controller"),
                    self._source_ready(src.get("kind", "GitRepository"), src.get("namespace") or ref[1],
                                       src.get("name", "")))
        deps = [self.ready(("Kustomization", dep.get("namespace") or ref[1], dep.get("name", "")))
                for dep in spec.get("dependsOn") or []]
        start = self._dependencies_seen(start, max(deps, default=0.0))
        return start + self.sc.delay("Kustomization", ref[1], ref[2], self.sc.defaults.kustomization)

    def _ready(self, ref: Ref) -> float:
        kind, ns, name = ref
        if ref not in self.objects:
            return INF
        obj, _ = self.objects[ref]
        spec = obj.get("spec") or {}
        created = self.created(ref)
        if kind == "Kustomization":
            applied = self.applied(ref)
            if spec.get("wait"):
                checked = [r for r, (_, parent) in self.objects.items() if parent == ref]
            else:
                checked = []
                for hc in spec.get("healthChecks") or []:
                    checked.append((hc.get("kind", ""), hc.get("namespace") or "", hc.get("name", "")))
            return _next_look(applied, max([applied] + [self.ready(r) for r in checked]), self.poll)
        if kind == "GitRepository":
            return max(created, self.controller("source-controller")) + self.sc.delay(
                kind, ns, name, self.sc.defaults.git_repository)
        if kind in ("HelmRepository", "OCIRepository", "HelmChart", "Bucket"):
            return max(created, self.controller("source-controller")) + self.sc.delay(
                kind, ns, name, self.sc.defaults.helm_repository)
        if kind == "HelmRelease":
            _, _, source_ref = _chart(spec)
            start = max(created, self.controller("helm-controller"),
                        self._source_ready(source_ref.get("kind") or "HelmRepository",
                                           source_ref.get("namespace") or ns, source_ref.get("name", "")))
            deps = [self.ready(("HelmRelease", dep.get("namespace") or ns, dep.get("name", "")))
                    for dep in spec.get("dependsOn") or []]
            start = self._dependencies_seen(start, max(deps, default=0.0))
            installed = start + self.sc.delay(kind, ns, name, self.sc.defaults.helm_release)
            workload = workload_for(dict(obj, metadata=dict(obj["metadata"], namespace=ns)),
                                    self.sc.faults(kind, ns, name).workload_kind,
                                    self.sc.images.charts.get(_chart(spec)[0], ()))
            return self._workload_ready(workload, installed)
        if kind in ("Deployment", "StatefulSet"):
            return self._workload_ready(dict(obj, metadata=dict(obj["metadata"], namespace=ns)), created)
        return created

    def _workload_ready(self, workload: dict[str, Any], created: float) -> float:
        meta, spec = workload["metadata"], workload.get("spec") or {}
        delay = self.sc.delay(workload["kind"], meta.get("namespace"), meta["name"], self.sc.defaults.pod)
        pod_spec = (spec.get("template") or {}).get("spec") or {}
        delay += self.start_cost(len(pod_spec.get("containers") or [{}]))
        replicas = spec.get("replicas", 1)
        return self.pods_ready(pod_spec, created, delay, replicas if isinstance(replicas, int) else 1,
                               workload["kind"] == "StatefulSet")

    def total(self) -> float:
        times = [self.controller(c) for c in FLUX_CONTROLLERS]
        times += [self.ready(ref) for ref in self.objects]
        return max(times)


def k3s_start(scenario: Scenario, nodes: list[str], kept: dict[str, list[str]]) -> dict[str, float]:
    """{node: lab seconds from the API answering until its kubelet can start}: the node's import of
    its ``kept`` archives, one archive per image as the image cache writes them, at disk speed
    (``ImageCosts.import_seconds``)."""
    return {node: scenario.scaled(sum(scenario.images.import_seconds([ref]) for ref in kept.get(node, ())))
            for node in nodes}


def compute_critical_path(scenario: Scenario, repo: Path, cluster_path: str,
                          nodes: dict[str, dict[str, Any]] | None = None, nudged: bool = False,
                          kept: dict[str, list[str]] | None = None) -> float:
    """See ``drtool.lab.scenarios.critical_path``. ``math.inf`` when something can never be ready."""
    nodes = dict(nodes or DEFAULT_NODES)
    plan = _Plan(scenario, repo, nodes, nudged, k3s_start(scenario, list(nodes), kept) if kept is not None else {})
    root = {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": "flux-system", "namespace": "flux-system"},
            "spec": {"path": "./" + cluster_path.strip("/").removeprefix("./"), "prune": True,
                     "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}}
    # What bootstrap creates exists from t=0, whatever the repo's flux-system/ also declares.
    from drtool.lab.flux.manifests import components, sync_objects
    for obj in components() + sync_objects("lab", "main", cluster_path)[:1]:
        plan.objects[_ref(obj)] = (obj, None)
    plan.discover(root, None)
    return plan.total()
