"""Who waits on whom: the dependency graph behind failure chains and the critical path.

An edge ``A -> B`` means "A cannot be Ready before B is". Edges come from what Flux and
Kubernetes actually wait on:

- Kustomization: ``spec.dependsOn``, ``spec.sourceRef``, ``spec.healthChecks`` and, with
  ``spec.wait``, every object it applied (kustomize-controller labels them
  ``kustomize.toolkit.fluxcd.io/name|namespace``).
- HelmRelease: ``spec.dependsOn``, the chart source, and the objects of its release
  (helm-controller labels them ``helm.toolkit.fluxcd.io/name|namespace``; Helm's
  ``app.kubernetes.io/instance`` is the fallback) because Helm waits for them.
- Deployment/StatefulSet/DaemonSet/Job: their pods (Deployments own pods through a
  ReplicaSet named ``<deployment>-<pod-template-hash>``).

Input is trimmed objects (see ``drtool.kube.watcher.trim``); everything here is pure.
"""
from __future__ import annotations

import datetime as _dt
from collections import defaultdict
from typing import Callable, Iterable, Mapping

Edges = dict[str, set[str]]

_FLUX_SYSTEM = "flux-system"


def object_id(kind: str, namespace: str | None, name: str) -> str:
    """``Kind/namespace/name`` (``Kind/name`` for cluster-scoped objects)."""
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def _meta(obj: Mapping) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def build_edges(objects: Iterable[Mapping]) -> Edges:
    """``{id: {ids it waits on}}`` for the given objects."""
    objects = list(objects)
    edges: Edges = defaultdict(set)
    applied_by: dict[tuple[str, str], list[str]] = defaultdict(list)   # kustomization -> ids
    released_by: dict[tuple[str, str], list[str]] = defaultdict(list)  # helmrelease -> ids
    instance_of: dict[tuple[str, str], list[str]] = defaultdict(list)  # (ns, helm instance) -> ids
    by_id: dict[str, Mapping] = {}
    for obj in objects:
        kind = obj.get("kind") or ""
        ns, name = _meta(obj)
        oid = object_id(kind, ns, name)
        by_id[oid] = obj
        labels = (obj.get("metadata") or {}).get("labels") or {}
        ks = labels.get("kustomize.toolkit.fluxcd.io/name")
        if ks:
            applied_by[(labels.get("kustomize.toolkit.fluxcd.io/namespace") or ns, ks)].append(oid)
        hr = labels.get("helm.toolkit.fluxcd.io/name")
        if hr:
            released_by[(labels.get("helm.toolkit.fluxcd.io/namespace") or ns, hr)].append(oid)
        elif labels.get("app.kubernetes.io/instance") and kind != "Pod":
            instance_of[(ns, labels["app.kubernetes.io/instance"])].append(oid)

    workloads: dict[str, set[str]] = {k: set() for k in ("Deployment", "StatefulSet", "DaemonSet", "Job")}
    for oid, obj in by_id.items():
        if obj.get("kind") in workloads:
            workloads[obj["kind"]].add(oid)

    for oid, obj in by_id.items():
        kind = obj.get("kind") or ""
        ns, name = _meta(obj)
        spec = obj.get("spec") or {}
        deps = edges[oid]
        if kind == "Kustomization":
            for dep in spec.get("dependsOn") or ():
                deps.add(object_id("Kustomization", dep.get("namespace") or ns, dep.get("name", "")))
            src = spec.get("sourceRef") or {}
            if src.get("name"):
                deps.add(object_id(src.get("kind") or "GitRepository", src.get("namespace") or ns, src["name"]))
            for hc in spec.get("healthChecks") or ():
                deps.add(object_id(hc.get("kind", ""), hc.get("namespace") or ns, hc.get("name", "")))
            if spec.get("wait"):
                deps.update(applied_by.get((ns, name), ()))
        elif kind == "HelmRelease":
            for dep in spec.get("dependsOn") or ():
                deps.add(object_id("HelmRelease", dep.get("namespace") or ns, dep.get("name", "")))
            src = ((spec.get("chart") or {}).get("spec") or {}).get("sourceRef") or spec.get("chartRef") or {}
            if src.get("name"):
                deps.add(object_id(src.get("kind") or "HelmRepository", src.get("namespace") or ns, src["name"]))
            released: list[str] = released_by.get((ns, name)) or []
            if not released:
                target = spec.get("targetNamespace") or ns
                release = spec.get("releaseName") or (f"{target}-{name}" if spec.get("targetNamespace") else name)
                released = instance_of.get((target, release), [])
            deps.update(released)
        elif kind == "Pod":
            for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
                owner_kind, owner = ref.get("kind"), ref.get("name") or ""
                if owner_kind == "ReplicaSet" and "-" in owner:
                    owner_kind, owner = "Deployment", owner.rsplit("-", 1)[0]
                owner_id = object_id(owner_kind, ns, owner)
                if owner_kind in workloads and owner_id in workloads[owner_kind]:
                    edges[owner_id].add(oid)
        deps.discard(oid)
    return dict(edges)


def dependents(edges: Edges) -> Edges:
    """The reverse graph: ``{id: {ids waiting on it}}``."""
    rev: Edges = defaultdict(set)
    for src, targets in edges.items():
        for t in targets:
            rev[t].add(src)
    return dict(rev)


def blocked_chain(edges: Edges, failed: str, max_depth: int = 50) -> list[str]:
    """The longest chain of objects waiting (transitively) on ``failed``, nearest first."""
    rev = dependents(edges)
    memo: dict[str, list[str]] = {}

    def longest(node: str, stack: frozenset, depth: int) -> list[str]:
        if node in memo:
            return memo[node]
        best: list[str] = []
        if depth < max_depth:
            for parent in sorted(rev.get(node, ())):
                if parent in stack:
                    continue  # a cycle: ignore that edge
                chain = [parent] + longest(parent, stack | {parent}, depth + 1)
                if len(chain) > len(best):
                    best = chain
        memo[node] = best
        return best

    return longest(failed, frozenset({failed}), 0)


def short_name(oid: str) -> str:
    """How a chain names an object: Kustomizations in flux-system by name, others ``Kind ns/name``."""
    parts = oid.split("/")
    if len(parts) == 3 and parts[0] == "Kustomization" and parts[1] == _FLUX_SYSTEM:
        return parts[2]
    return f"{parts[0]} {'/'.join(parts[1:])}"


def describe_chain(failed: str, chain: list[str]) -> str:
    """E.g. ``workloads waits on infrastructure which waits on HelmRelease logging/loki``."""
    if not chain:
        return ""
    names = [short_name(x) for x in reversed(chain)] + [short_name(failed)]
    return names[0] + " waits on " + " which waits on ".join(names[1:])


def critical_path(edges: Edges, ready_at: Mapping[str, float], end: str | None = None) -> list[dict]:
    """The chain of waits that decided when ``end`` became Ready, earliest first.

    ``end`` defaults to the last object to become Ready. Each step waits on the dependency that
    became Ready last. Entries: ``{"id", "ready_at", "waits_on"}``.
    """
    if end is None:
        if not ready_at:
            return []
        end = max(ready_at, key=lambda k: (ready_at[k], k))
    path: list[str] = [end]
    seen = {end}
    node = end
    while True:
        candidates = [d for d in edges.get(node, ()) if d in ready_at and d not in seen]
        if not candidates:
            break
        node = max(candidates, key=lambda k: (ready_at[k], k))
        path.append(node)
        seen.add(node)
    path.reverse()
    return [{"id": oid, "ready_at": ready_at[oid], "waits_on": path[i - 1] if i else None}
            for i, oid in enumerate(path)]


# --- the critical path that explains the time ------------------------------------------------

_FLUX_GATES = frozenset({"Kustomization", "HelmRelease", "GitRepository", "HelmRepository", "OCIRepository"})
_WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
# Reasons that mean a Flux controller is waiting on its own timer: kustomize-controller v1.4.0 and
# helm-controller v1.1.0 re-check a dependency every --requeue-dependency (DependencyNotReady),
# and a failed reconcile is retried at retryInterval (or its backoff). ArtifactFailed is not one:
# both watch their source and reconcile as soon as it has an artifact.
_TIMER_REASONS = frozenset({"DependencyNotReady", "BuildFailed", "ReconciliationFailed",
                            "HealthCheckFailed", "InstallFailed", "UpgradeFailed", "RetriesExceeded"})
_PULL_REASONS = frozenset({"ImagePullBackOff", "ErrImagePull", "Pulling"})

WORK, IMAGE_PULL, FLUX_TIMER = "work", "image_pull", "flux_timer"
SKEW_S = 0.5
"""How much later than an object a dependency may be seen Ready and still count as its gate."""


def creators(objects: Iterable[Mapping]) -> dict[str, str]:
    """``{id: id of what created it}``: Kustomizations and HelmReleases (their labels, Helm's
    ``app.kubernetes.io/instance`` as fallback) for what they applied, workloads for their pods."""
    objects = list(objects)
    out: dict[str, str] = {}
    releases: dict[tuple[str, str], str] = {}
    for obj in objects:
        if obj.get("kind") == "HelmRelease":
            ns, name = _meta(obj)
            spec = obj.get("spec") or {}
            target = spec.get("targetNamespace") or ns
            release = spec.get("releaseName") or (f"{target}-{name}" if spec.get("targetNamespace") else name)
            releases[(target, release)] = object_id("HelmRelease", ns, name)
    for obj in objects:
        kind = obj.get("kind") or ""
        ns, name = _meta(obj)
        oid = object_id(kind, ns, name)
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        if labels.get("helm.toolkit.fluxcd.io/name"):
            out[oid] = object_id("HelmRelease", labels.get("helm.toolkit.fluxcd.io/namespace") or ns,
                                 labels["helm.toolkit.fluxcd.io/name"])
        elif labels.get("kustomize.toolkit.fluxcd.io/name"):
            out[oid] = object_id("Kustomization", labels.get("kustomize.toolkit.fluxcd.io/namespace") or ns,
                                 labels["kustomize.toolkit.fluxcd.io/name"])
        elif kind != "Pod" and (ns, labels.get("app.kubernetes.io/instance")) in releases:
            out[oid] = releases[(ns, labels["app.kubernetes.io/instance"])]
        for ref in meta.get("ownerReferences") or ():
            owner_kind, owner = ref.get("kind"), ref.get("name") or ""
            if owner_kind == "ReplicaSet" and "-" in owner:
                owner_kind, owner = "Deployment", owner.rsplit("-", 1)[0]
            if owner_kind in _WORKLOADS:
                out[oid] = object_id(owner_kind, ns, owner)
        if out.get(oid) == oid:
            del out[oid]
    return out


def pull_marks(events: Iterable[Mapping], to_clock: Callable[[float], float]) -> list[tuple[float, str, str]]:
    """``(at, reason, message)`` history marks from a pod's kubelet Events: its pulls.

    The kubelet reports a pull only in Events, never in the pod's status (which says
    ``ContainerCreating`` throughout): ``Pulling: Pulling image "x"`` when it starts and
    ``Pulled: Successfully pulled image "x" in 7.264s (9.1s including waiting). Image size: N
    bytes.`` when it ends (kubernetes v1.31.4 pkg/kubelet/images/image_manager.go). A pull runs
    from the first ``Pulling`` to its ``Successfully pulled``; ``already present`` is no pull.
    Times are the Events' ``firstTimestamp`` (``eventTime`` when set), through ``to_clock``
    (wall-clock epoch seconds to the caller's clock).
    """
    marks: list[tuple[float, str, str]] = []
    for e in events:
        reason, message = str(e.get("reason") or ""), str(e.get("message") or "")
        if (e.get("source") or {}).get("component") not in (None, "kubelet"):
            continue
        if reason == "Pulling" or (reason == "Pulled" and message.startswith("Successfully pulled")):
            stamp = e.get("eventTime") or e.get("firstTimestamp") or (e.get("metadata") or {}).get("creationTimestamp")
            at = _epoch(stamp)
            if at is not None:
                marks.append((to_clock(at), reason, message))
    # Event times have whole seconds: a short pull's two Events may share one. Keep each
    # ``Pulling`` before the ``Pulled`` that ends it (a strictly later time, as history sorts by it).
    marks.sort(key=lambda m: (m[0], m[1] != "Pulling"))
    out: list[tuple[float, str, str]] = []
    for at, reason, message in marks:
        if out and at <= out[-1][0]:
            at = out[-1][0] + 0.001
        out.append((at, reason, message))
    return out


def _epoch(stamp: object) -> float | None:
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        return _dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _cause(kind: str, reason: str, message: str) -> str:
    if reason in _PULL_REASONS or "pulling image" in message.lower():
        return IMAGE_PULL
    if kind in _FLUX_GATES and reason in _TIMER_REASONS:
        return FLUX_TIMER
    return WORK


EVENT_RESOLUTION_S = 1.0
"""core/v1 Events carry whole seconds (``firstTimestamp``): a pull's marks are that coarse."""


def _split(oid: str, start: float, end: float, history: list[tuple[float, str, str]]) -> list[dict]:
    """``[start, end]`` of one object cut where its reason changed, each part with its cause.

    Pulls are counted from the kubelet's ``Pulling`` to its ``Successfully pulled`` Events: while
    one is open the time is a pull, whatever status the pod shows meanwhile (``ContainerCreating``
    throughout). An Event's time is cut to the second, so a status change less than
    ``EVENT_RESOLUTION_S`` after a ``Pulling`` may really have come before it and does not end
    the pull; a later one does (the kubelet moved on, a ``Pulled`` Event may be missing)."""
    kind = oid.split("/", 1)[0]
    marks = sorted(h for h in history if h[0] < end)
    parts: list[dict] = []
    at, reason, message = start, "", ""
    open_pulls, last_pulling = 0, -1e18

    def cause() -> str:
        return IMAGE_PULL if open_pulls > 0 else _cause(kind, reason, message)

    for t, r, m in marks:
        pulling, pulled = r == "Pulling", r == "Pulled" and m.startswith("Successfully pulled")
        if open_pulls and not (pulling or pulled) and t - last_pulling < EVENT_RESOLUTION_S:
            continue            # within the Event's second: the pull still runs
        if t > start:
            parts.append({"id": oid, "start": at, "end": t, "cause": cause(), "reason": reason})
            at = t
        if pulling:
            open_pulls, last_pulling = open_pulls + 1, t
        elif pulled:
            open_pulls = max(0, open_pulls - 1)
        else:
            open_pulls = 0
        reason, message = ("Pulling", m) if open_pulls and not pulling else (r, m)
    parts.append({"id": oid, "start": at, "end": end, "cause": cause(), "reason": reason})
    merged: list[dict] = []
    for p in parts:
        if p["end"] - p["start"] <= 0:
            continue
        if merged and merged[-1]["cause"] == p["cause"]:
            merged[-1]["end"] = p["end"]
        else:
            merged.append(p)
    return merged


def explain_path(edges: Edges, made_by: Mapping[str, str], first_seen: Mapping[str, float],
                 ready_at: Mapping[str, float], history: Mapping[str, list[tuple[float, str, str]]],
                 end: str | None = None, max_steps: int = 1000) -> list[dict]:
    """The chain that decided when ``end`` became Ready, back to when it could first start,
    as time segments (earliest first): ``{"id", "start", "end", "cause", "reason", "via"}``.

    From an object's Ready time the walk goes to what gated it last: the dependency that became
    Ready last before it, or its own appearance if that came later; an object appears only
    after its creator (the Kustomization or HelmRelease that applied it, the workload that owns
    a pod) applied it, so from an appearance the walk goes on to the creator's own gates
    (``dependsOn``, source) before that moment. Each object's part is cut where its reason
    changed: ``flux_timer`` while a Flux controller waited on its requeue or retry timer,
    ``image_pull`` while a pull was reported, ``work`` otherwise. ``via`` says how the next
    segment is linked: ``ready`` (waited on it) or ``created`` (it applied this one). The
    walk stops where nothing seen gates an object; the time before that belongs to the
    phases before convergence (the report adds them). ``history``: ``(at, reason, message)``.
    """
    if end is None:
        if not ready_at:
            return []
        end = max(ready_at, key=lambda k: (ready_at[k], k))
    if end not in ready_at:
        return []
    segments: list[dict] = []
    node, until, via, only_flux = end, ready_at[end], "", False
    # Ready times come from separate watches, one per kind: a HelmRelease's Ready can be seen a
    # moment before that of the Deployment it waited for. A dependency seen Ready up to SKEW_S
    # after still gated the object (its wait is then cut at the object's own Ready).
    # An object may come up twice, at different times: a Deployment waited on for its pods, and
    # earlier as the creator of one of them. Time never goes forward, and a (node, time) pair is
    # visited once, so the walk ends.
    seen = {(end, until)}
    for _ in range(max_steps):
        deps = [d for d in edges.get(node, ()) if d in ready_at and ready_at[d] <= until + SKEW_S
                and (d, ready_at[d]) not in seen and (not only_flux or d.split("/", 1)[0] in _FLUX_GATES)]
        dep = max(deps, key=lambda k: (min(ready_at[k], until), k)) if deps else None
        appeared = min(first_seen.get(node, until), until)
        creator = made_by.get(node)
        if dep is not None and ready_at[dep] >= appeared:
            start = min(ready_at[dep], until)
            start, nxt, nxt_until, link, nxt_flux = start, dep, start, "ready", False
        elif creator is not None and (creator, appeared) not in seen and creator in first_seen:
            start, nxt, nxt_until, link, nxt_flux = appeared, creator, appeared, "created", True
        else:
            start, nxt, nxt_until, link, nxt_flux = min(appeared, until), None, 0.0, "", False
        parts = _split(node, start, until, history.get(node, []))
        for p in parts:
            p["via"] = via
        segments[:0] = parts
        if nxt is None:
            break
        seen.add((nxt, nxt_until))
        if link == "ready":
            seen.add((nxt, ready_at[nxt]))
        node, until, via, only_flux = nxt, nxt_until, link, nxt_flux
    return segments
