"""The controller runtime: one work queue fed by store events, timers and dependencies.

Reconcilers are level-triggered: ``reconcile(obj)`` reads the current state, writes
status only when it changes (an unchanged write is a no-op in the store, so a
controller never wakes itself up), and returns a ``Result``:

* ``requeue_after`` — run again after that many seconds (simulated work, retries);
* ``wait`` — run again whenever an object of a kind in the reconciler's ``watches``
  changes (dependencies, sources, nodes, the objects a health check waits for).

An object is also re-run when it changes itself, when an object it owns changes
(``ownerReferences``), and when an object labelled by the helm- or kustomize-controller
as theirs changes. One worker runs reconciles one at a time, so reconcilers never race.
A reconcile that raises is logged and retried later: a bad repo never kills the loop.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Iterable, Protocol

from drtool.lab.api.objects import now_rfc3339
from drtool.lab.api.status import ApiError
from drtool.lab.scenarios import Scenario

from .conditions import api_group, new_event
from .health import health

log = logging.getLogger(__name__)

Key = tuple[str, str, str, str]        # (group, kind, namespace, name)
GroupKind = tuple[str, str]
ERROR_RETRY = 1.0                      # seconds before retrying a reconcile that raised
# fluxcd/pkg apis/meta v1.6.1 annotations.go ReconcileRequestAnnotation.
RECONCILE_REQUEST = "reconcile.fluxcd.io/requestedAt"
HANDLES_REQUESTS = frozenset({("kustomize.toolkit.fluxcd.io", "Kustomization"), ("helm.toolkit.fluxcd.io", "HelmRelease")})


@dataclass(frozen=True)
class Result:
    """What a reconcile wants next (see the module docstring)."""

    requeue_after: float | None = None
    wait: bool = False


DONE = Result()
WAIT = Result(wait=True)


class Reconciler(Protocol):
    component: str
    owns: tuple[GroupKind, ...]
    watches: tuple[GroupKind, ...]

    async def reconcile(self, obj: dict[str, Any]) -> Result: ...

    def forget(self, key: Key) -> None: ...


class StatelessReconciler:
    """Base for reconcilers that keep nothing per object: ``forget`` has nothing to drop."""

    watches: tuple[GroupKind, ...] = ()

    def __init__(self, runtime: "Runtime"):
        self.rt = runtime

    def forget(self, key: Key) -> None:
        pass


def flux_gate(rt: "Runtime", component: str, obj: dict[str, Any]) -> Result | None:
    """What every Flux reconciler checks first: a suspended object is left alone, and
    nothing reconciles until that Flux controller's Deployment is available."""
    if (obj.get("spec") or {}).get("suspend"):
        return DONE
    if not rt.controller_available(component):
        return WAIT
    return None


def key_of(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (api_group(obj), obj.get("kind", ""), meta.get("namespace") or "", meta.get("name", ""))


class Runtime:
    """Dispatches store events to reconcilers; owns timers, the waiting sets and Events."""

    def __init__(self, store: Any, scenario: Scenario):
        self.store = store
        self.scenario = scenario
        self.loop = asyncio.get_running_loop()
        self._by_kind: dict[GroupKind, Reconciler] = {}
        self._watchers: dict[GroupKind, list[Reconciler]] = {}
        self._waiting: dict[int, set[Key]] = {}
        self._pending: dict[Key, None] = {}
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._clocks: dict[tuple[Key, Any], float] = {}
        self._events: dict[tuple[str, str, str], str] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._queue: asyncio.Queue | None = None
        self.reconcile_count = 0

    # ------------------------------------------------------------------ setup

    def add(self, reconciler: Reconciler) -> None:
        for gk in reconciler.owns:
            self._by_kind[gk] = reconciler
        for gk in reconciler.watches:
            self._watchers.setdefault(gk, []).append(reconciler)
        self._waiting[id(reconciler)] = set()

    def start(self) -> None:
        """Subscribe to the store, queue every existing object once, start the worker."""
        self._queue = self.store.subscribe(copy=False)
        for (group, kind) in self._by_kind:
            if self.store.kinds.by_kind(group, kind) is not None:
                for obj in self.store.iter_objects(group, kind):
                    self.kick(key_of(obj))
        self._tasks = [self.loop.create_task(self._pump(), name="lab-controllers-events"),
                       self.loop.create_task(self._work(), name="lab-controllers-worker")]

    async def stop(self) -> None:
        if self._queue is not None:
            self.store.unsubscribe(self._queue)
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks = []

    # ------------------------------------------------------------------ scheduling

    def kick(self, key: Key, delay: float = 0.0) -> None:
        """Reconcile ``key`` now (or after ``delay`` seconds, keeping an earlier timer)."""
        if delay > 0:
            at = self.loop.time() + delay
            handle = self._timers.get(key)
            if handle is not None and not handle.cancelled() and handle.when() <= at:
                return
            if handle is not None:
                handle.cancel()
            self._timers[key] = self.loop.call_at(at, self._fire, key)
            return
        self._pending[key] = None
        self._wake.set()

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.kick(key)

    def elapsed(self, key: Key, token: Any) -> float:
        """Seconds since ``(key, token)`` was first seen (starting its clock now if new)."""
        now = self.loop.time()
        start = self._clocks.setdefault((key, token), now)
        return now - start

    def remaining(self, key: Key, token: Any, delay: float) -> float:
        """Seconds left of ``delay`` for the work item ``token`` of ``key`` (0 when done)."""
        return max(0.0, delay - self.elapsed(key, token))

    def reset_clock(self, key: Key, token: Any) -> None:
        self._clocks.pop((key, token), None)

    # ------------------------------------------------------------------ event loop

    async def _pump(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            woken: set[int] = set()
            for type_, obj in batch:
                self._route(type_, obj, woken)

    def _route(self, type_: str, obj: dict[str, Any], woken: set[int]) -> None:
        key = key_of(obj)
        gk = key[:2]
        if gk in self._by_kind:
            # Every change of an object re-runs it. For Kustomizations and HelmReleases that is a
            # superset of the real watches (kustomize-controller v1.4.0 kustomization_manager.go,
            # helm-controller v1.1.0 helmrelease_controller.go: predicate.Or(
            # GenerationChangedPredicate, fluxcd/pkg runtime ReconcileRequestedPredicate)), so a new
            # reconcile.fluxcd.io/requestedAt value (flux reconcile, drtool's nudge) is acted on at
            # once, as on a real cluster; a status write the controller made itself changes nothing
            # (an unchanged write is a no-op) and a dependency's change never reaches a dependent
            # here, which keeps the --requeue-dependency wait (tests/lab/test_nudge_lab.py).
            self.kick(key)
        meta = obj.get("metadata") or {}
        for ref in meta.get("ownerReferences") or []:
            owner_group = str(ref.get("apiVersion", "")).rpartition("/")[0]
            self.kick((owner_group, ref.get("kind", ""), key[2], ref.get("name", "")))
        labels = meta.get("labels") or {}
        if "helm.toolkit.fluxcd.io/name" in labels:
            self.kick(("helm.toolkit.fluxcd.io", "HelmRelease", labels.get("helm.toolkit.fluxcd.io/namespace", ""),
                       labels["helm.toolkit.fluxcd.io/name"]))
        if "kustomize.toolkit.fluxcd.io/name" in labels:
            self.kick(("kustomize.toolkit.fluxcd.io", "Kustomization",
                       labels.get("kustomize.toolkit.fluxcd.io/namespace", ""), labels["kustomize.toolkit.fluxcd.io/name"]))
        for reconciler in self._watchers.get(gk, ()):
            if id(reconciler) in woken:
                continue
            woken.add(id(reconciler))
            waiting = self._waiting[id(reconciler)]
            for k in waiting:
                self.kick(k)
            waiting.clear()

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                key = next(iter(self._pending))
                del self._pending[key]
                await self._run_one(key)
                # Let the event pump and the API server breathe between reconciles.
                await asyncio.sleep(0)

    async def _run_one(self, key: Key) -> None:
        reconciler = self._by_kind.get(key[:2])
        if reconciler is None:
            return
        group, kind, namespace, name = key
        obj = self.store.get(group, kind, namespace or None, name)
        if obj is None:
            reconciler.forget(key)
            self._waiting[id(reconciler)].discard(key)
            return
        self.reconcile_count += 1
        try:
            result = await reconciler.reconcile(obj)
        except Exception:   # noqa: BLE001 - a broken object must not stop the other controllers
            log.exception("%s: reconciling %s/%s/%s failed", reconciler.component, kind, namespace, name)
            result = Result(requeue_after=ERROR_RETRY)
        self._handled(reconciler, key)
        if result.wait:
            self._waiting[id(reconciler)].add(key)
        if result.requeue_after is not None:
            self.kick(key, max(result.requeue_after, 0.001))

    def _handled(self, reconciler: Reconciler, key: Key) -> None:
        """Record the reconcile request a reconcile handled, as the real controllers do after
        every reconcile: kustomize-controller v1.4.0 ``finalizeStatus`` and helm-controller v1.1.0
        ``Reconcile`` (deferred patch) set ``status.lastHandledReconcileAt`` to the value of
        ``reconcile.fluxcd.io/requestedAt`` (what ``flux reconcile`` waits for)."""
        if key[:2] not in HANDLES_REQUESTS:
            return
        group, kind, namespace, name = key
        obj = self.store.peek(group, kind, namespace or None, name)
        if obj is None or (obj.get("spec") or {}).get("suspend") or not self.controller_available(reconciler.component):
            return
        requested = (obj["metadata"].get("annotations") or {}).get(RECONCILE_REQUEST)
        if requested is not None and (obj.get("status") or {}).get("lastHandledReconcileAt") != requested:
            try:
                self.store.patch_status(group, kind, namespace or None, name, {"lastHandledReconcileAt": requested})
            except ApiError as exc:
                log.debug("lastHandledReconcileAt for %s/%s skipped: %s", kind, name, exc)

    # ------------------------------------------------------------------ helpers for reconcilers

    def write_status(self, obj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any] | None:
        """Replace the object's status (a no-op when unchanged); ``None`` if the object is gone."""
        group, kind, namespace, name = key_of(obj)
        try:
            return self.store.update_status(group, kind, namespace or None, name, status)
        except ApiError as exc:
            log.debug("status write for %s/%s skipped: %s", kind, name, exc)
            return None

    def emit(self, obj: dict[str, Any], reason: str, message: str, component: str,
             type_: str = "Normal") -> None:
        """Record a core/v1 Event; a repeat of the same one bumps ``count`` like client-go."""
        uid = obj["metadata"].get("uid", "")
        dedupe = (uid, reason, message)
        namespace = obj["metadata"].get("namespace") or "default"
        existing_name = self._events.get(dedupe)
        if existing_name is not None:
            existing = self.store.get("", "Event", namespace, existing_name)
            if existing is not None:
                existing["count"] = int(existing.get("count") or 1) + 1
                existing["lastTimestamp"] = now_rfc3339()
                existing["metadata"].pop("resourceVersion", None)
                try:
                    self.store.update(existing)
                except ApiError:
                    pass
                return
        event = new_event(obj, reason, message, component, type_)
        try:
            created = self.store.create(event)
        except ApiError as exc:        # e.g. the namespace is being deleted
            log.debug("event %s for %s dropped: %s", reason, obj["metadata"].get("name"), exc)
            return
        self._events[dedupe] = created["metadata"]["name"]

    def controller_available(self, name: str) -> bool:
        """Whether the Flux controller Deployment ``name`` runs (True when Flux has none installed).

        Nothing reconciles before its controller's pod is up, as on a real cluster; objects
        created without ``flux bootstrap`` (unit tests) are reconciled directly.
        """
        dep = self.store.peek("apps", "Deployment", "flux-system", name)
        return dep is None or health(dep).current

    def objects(self, group: str, kind: str, namespace: str | None = None,
                label_selector: str | None = None) -> Iterable[dict[str, Any]]:
        """Stored objects (not copies) of a kind; empty when the kind is not served."""
        if self.store.kinds.by_kind(group, kind) is None:
            return []
        return list(self.store.iter_objects(group, kind, namespace, label_selector))
