"""Wait until a rebuilt cluster has converged, or say precisely why it will not.

Converged means: every Flux object Ready for its current generation, every workload Current,
every pod Ready or Succeeded (K3s's ``helm-install-*`` pods only need to complete), every Node
Ready, and every expected Kustomization and HelmRelease present and Ready at the expected chart
version; objects in ignored namespaces do not count.

The engine fails fast, unless told to keep waiting, on what will not heal by waiting: Stalled
Flux objects (``RetriesExceeded``), Kustomization build/decryption failures, CrashLoopBackOff past
a restart threshold, image pull errors, and pods Unschedulable (or missing a Secret/ConfigMap)
for longer than a grace period. A failure names the object, its condition message, its recent
Events and the chain of objects it blocks. Past the deadline the result lists what is pending.

State comes from ``drtool.kube.watcher.Watcher`` (one list + watch per kind), so waiting costs
the same number of requests for 10 objects or 12,000, and "ready at" times are when the API
said so, not when a poll happened to look.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Mapping

from drtool.errors import DrtoolError, NotConverged
from drtool.kube import graph
from drtool.kube.client import KubeTransport
from drtool.kube.nudge import NUDGED_KINDS, SOURCE_KINDS, NudgePlanner, patch_body, request_value
from drtool.kube.readiness import (CONFIG_ERROR_REASONS, FLUX_KINDS, IMAGE_PULL_REASONS, Status, condition, flux_fatal,
                                   helmrelease_chart_version, is_k3s_helm_install_pod, pod_problem,
                                   restart_count)
from drtool.kube.watcher import DEFAULT_KINDS, KindSpec, ObjectRecord, Watcher
from drtool.secret import redact

log = logging.getLogger(__name__)

MAX_EVENTS = 5          # Events quoted per failure
MAX_FAILURES_WITH_EVENTS = 5
CONFIRM_RETRY_S = 0.5   # after a fresh list disagreed with the watches, wait this long before listing again


@dataclass(frozen=True)
class ConvergeOptions:
    """What "converged" means for one cluster and how long to wait for it."""

    deadline_s: float
    """Give up (not converged) after this many seconds."""
    ignore_namespaces: tuple[str, ...] = ()
    """Objects in these namespaces are neither waited on nor reported."""
    crashloop_restarts: int = 3
    """Fail once a CrashLoopBackOff container has restarted this many times."""
    unschedulable_grace_s: float = 30
    """Fail once a pod stays Unschedulable (or misses a Secret/ConfigMap) this long."""
    keep_waiting: bool = False
    """Never fail fast: report problems but wait until converged or the deadline."""
    expected_kustomizations: tuple[str, ...] = ()
    """``namespace/name`` of Kustomizations that must exist and be Ready."""
    expected_helmreleases: tuple[tuple[str, str, str | None], ...] = ()
    """``(namespace, name, chart version or None)`` of HelmReleases that must be Ready."""
    stuck_grace_s: float = 60
    """Fail once nothing changed this long and every pending object waits on a kind no pending
    object can install (``no matches for kind``), directly or through ``dependsOn``."""
    nudge: bool = True
    """Request a reconcile (as ``flux reconcile`` does) the moment an object's dependencies are
    Ready, instead of letting it wait for its controller's requeue timer (``drtool.kube.nudge``)."""


# --- policy: how one object counts -------------------------------------------------------

@dataclass(frozen=True)
class Assessment:
    """The engine's verdict on one object."""

    counted: bool
    """False for objects that never block (ignored namespace, finished helm-install pods...)."""
    done: bool
    problem: tuple[str, str] | None = None
    """``(reason, message)`` of something that may warrant failing fast."""
    fatal_now: bool = False
    """The problem is fatal already (no grace period applies)."""
    graced: bool = False
    """The problem becomes fatal after ``unschedulable_grace_s``."""


_NOT_COUNTED = Assessment(counted=False, done=True)


def assess(kind: str, obj: Mapping, status: Status, options: ConvergeOptions) -> Assessment:
    """Classify one object for convergence (pure; the grace period is applied by the caller)."""
    meta = obj.get("metadata") or {}
    if meta.get("namespace") and meta["namespace"] in options.ignore_namespaces:
        return _NOT_COUNTED
    if kind == "Pod":
        return _assess_pod(obj, status, options)
    if kind in ("Kustomization", "HelmRelease", "GitRepository", "HelmRepository", "OCIRepository"):
        if (obj.get("spec") or {}).get("suspend"):
            return _NOT_COUNTED  # suspended on purpose: its controller will not reconcile it
        fatal = flux_fatal(obj)
        if fatal and status.state != "Terminating":
            return Assessment(True, False, fatal, fatal_now=True)
        return Assessment(True, status.current)
    if status.state == "Failed":  # Job failed, Deployment past its progress deadline
        return Assessment(True, False, (status.reason, status.message), fatal_now=True)
    return Assessment(True, status.current)


def _assess_pod(pod: Mapping, status: Status, options: ConvergeOptions) -> Assessment:
    phase = (pod.get("status") or {}).get("phase")
    owners = {r.get("kind") for r in (pod.get("metadata") or {}).get("ownerReferences") or ()}
    if is_k3s_helm_install_pod(pod):
        # K3s retries these Jobs itself; only a completed one is done, none is ever Ready.
        if phase == "Failed":
            return _NOT_COUNTED
        return Assessment(True, phase == "Succeeded")
    if phase == "Failed" and owners & {"Job", "ReplicaSet", "StatefulSet", "DaemonSet"}:
        return _NOT_COUNTED  # replaced by its controller, whose own status is what counts
    if status.current:
        return Assessment(True, True)
    problem = pod_problem(pod)
    if problem is None:
        return Assessment(True, False)
    reason = problem[0]
    if reason == "CrashLoopBackOff":
        return Assessment(True, False, problem, fatal_now=restart_count(pod) >= options.crashloop_restarts)
    if reason in IMAGE_PULL_REASONS:
        return Assessment(True, False, problem, fatal_now=True)
    if reason == "Unschedulable" or reason in CONFIG_ERROR_REASONS:
        # A Secret applied a moment later or a node still joining heals these: allow a grace.
        return Assessment(True, False, problem, graced=True)
    return Assessment(True, False, problem)


# --- stuck: nothing pending can make progress ---------------------------------------------------

# kustomize-controller v1.4.0 (internal/controller/kustomization_controller.go, reconcile → apply)
# marks Ready=False ReconciliationFailed with the server-side apply error, whose text for a kind
# the API does not serve is "<Kind>/<ns>/<name> dry-run failed: no matches for kind ...". Only a
# CRD applied by something else heals it; DependencyNotReady ("dependency 'ns/name' is not
# ready", checkDependencies) heals only when the dependency does.
NO_MATCHES = "no matches for kind"
DEPENDENCY_NOT_READY = "DependencyNotReady"


def _dependencies(oid: str, obj: Mapping) -> list[str]:
    kind, ns, _ = _split_id(oid)
    return [f"{kind}/{d.get('namespace') or ns}/{d.get('name', '')}"
            for d in (obj.get("spec") or {}).get("dependsOn") or () if isinstance(d, Mapping)]


def stuck_causes(pending: Mapping[str, Mapping]) -> dict[str, tuple[str, str]]:
    """``{id: (reason, message)}`` of the objects everything pending waits on, when every pending
    object is either a Flux object whose apply hit ``no matches for kind`` or DependencyNotReady
    behind one; empty as soon as one pending object could still make progress (a pending
    HelmRelease that may install the CRD, a pod starting, a Kustomization applying). Pure."""
    roots: dict[str, tuple[str, str]] = {}
    for oid, obj in pending.items():
        ready = condition(obj, "Ready") or {}
        if ready.get("status") == "False" and NO_MATCHES in (ready.get("message") or ""):
            roots[oid] = (ready.get("reason") or "ReconciliationFailed", ready.get("message") or "")
    if not roots:
        return {}
    blocked = set(roots)
    for _ in range(len(pending)):
        grew = False
        for oid, obj in pending.items():
            ready = condition(obj, "Ready") or {}
            if oid in blocked or ready.get("status") != "False" or ready.get("reason") != DEPENDENCY_NOT_READY:
                continue
            deps = _dependencies(oid, obj)
            if deps and any(d in blocked for d in deps):
                blocked.add(oid)
                grew = True
        if not grew:
            break
    return roots if blocked >= set(pending) else {}


def settled_fingerprint(kind: str, obj: Mapping, done: bool) -> tuple | None:
    """What must change for an object to count as having moved; None while a Flux controller is
    mid-reconcile (Reconciling=True / Ready=Unknown), which a retry of a failing apply shows each
    time without changing anything."""
    if kind in FLUX_KINDS and not done:
        ready = condition(obj, "Ready") or {}
        reconciling = condition(obj, "Reconciling") or {}
        if ready.get("status") != "False" or reconciling.get("status") == "True":
            return None
        return (False, ready.get("reason"), ready.get("message"))
    return (done,)


# --- results -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ObjectReport:
    id: str
    kind: str
    namespace: str
    name: str
    first_seen: float | None
    """None for an expected object that never appeared."""
    ready_at: float | None
    state: str
    reason: str
    message: str
    history: tuple[dict, ...]


@dataclass(frozen=True)
class Failure:
    """Why the engine stopped waiting on one object."""

    object: str
    reason: str
    message: str
    events: tuple[str, ...] = ()
    blocks: tuple[str, ...] = ()
    """Ids of the objects waiting on this one, nearest first."""
    chain: str = ""
    """E.g. ``workloads waits on infrastructure which waits on HelmRelease logging/loki``."""

    def describe(self) -> str:
        text = f"{self.object}: {self.reason}: {self.message}"
        return text + (f" ({self.chain})" if self.chain else "")


@dataclass(frozen=True)
class ConvergeResult:
    """The outcome of one wait; times are epoch seconds (wall clock)."""

    converged: bool
    outcome: str
    """``converged``, ``failed`` (fail fast), ``stuck`` (nothing can move any more) or ``deadline``."""
    started: float
    ended: float
    objects: tuple[ObjectReport, ...]
    critical_path: tuple[dict, ...]
    failures: tuple[Failure, ...]
    pending: tuple[str, ...]
    api_requests: dict[str, int]
    stuck_s: float = 0.0
    """For ``stuck``: how long nothing had changed."""
    nudges: tuple[dict, ...] = ()
    explained_path: tuple[dict, ...] = ()
    """``drtool.kube.graph.explain_path`` to the last object Ready (converged runs only):
    ``{"id", "start", "end", "cause", "reason", "via"}`` segments, earliest first."""
    """Reconcile requests sent: ``{"id", "at", "after", "ok"}`` (``after``: the dependencies that
    had just become Ready, or ``bootstrap`` for a source)."""

    @property
    def elapsed_s(self) -> float:
        return self.ended - self.started

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (the report's ``converge`` section)."""
        d = asdict(self)
        d["elapsed_s"] = round(self.elapsed_s, 3)
        d["failures"] = [{**f, "events": list(f["events"]), "blocks": list(f["blocks"])} for f in d["failures"]]
        d["objects"] = [{**o, "history": list(o["history"])} for o in d["objects"]]
        d["critical_path"] = list(d["critical_path"])
        d["pending"] = list(d["pending"])
        d["nudges"] = [{**n, "after": list(n["after"])} for n in d["nudges"]]
        d["explained_path"] = list(d["explained_path"])
        d["nudge_count"] = sum(1 for n in self.nudges if n.get("ok"))
        return d

    def pending_described(self, limit: int = 10) -> list[str]:
        """The first ``limit`` pending ids, each with its reason and message when it has one."""
        why = {o.id: o for o in self.objects}
        out = []
        for pid in self.pending[:limit]:
            o = why.get(pid)
            detail = ": ".join(x for x in (o.reason, o.message[:200]) if x) if o is not None else ""
            out.append(f"{pid} ({detail})" if detail else pid)
        return out

    def summary(self) -> str:
        """One line for the CLI."""
        if self.converged:
            return f"converged in {self.elapsed_s:.1f}s ({len(self.objects)} objects)"
        problems = "; ".join(f.describe() for f in self.failures[:3])
        if self.outcome == "failed":
            return "not converged: " + problems
        if self.outcome == "stuck":
            return (f"not converged: nothing changed for {self.stuck_s:.0f}s and every pending object waits on a "
                    f"kind the API does not serve, which no pending object can install: {problems}")
        more = f" (+{len(self.pending) - 5} more)" if len(self.pending) > 5 else ""
        text = f"not converged after {self.elapsed_s:.0f}s; pending: " + ", ".join(self.pending_described(5)) + more
        return text + (f"; problems: {problems}" if problems else "")

    def raise_for_status(self) -> "ConvergeResult":
        """Return self when converged, else raise ``NotConverged`` with the summary."""
        if not self.converged:
            raise NotConverged(redact(self.summary()))
        return self


@dataclass(frozen=True)
class Progress:
    """A live view for the caller to render."""

    elapsed_s: float
    counts: dict[str, tuple[int, int]]
    """Per kind: (done, counted)."""
    pending: tuple[str, ...]
    """Up to 20 pending ids."""
    problems: tuple[str, ...]
    api_requests: dict[str, int] = field(default_factory=dict)


# --- expectations ----------------------------------------------------------------------------

def _norm_version(v: str | None) -> str:
    return (v or "").strip().lstrip("v")


def unmet_expectations(lookup: Callable[[str, str, str], ObjectRecord | None],
                       options: ConvergeOptions) -> list[str]:
    """Pending entries for expected Kustomizations/HelmReleases that are missing, not Ready or at
    another chart version."""
    pending = []
    for ref in options.expected_kustomizations:
        ns, _, name = ref.partition("/")
        rec = lookup("Kustomization", ns, name)
        if rec is None:
            pending.append(f"Kustomization/{ns}/{name} (not found)")
    for ns, name, version in options.expected_helmreleases:
        rec = lookup("HelmRelease", ns, name)
        if rec is None:
            pending.append(f"HelmRelease/{ns}/{name} (not found)")
        elif version and rec.status.current:
            got = helmrelease_chart_version(rec.obj)
            if _norm_version(got) != _norm_version(version):
                pending.append(f"HelmRelease/{ns}/{name} (chart {got or 'unknown'}, expected {version})")
    return pending


def _required_kinds(options: ConvergeOptions) -> set[str]:
    required = {"Pod", "Deployment", "StatefulSet", "DaemonSet", "Job", "Node"}
    if options.expected_kustomizations:
        required.add("Kustomization")
    if options.expected_helmreleases:
        required.add("HelmRelease")
    return required


def _as_transport(api_client):
    return api_client if hasattr(api_client, "get_json") and hasattr(api_client, "watch") else KubeTransport(api_client)


def fetch_events(transport, kind: str, namespace: str, name: str, limit: int = MAX_EVENTS) -> list[str]:
    """The most recent Events about one object, as ``Reason: message (xN)`` lines."""
    if not namespace:
        return []
    query = {"fieldSelector": f"involvedObject.kind={kind},involvedObject.name={name}"}
    try:
        body = transport.get_json(f"/api/v1/namespaces/{namespace}/events", query, "events")
    except DrtoolError as exc:
        log.debug("events for %s/%s/%s unavailable: %s", kind, namespace, name, exc)
        return []
    items = [e for e in body.get("items") or ()
             if (e.get("involvedObject") or {}).get("name") == name
             and (e.get("involvedObject") or {}).get("kind") in (kind, None)]

    def when(e: Mapping) -> str:
        return str(e.get("lastTimestamp") or e.get("eventTime") or
                   (e.get("metadata") or {}).get("creationTimestamp") or "")
    lines = []
    for e in sorted(items, key=when)[-limit:]:
        count = e.get("count") or (e.get("series") or {}).get("count")
        suffix = f" (x{count})" if count and int(count) > 1 else ""
        lines.append(redact(f"{e.get('reason', '')}: {e.get('message', '')}{suffix}"))
    return lines


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
        self.transport = _as_transport(api_client)
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
            kind, ns, name = _split_id(oid)
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
        _, ns, name = _split_id(oid)
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
        return [k for k, ok in synced.items() if not ok and (k not in absent or k in _required_kinds(self.options))]

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
            self.on_progress(Progress(round(now - self._mono0, 3), {k: (v[0], v[1]) for k, v in counts.items()},
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
            kind, ns, name = _split_id(oid)
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


def _split_id(oid: str) -> tuple[str, str, str]:
    parts = oid.split("/")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else (parts[0], "", parts[-1])


# --- one-shot status ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SnapshotRow:
    kind: str
    namespace: str
    name: str
    state: str
    reason: str
    message: str
    done: bool
    problem: str = ""


@dataclass(frozen=True)
class Snapshot:
    """The cluster as listed once, for ``inv status``."""

    ok: bool
    rows: tuple[SnapshotRow, ...]
    counts: dict[str, tuple[int, int]]
    """Per kind: (done, counted)."""
    missing: tuple[str, ...]
    """Unmet expectations and kinds that could not be listed."""
    api_requests: dict[str, int]

    @property
    def not_done(self) -> tuple[SnapshotRow, ...]:
        return tuple(r for r in self.rows if not r.done)


def snapshot(api_client, options: ConvergeOptions, kinds: Iterable[KindSpec] = DEFAULT_KINDS) -> Snapshot:
    """List every kind once (no waiting) and judge it with the same rules as ``Converger``."""
    transport = _as_transport(api_client)
    watcher = Watcher(transport, kinds)
    watcher.list_once()
    rows, counts = [], {}
    for rec in sorted(watcher.records(), key=lambda r: (r.kind, r.namespace, r.name)):
        verdict = assess(rec.kind, rec.obj, rec.status, options)
        if not verdict.counted:
            continue
        c = counts.setdefault(rec.kind, [0, 0])
        c[0] += verdict.done
        c[1] += 1
        problem = f"{verdict.problem[0]}: {verdict.problem[1]}" if verdict.problem else ""
        rows.append(SnapshotRow(rec.kind, rec.namespace, rec.name, rec.status.state, rec.status.reason,
                                redact(rec.status.message), verdict.done, redact(problem)))
    synced, absent = watcher.synced(), watcher.absent()
    missing = [f"{k} (could not be listed)" for k, ok in synced.items()
               if not ok and (k not in absent or k in _required_kinds(options))]
    missing += unmet_expectations(watcher.get, options)
    ok = not missing and all(r.done for r in rows)
    return Snapshot(ok, tuple(rows), {k: (v[0], v[1]) for k, v in counts.items()}, tuple(missing),
                    dict(transport.requests))
