"""Nudge Flux: ask a controller to reconcile now instead of at its next requeue timer.

kustomize-controller v1.4.0 and helm-controller v1.1.0 re-check a ``dependsOn`` that is not Ready
only every ``--requeue-dependency`` (30 s); no watch event wakes them earlier. Both controllers
do reconcile at once when ``reconcile.fluxcd.io/requestedAt`` changes value (fluxcd/pkg
runtime v0.49.1 ``predicates/reconcile_requested.go`` ``ReconcileRequestedPredicate``), which
is how ``flux reconcile`` works. drtool sends the very same request the moment every dependency
of a Kustomization or HelmRelease waiting on them (Ready=False, ``DependencyNotReady``) is Ready,
and once for each Flux source whose first fetch after bootstrap failed (Ready=False), which
would otherwise wait for its retry. Objects mid-reconcile are left alone: a request would only
make the controller do the same work again.

The request follows fluxcd/flux2 v2.4.0 ``cmd/flux/reconcile.go`` ``requestReconciliation``: a
JSON merge patch (controller-runtime ``client.MergeFrom``) setting the annotation
``meta.ReconcileRequestAnnotation`` (fluxcd/pkg ``apis/meta`` v1.6.1 ``annotations.go``) to
``time.Now().Format(time.RFC3339Nano)``. The HelmRelease force/reset annotations are not set.

The planning here is pure; ``Converger`` sends the patches.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable, Mapping

from drtool.kube.readiness import condition

REQUEST_ANNOTATION = "reconcile.fluxcd.io/requestedAt"
MAX_NUDGES = 500
"""At most this many requests in one converge wait, whatever the cluster does."""

NUDGED_KINDS = ("Kustomization", "HelmRelease")
SOURCE_KINDS = ("GitRepository", "HelmRepository", "OCIRepository")
AFTER_BOOTSTRAP = "bootstrap"
# kustomize-controller v1.4.0 / helm-controller v1.1.0: Ready=False reason while a dependsOn entry
# is not ready (meta.DependencyNotReadyReason / v2.DependencyNotReadyReason).
DEPENDENCY_NOT_READY = "DependencyNotReady"


def request_value(now: datetime | None = None) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: trailing zeros of the fraction dropped, ``Z`` suffix."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    text = now.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{now.microsecond:06d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


def patch_body(value: str) -> dict:
    """The merge patch ``client.MergeFrom`` computes when only the annotation changed."""
    return {"metadata": {"annotations": {REQUEST_ANNOTATION: value}}}


def _ready_now(obj: Mapping | None) -> bool:
    """Ready=True for the current generation (what ``checkDependencies`` asks of a dependency)."""
    if obj is None:
        return False
    ready = condition(obj, "Ready") or {}
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    generation = meta.get("generation")
    observed = status.get("observedGeneration")
    return ready.get("status") == "True" and (generation is None or observed is None or
                                              int(observed) == int(generation))


def dependency_ids(kind: str, namespace: str, obj: Mapping) -> list[str]:
    """``Kind/ns/name`` of the ``dependsOn`` entries (same kind, default namespace the object's)."""
    return [f"{kind}/{d.get('namespace') or namespace}/{d.get('name', '')}"
            for d in (obj.get("spec") or {}).get("dependsOn") or () if isinstance(d, Mapping)]


def _dependency_state(dep: Mapping) -> tuple:
    """What identifies one Ready state of a dependency: a change here is a new dependency change."""
    meta, status = dep.get("metadata") or {}, dep.get("status") or {}
    ready = condition(dep, "Ready") or {}
    return (meta.get("generation"), status.get("lastAppliedRevision"), ready.get("lastTransitionTime"))


@dataclass(frozen=True)
class Nudge:
    id: str
    kind: str
    namespace: str
    name: str
    after: tuple[str, ...]
    """The dependencies that just became Ready, or ``("bootstrap",)`` for a source."""


class NudgePlanner:
    """Decides whom to nudge; remembers per object the dependency state it was nudged for."""

    def __init__(self, limit: int = MAX_NUDGES):
        self.limit = limit
        self.sent = 0
        self._for: dict[str, tuple] = {}

    def due(self, pending: Iterable[tuple[str, str, str, str, Mapping]],
            lookup: Callable[[str], Mapping | None]) -> list[Nudge]:
        """Nudges to send now for ``pending`` ``(id, kind, namespace, name, obj)`` objects that are
        not done; ``lookup(id)`` returns a dependency's current object (None when unseen)."""
        out: list[Nudge] = []
        for oid, kind, ns, name, obj in sorted(pending, key=lambda p: p[0]):
            if self.sent + len(out) >= self.limit:
                break
            ready = condition(obj, "Ready") or {}
            if (obj.get("spec") or {}).get("suspend") or ready.get("status") != "False":
                continue  # suspended, Ready, or mid-reconcile: a request would only redo work
            if kind in SOURCE_KINDS:
                key: tuple = (AFTER_BOOTSTRAP,)
                after: tuple[str, ...] = (AFTER_BOOTSTRAP,)
            elif kind in NUDGED_KINDS and ready.get("reason") == DEPENDENCY_NOT_READY:
                deps = dependency_ids(kind, ns, obj)
                if not deps:
                    continue
                found = [(d, lookup(d)) for d in deps]
                if not all(_ready_now(dep) for _, dep in found):
                    continue
                key = tuple((d, _dependency_state(dep or {})) for d, dep in found)
                after = tuple(deps)
            else:
                continue
            if self._for.get(oid) == key:
                continue
            self._for[oid] = key
            out.append(Nudge(oid, kind, ns, name, after))
        self.sent += len(out)
        return out
