"""The waiting engine: one watcher, the policy of ``assessment``, fail fast, stuck, deadline."""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterable, Mapping, overload

from drtool.converge.assessment import (assess, required_kinds, settled_fingerprint, split_id, stuck_causes,
                                        unmet_expectations)
from drtool.converge.events import fetch_events
from drtool.converge.options import ConvergeOptions
from drtool.converge.results import ConvergeResult, Failure, ObjectReport, Progress
from drtool.errors import DrtoolError
from drtool.kube import graph
from drtool.kube.client import KubeTransport
from drtool.kube.nudge import NUDGED_KINDS, SOURCE_KINDS, NudgePlanner, patch_body, request_value
from drtool.kube.watcher import DEFAULT_KINDS, KindSpec, ObjectRecord, Watcher
from drtool.secret import redact

log = logging.getLogger(__name__)

MAX_FAILURES_WITH_EVENTS = 5
CONFIRM_RETRY_S = 0.5   # after a fresh list disagreed with the watches, wait this long before listing again


def as_transport(api_client):
    return api_client if hasattr(api_client, "get_json") and hasattr(api_client, "watch") else KubeTransport(api_client)


# --- the engine --------------------------------------------------------------------------------

class Converger:
    """Waits for convergence with one watcher; see the module docstring.

    ``api_client`` is a ``kubernetes.client.ApiClient`` (or anything with the
    ``KubeTransport`` interface). ``clock`` is monotonic seconds; ``wall`` converts to the
    epoch times the report shows. ``on_progress(Progress)`` is called at most every
    ``progress_interval_s`` from the waiting thread.
    """

    def __init__(self, api_client, options: ConvergeOptions, clock: Callable[[], float] = time.monotonic,
                 on_progress: Callable[[Progress], None] | None = None, *,
                 wall: Callable[[], float] = time.time, kinds: Iterable[KindSpec] = DEFAULT_KINDS,
                 tick_s: float = 0.05, progress_interval_s: float = 0.5, watcher_options: Mapping | None = None):
        self.transport = as_transport(api_client)
        self.options = options
        self.clock = clock
        self.wall = wall
        self.on_progress = on_progress
        self.tick_s = tick_s
        self.progress_interval_s = progress_interval_s
        self.kinds = tuple(kinds)
        self.watcher = Watcher(self.transport, self.kinds, clock=clock, on_change=self._on_change,
                               **dict(watcher_options or {}))
        self._confirm_after = -1e9
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._not_done: dict[str, ObjectRecord] = {}
        self._problems: dict[str, tuple[str, str, float]] = {}   # id -> (reason, message, since)
        self._fatal: dict[str, tuple[str, str]] = {}
        self._graced: set[str] = set()
        self._fingerprints: dict[str, tuple] = {}
        self._last_change = -1e18
        self._planner = NudgePlanner()
        self._nudges: list[dict] = []

    # Called from watcher threads: keep the per-object bookkeeping incremental, so a tick
    # costs O(pending), not O(objects).
    def _on_change(self, rec: ObjectRecord | None, deleted: bool) -> None:
        if rec is not None:
            oid = rec.id
            verdict = None if deleted else assess(rec.kind, rec.obj, rec.status, self.options)
            now = self.clock()
            with self._lock:
                fp = None if deleted else settled_fingerprint(rec.kind, rec.obj, bool(verdict and verdict.done))
                if deleted or (fp is not None and self._fingerprints.get(oid) != fp):
                    self._last_change = now
                    if fp is not None:
                        self._fingerprints[oid] = fp
                if verdict is None or not verdict.counted or verdict.done:
                    self._not_done.pop(oid, None)
                else:
                    self._not_done[oid] = rec
                if verdict is not None and verdict.problem and verdict.counted and not verdict.done:
                    since = self._problems.get(oid, (None, None, now))[2]
                    self._problems[oid] = (*verdict.problem, since)
                    if verdict.fatal_now:
                        self._fatal[oid] = verdict.problem
                    else:
                        self._fatal.pop(oid, None)
                    if verdict.graced:
                        self._graced.add(oid)
                    else:
                        self._graced.discard(oid)
                else:
                    self._problems.pop(oid, None)
                    self._fatal.pop(oid, None)
                    self._graced.discard(oid)
        self._wake.set()

    @overload
    def _to_wall(self, t: float) -> float: ...

    @overload
    def _to_wall(self, t: float | None) -> float | None: ...

    def _to_wall(self, t: float | None) -> float | None:
        return None if t is None else round(self._wall0 + (t - self._mono0), 3)

    def run(self) -> ConvergeResult:
        """Wait until converged, a fail-fast problem, or the deadline; never raises for those."""
        self._mono0, self._wall0 = self.clock(), self.wall()
        self._last_change = max(self._last_change, self._mono0)
        deadline = self._mono0 + self.options.deadline_s
        last_progress = -1e9
        self.watcher.start()
        try:
            while True:
                self._wake.wait(self.tick_s)
                self._wake.clear()
                now = self.clock()
                if self.options.nudge:
                    self._nudge(now)
                fatal = self._fatal_now(now)
                if fatal and not self.options.keep_waiting:
                    return self._result("failed", now, fatal)
                stuck = {} if self.options.keep_waiting else self._stuck(now)
                if stuck:
                    return self._result("stuck", now, stuck)
                if not self._has_pending() and now >= self._confirm_after:
                    if self._confirmed():
                        return self._result("converged", now, {})
                    self._confirm_after = now + CONFIRM_RETRY_S
                if self.on_progress and now - last_progress >= self.progress_interval_s:
                    last_progress = now
                    self._emit_progress(now, self._pending())
                if now >= deadline:
                    return self._result("deadline", now, fatal)
        finally:
            self.watcher.stop()

    def _nudge(self, now: float) -> None:
        """Ask Flux to reconcile objects whose dependencies just became Ready (``drtool.kube.nudge``)."""
        with self._lock:
            waiting = [(oid, rec.kind, rec.namespace, rec.name, rec.obj) for oid, rec in self._not_done.items()
                       if rec.kind in NUDGED_KINDS or rec.kind in SOURCE_KINDS]
        if not waiting:
            return

        def lookup(oid: str) -> Mapping | None:
            kind, ns, name = split_id(oid)
            rec = self.watcher.get(kind, ns, name)
            return rec.obj if rec is not None else None

        for nudge in self._planner.due(waiting, lookup):
            path = self.watcher.object_path(nudge.kind, nudge.namespace, nudge.name)
            ok, error = False, ""
            if path is not None and hasattr(self.transport, "merge_patch"):
                try:
                    self.transport.merge_patch(path, patch_body(request_value()), "patch")
                    ok = True
                except DrtoolError as exc:  # the controller's own timer still gets there: never fatal
                    error = redact(str(exc))[:200]
                    log.info("reconcile request for %s failed: %s", nudge.id, error)
            self._nudges.append({"id": nudge.id, "at": self._to_wall(now), "after": nudge.after, "ok": ok,
                                 **({"error": error} if error else {})})

    def _pull_marks(self, oid: str) -> list[tuple[float, str, str]]:
        _, ns, name = split_id(oid)
        if not ns:
            return []
        query = {"fieldSelector": f"involvedObject.kind=Pod,involvedObject.name={name}"}
        try:
            body = self.transport.get_json(f"/api/v1/namespaces/{ns}/events", query, "events")
        except DrtoolError as exc:
            log.debug("events for %s unavailable: %s", oid, exc)
            return []
        items = [e for e in body.get("items") or () if (e.get("involvedObject") or {}).get("name") == name]
        return graph.pull_marks(items, lambda wall: self._mono0 + (wall - self._wall0))

    def _explained(self, edges: graph.Edges, records: list[ObjectRecord],
                   ready_at: Mapping[str, float]) -> tuple[dict, ...]:
        """``graph.explain_path`` to the last object Ready, in wall-clock seconds."""
        made_by = graph.creators(r.obj for r in self.watcher.records())
        first_seen = {r.id: r.first_seen for r in records}
        history = {r.id: [(t.at, t.reason, t.message) for t in r.history] for r in records}
        segments = graph.explain_path(edges, made_by, first_seen, ready_at, history)
        # Pulls show only in the kubelet's Events: read them for the pods on the path (a few
        # requests, once) and cut those pods' time where a pull ran.
        pulls = {seg["id"]: self._pull_marks(seg["id"]) for seg in segments if seg["id"].startswith("Pod/")}
        if any(pulls.values()):
            for oid, marks in pulls.items():
                history[oid] = sorted(history.get(oid, []) + marks)
            segments = graph.explain_path(edges, made_by, first_seen, ready_at, history)
        return tuple({**seg, "start": self._to_wall(seg["start"]), "end": self._to_wall(seg["end"]),
                      "reason": redact(seg["reason"])} for seg in segments)

    def _confirmed(self) -> bool:
        """Everything looks ready: list every kind once more before saying so.

        Watches of different kinds recover from an outage at different moments: one kind
        may already show the Kustomizations Ready while another is still reconnecting and
        has not seen the Deployments they applied. A fresh list (a few requests per kind,
        once per apparent convergence) must agree, and the watches must hold every object
        it shows, so the report misses nothing.
        """
        check = Watcher(self.transport, self.kinds)
        try:
            check.list_once()
        except DrtoolError:
            return False
        for rec in check.records():
            verdict = assess(rec.kind, rec.obj, rec.status, self.options)
            if not verdict.counted:
                continue
            if not verdict.done or self.watcher.get(rec.kind, rec.namespace, rec.name) is None:
                return False
        return not unmet_expectations(check.get, self.options)

    def _fatal_now(self, now: float) -> dict[str, tuple[str, str]]:
        grace = self.options.unschedulable_grace_s
        with self._lock:
            fatal = dict(self._fatal)
            for oid in self._graced:
                reason, message, since = self._problems[oid]
                if now - since >= grace:
                    fatal[oid] = (reason, message)
        return fatal

    def _stuck(self, now: float) -> dict[str, tuple[str, str]]:
        """Root causes when nothing changed for ``stuck_grace_s`` and nothing pending can move."""
        with self._lock:
            if now - self._last_change < self.options.stuck_grace_s or not self._not_done:
                return {}
            pending = {oid: rec.obj for oid, rec in self._not_done.items()}
        if self._waiting_kinds():
            return {}
        return stuck_causes(pending)

    def _never_appeared(self) -> list[tuple[str, str, str, str]]:
        """(id, kind, namespace, name) of expected Kustomizations/HelmReleases the watches never saw."""
        wanted = [("Kustomization", *ref.partition("/")[::2]) for ref in self.options.expected_kustomizations]
        wanted += [("HelmRelease", ns, name) for ns, name, _ in self.options.expected_helmreleases]
        return [(f"{kind}/{ns}/{name}", kind, ns, name) for kind, ns, name in wanted
                if self.watcher.get(kind, ns, name) is None]

    def _waiting_kinds(self) -> list[str]:
        synced, absent = self.watcher.synced(), self.watcher.absent()
        return [k for k, ok in synced.items() if not ok and (k not in absent or k in required_kinds(self.options))]

    def _has_pending(self) -> bool:
        """The per-tick check: cheap even with thousands of objects pending."""
        with self._lock:
            if self._not_done:
                return True
        return bool(self._waiting_kinds() or unmet_expectations(self.watcher.get, self.options))

    def _pending(self) -> list[str]:
        with self._lock:
            pending = sorted(self._not_done)
        pending += [f"{k} (not listed yet)" for k in self._waiting_kinds()]
        pending += unmet_expectations(self.watcher.get, self.options)
        return pending

    def _emit_progress(self, now: float, pending: list[str]) -> None:
        on_progress = self.on_progress
        if on_progress is None:  # run() only calls this with a callback; keeps the type checker sure of it
            return
        counts: dict[str, list[int]] = {}
        for rec in self.watcher.records():
            verdict = assess(rec.kind, rec.obj, rec.status, self.options)
            if verdict.counted:
                c = counts.setdefault(rec.kind, [0, 0])
                c[0] += verdict.done
                c[1] += 1
        with self._lock:
            problems = tuple(f"{oid}: {r}: {m}" for oid, (r, m, _) in sorted(self._problems.items())[:10])
        try:
            on_progress(Progress(round(now - self._mono0, 3), {k: (v[0], v[1]) for k, v in counts.items()},
                                 tuple(pending[:20]), problems, dict(self.transport.requests)))
        except Exception:  # a rendering bug must not abort a rebuild
            log.exception("progress callback failed")

    def _result(self, outcome: str, now: float, fatal: Mapping[str, tuple[str, str]]) -> ConvergeResult:
        records = [r for r in self.watcher.records()
                   if assess(r.kind, r.obj, r.status, self.options).counted]
        failures: list[Failure] = []
        pending: list[str] = [] if outcome == "converged" else self._pending()
        edges = graph.build_edges(r.obj for r in self.watcher.records()) if (fatal or records) else {}
        for i, (oid, (reason, message)) in enumerate(sorted(fatal.items())):
            kind, ns, name = split_id(oid)
            events = fetch_events(self.transport, kind, ns, name) if i < MAX_FAILURES_WITH_EVENTS else []
            chain = graph.blocked_chain(edges, oid)
            failures.append(Failure(oid, reason, redact(message), tuple(events), tuple(chain),
                                    graph.describe_chain(oid, chain)))
        objects = tuple(ObjectReport(
            r.id, r.kind, r.namespace, r.name, self._to_wall(r.first_seen), self._to_wall(r.ready_at),
            r.status.state, r.status.reason, redact(r.status.message),
            tuple({"at": self._to_wall(t.at), "state": t.state, "reason": t.reason, "message": redact(t.message)}
                  for t in r.history)) for r in records)
        # Expected objects that never appeared are not ready either: count and list them.
        objects += tuple(ObjectReport(oid, kind, ns, name, None, None, "NotFound", "NotFound",
                                      "expected by the inventory, never appeared", ())
                         for oid, kind, ns, name in self._never_appeared())
        ready_at = {r.id: r.ready_at for r in records if r.ready_at is not None}
        end = None
        flux_ready = [r for r in records if r.kind == "Kustomization" and r.ready_at is not None]
        if flux_ready:
            end = max(flux_ready, key=lambda r: (r.ready_at, r.id)).id
        path = tuple({**step, "ready_at": self._to_wall(step["ready_at"])}
                     for step in graph.critical_path(edges, ready_at, end))
        explained = self._explained(edges, records, ready_at) if outcome == "converged" else ()
        return ConvergeResult(
            converged=outcome == "converged", outcome=outcome,
            started=round(self._wall0, 3), ended=self._to_wall(now), objects=objects,
            critical_path=path, failures=tuple(failures), pending=tuple(pending),
            api_requests=dict(self.transport.requests),
            stuck_s=round(now - self._last_change, 1) if outcome == "stuck" else 0.0,
            nudges=tuple(self._nudges), explained_path=explained)

