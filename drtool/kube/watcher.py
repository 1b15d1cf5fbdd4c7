"""Keep an up-to-date picture of a cluster with one list + one watch per kind.

Waiting on thousands of objects by polling each one (``kubectl wait`` style) costs requests in
proportion to the object count and hides the moment an object turned Ready. The watcher instead
lists each kind once across all namespaces, then follows a single watch per kind from that
resourceVersion. It resumes from the last resourceVersion it saw after a disconnect (bookmarks
keep it fresh), lists again on ``410 Gone``, and reconnects with bounded exponential backoff, so
an API outage or an expired watch never loses an object.

For every object it records when it was first seen, each change of readiness state and when it
became Ready, using an injectable clock so tests can control time. Objects are trimmed to the
fields the readiness rules and the dependency graph read: 10,000 pods fit in a few tens of MB.

Kinds whose CRD is not installed yet (404 on discovery or list) are retried later with the same
bounded backoff; they count as "absent", not as failed.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Mapping, Protocol

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, stop_any, stop_when_event_set
from tenacity import wait_exponential_jitter

from drtool.errors import RetryableError
from drtool.kube.client import Gone, NotFound
from drtool.kube.readiness import Status, status_of

log = logging.getLogger(__name__)

MAX_HISTORY = 40          # state changes kept per object (first ones and the latest ones)
MAX_LIST_PAGES = 10_000   # bound on continue-token paging of one list


class Transport(Protocol):
    """What the watcher needs from the API (``drtool.kube.client.KubeTransport`` in production)."""

    requests: Counter

    def get_json(self, path: str, query: Mapping | None = None, category: str = "get") -> dict: ...

    def watch(self, path: str, query: Mapping, on_open=None) -> Iterator[dict]: ...


@dataclass(frozen=True)
class KindSpec:
    """One kind to follow."""

    group: str
    """API group; "" for the core group."""
    kind: str
    plural: str
    versions: tuple[str, ...]
    """Versions drtool understands, preferred first; the server's preferred version wins if listed."""
    namespaced: bool = True


FLUX_SOURCE = "source.toolkit.fluxcd.io"
FLUX_KUSTOMIZE = "kustomize.toolkit.fluxcd.io"
FLUX_HELM = "helm.toolkit.fluxcd.io"

DEFAULT_KINDS: tuple[KindSpec, ...] = (
    KindSpec(FLUX_SOURCE, "GitRepository", "gitrepositories", ("v1", "v1beta2")),
    KindSpec(FLUX_SOURCE, "HelmRepository", "helmrepositories", ("v1", "v1beta2")),
    KindSpec(FLUX_SOURCE, "OCIRepository", "ocirepositories", ("v1", "v1beta2")),
    KindSpec(FLUX_KUSTOMIZE, "Kustomization", "kustomizations", ("v1", "v1beta2")),
    KindSpec(FLUX_HELM, "HelmRelease", "helmreleases", ("v2", "v2beta2", "v2beta1")),
    KindSpec("apps", "Deployment", "deployments", ("v1",)),
    KindSpec("apps", "StatefulSet", "statefulsets", ("v1",)),
    KindSpec("apps", "DaemonSet", "daemonsets", ("v1",)),
    KindSpec("batch", "Job", "jobs", ("v1",)),
    KindSpec("", "Pod", "pods", ("v1",)),
    KindSpec("", "Node", "nodes", ("v1",), namespaced=False),
)


@dataclass(frozen=True)
class Transition:
    """One observed change of an object's readiness."""

    at: float
    state: str
    reason: str
    message: str


class ObjectRecord:
    """What the watcher knows about one object. Owned and updated by the watcher; read-only elsewhere."""

    __slots__ = ("kind", "namespace", "name", "obj", "status", "first_seen", "ready_at", "history")

    def __init__(self, kind: str, namespace: str, name: str, obj: dict, status: Status, now: float):
        self.kind, self.namespace, self.name = kind, namespace, name
        self.obj = obj
        self.status = status
        self.first_seen = now
        self.ready_at: float | None = now if status.current else None
        self.history: list[Transition] = [Transition(now, status.state, status.reason, status.message)]

    @property
    def id(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"

    def _observe(self, obj: dict, status: Status, now: float) -> bool:
        self.obj = obj
        if status == self.status:
            return False
        if status.current and not self.status.current:
            self.ready_at = now
        elif not status.current:
            self.ready_at = None
        self.status = status
        self.history.append(Transition(now, status.state, status.reason, status.message))
        if len(self.history) > MAX_HISTORY:
            del self.history[MAX_HISTORY // 2]
        return True


# --- trimming: keep what the readiness rules and the dependency graph read ----------------

KEPT_LABELS = frozenset({
    "kustomize.toolkit.fluxcd.io/name", "kustomize.toolkit.fluxcd.io/namespace",
    "helm.toolkit.fluxcd.io/name", "helm.toolkit.fluxcd.io/namespace",
    "helmcharts.helm.cattle.io/chart", "app.kubernetes.io/instance",
})
KEPT_SPEC = {
    "Deployment": ("replicas",), "StatefulSet": ("replicas", "updateStrategy"), "ReplicaSet": ("replicas",),
    "Kustomization": ("dependsOn", "healthChecks", "sourceRef", "wait", "suspend", "path"),
    "HelmRelease": ("dependsOn", "chart", "chartRef", "suspend", "releaseName", "targetNamespace"),
    "Pod": ("nodeName",),
}
_CONDITION_FIELDS = ("type", "status", "reason", "message", "lastTransitionTime")


def _i(value):
    """Intern short strings: thousands of objects repeat "True", "Ready", "Running"..."""
    return sys.intern(value) if isinstance(value, str) and len(value) <= 64 else value


def _trim_conditions(conditions, only_types: frozenset | None = None) -> list[dict]:
    return [{k: _i(c[k]) for k in _CONDITION_FIELDS if k in c} for c in conditions or ()
            if isinstance(c, dict) and (only_types is None or c.get("type") in only_types)]


# The pod conditions the rules read; the others (Initialized, ContainersReady...) are dropped.
_POD_CONDITIONS = frozenset({"Ready", "PodScheduled"})


def _trim_container(cs: dict) -> dict:
    out = {k: _i(cs[k]) for k in ("name", "ready", "restartCount") if k in cs}
    state = cs.get("state") or {}
    out["state"] = {_i(k): {_i(f): _i(v) for f, v in (state.get(k) or {}).items()
                            if f in ("reason", "message", "exitCode")}
                    for k in state}
    terminated = (cs.get("lastState") or {}).get("terminated")
    if terminated:
        out["lastState"] = {"terminated": {k: terminated[k] for k in ("exitCode", "reason") if k in terminated}}
    return out


def trim(kind: str, obj: Mapping) -> dict:
    """A copy of ``obj`` with only the fields drtool reads (memory matters with 10,000 pods)."""
    meta = obj.get("metadata") or {}
    small_meta = {k: _i(meta[k]) for k in ("name", "namespace", "generation", "deletionTimestamp") if k in meta}
    labels = {_i(k): _i(v) for k, v in (meta.get("labels") or {}).items() if k in KEPT_LABELS}
    if labels:
        small_meta["labels"] = labels
    owners = [{"kind": _i(r.get("kind")), "name": _i(r.get("name"))} for r in meta.get("ownerReferences") or ()]
    if owners:
        small_meta["ownerReferences"] = owners
    out = {"apiVersion": _i(obj.get("apiVersion", "")), "kind": kind, "metadata": small_meta}
    spec = obj.get("spec") or {}
    kept = {k: spec[k] for k in KEPT_SPEC.get(kind, ()) if k in spec}
    if kind == "HelmRelease" and isinstance(kept.get("chart"), dict):
        chart_spec = (kept["chart"].get("spec") or {})
        kept["chart"] = {"spec": {k: chart_spec[k] for k in ("chart", "version", "sourceRef") if k in chart_spec}}
    if kept:
        out["spec"] = kept
    status = obj.get("status")
    if isinstance(status, dict):
        if kind == "Pod":
            small = {k: _i(status[k]) for k in ("phase", "reason", "message") if k in status}
            small["conditions"] = _trim_conditions(status.get("conditions"), _POD_CONDITIONS)
            for field in ("initContainerStatuses", "containerStatuses"):
                # Ready containers tell the rules nothing; most pods end up with none kept.
                unready = [_trim_container(cs) for cs in status.get(field) or () if not cs.get("ready")]
                if unready:
                    small[field] = unready
        else:
            small = {k: v for k, v in status.items() if k not in ("inventory", "conditions", "history", "artifact")}
            small["conditions"] = _trim_conditions(status.get("conditions"))
            if status.get("history"):
                first = status["history"][0]
                small["history"] = [{k: first[k] for k in ("chartName", "chartVersion", "status") if k in first}]
        out["status"] = small
    return out


# --- the watcher ---------------------------------------------------------------------------

class _KindState:
    def __init__(self, spec: KindSpec):
        self.spec = spec
        self.version: str | None = None
        self.resource_version: str | None = None
        self.synced = False
        self.absent = False
        self.objects: dict[tuple[str, str], ObjectRecord] = {}
        self.closer: Callable[[], None] | None = None
        self.relists = 0
        self.reconnects = 0
        self.last_error = ""

    def path(self) -> str:
        s = self.spec
        base = f"/api/{self.version}" if not s.group else f"/apis/{s.group}/{self.version}"
        return f"{base}/{s.plural}"


class _Absent(RetryableError):
    """The kind's API is not served (yet); try again later."""


class Watcher:
    """Follows ``kinds`` across all namespaces with one list + watch each (one thread per kind).

    ``on_change(record, deleted)`` is called from the kind's thread when an object appears,
    changes readiness or disappears (``deleted=True``), for every Flux Kustomization/HelmRelease
    update (their graph edges and chart versions matter), and as ``on_change(None, False)``
    when a kind finishes a (re)list. Keep it quick: it runs on the watch thread.
    """

    def __init__(self, transport: Transport, kinds: Iterable[KindSpec] = DEFAULT_KINDS, *,
                 clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[ObjectRecord | None, bool], None] | None = None,
                 page_size: int = 500, watch_timeout_s: int = 60,
                 backoff_initial_s: float = 0.1, backoff_max_s: float = 2.0,
                 absent_retry_s: float = 5.0, connect_attempts: int = 100_000):
        self.transport = transport
        self.clock = clock
        self.on_change = on_change
        self.page_size = page_size
        self.watch_timeout_s = watch_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.absent_retry_s = absent_retry_s
        self.connect_attempts = connect_attempts
        self._kinds = {spec.kind: _KindState(spec) for spec in kinds}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # Lists run one at a time: each page becomes a large transient structure, and parallel
        # lists in ten threads multiply the peak memory (and malloc's per-thread arenas keep it).
        self._list_lock = threading.Lock()

    # -- public reading API --

    @property
    def requests(self) -> Counter:
        """API requests made so far, by category."""
        return self.transport.requests

    def synced(self) -> dict[str, bool]:
        """Per kind: listed at least once (True), or not yet / CRD absent (False)."""
        with self._lock:
            return {k: st.synced for k, st in self._kinds.items()}

    def absent(self) -> set[str]:
        """Kinds whose API was not served at the last attempt (CRD not installed yet)."""
        with self._lock:
            return {k for k, st in self._kinds.items() if st.absent}

    def records(self, kind: str | None = None) -> list[ObjectRecord]:
        """The current objects (all kinds, or one)."""
        with self._lock:
            states = [self._kinds[kind]] if kind else list(self._kinds.values())
            return [rec for st in states for rec in st.objects.values()]

    def get(self, kind: str, namespace: str, name: str) -> ObjectRecord | None:
        with self._lock:
            st = self._kinds.get(kind)
            return st.objects.get((namespace or "", name)) if st else None

    def object_path(self, kind: str, namespace: str, name: str) -> str | None:
        """The API path of one object at the version the watch uses; None before discovery."""
        with self._lock:
            st = self._kinds.get(kind)
            if st is None or st.version is None:
                return None
            base = st.path()
        if namespace and st.spec.namespaced:
            head, _, plural = base.rpartition("/")
            return f"{head}/namespaces/{namespace}/{plural}/{name}"
        return f"{base}/{name}"

    def stats(self) -> dict[str, dict]:
        """Per kind: version used, synced, absent, relists, reconnects, last error."""
        with self._lock:
            return {k: {"version": st.version, "synced": st.synced, "absent": st.absent,
                        "relists": st.relists, "reconnects": st.reconnects,
                        "objects": len(st.objects), "last_error": st.last_error}
                    for k, st in self._kinds.items()}

    # -- lifecycle --

    def start(self) -> None:
        """Start one daemon thread per kind."""
        for name, st in self._kinds.items():
            t = threading.Thread(target=self._run_kind, args=(st,), name=f"watch-{name}", daemon=True)
            self._threads.append(t)
            t.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every watch (aborting open streams) and wait for the threads, bounded by ``timeout``."""
        self._stop.set()
        with self._lock:
            closers = [st.closer for st in self._kinds.values() if st.closer]
        for close in closers:
            try:
                close()
            except Exception:  # stopping must never fail; the thread ends on its own timeout
                log.debug("closing a watch stream failed", exc_info=True)
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> "Watcher":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def list_once(self) -> None:
        """List every kind once, sequentially, without watching (for a one-shot status)."""
        for st in self._kinds.values():
            try:
                self._connect_list(st)
            except _Absent:
                pass

    # -- internals --

    def _discover(self, st: _KindState) -> None:
        spec = st.spec
        if not spec.group:
            st.version = spec.versions[0]
            return
        try:
            body = self.transport.get_json(f"/apis/{spec.group}", None, "discovery")
        except NotFound as exc:
            raise _Absent(f"API group {spec.group} is not served") from exc
        served = [v.get("version") for v in body.get("versions") or ()]
        preferred = (body.get("preferredVersion") or {}).get("version")
        if preferred in spec.versions:
            st.version = preferred
        else:
            st.version = next((v for v in spec.versions if v in served), preferred)
        if not st.version:
            raise _Absent(f"API group {spec.group} serves no version")

    def _connect_list(self, st: _KindState) -> None:
        """Discover the version if needed and list the kind; marks it synced."""
        try:
            if st.version is None:
                self._discover(st)
            self._list(st)
        except (NotFound, _Absent) as exc:
            st.version = None
            with self._lock:
                st.absent, st.synced = True, False
            if isinstance(exc, _Absent):
                raise
            raise _Absent(str(exc)) from exc
        with self._lock:
            st.absent = False

    def _list(self, st: _KindState) -> None:
        with self._list_lock:
            self._list_locked(st)

    def _list_locked(self, st: _KindState) -> None:
        seen: dict[tuple[str, str], dict] = {}
        token = None
        first_rv = None
        for _ in range(MAX_LIST_PAGES):
            query = {"limit": self.page_size}
            if token:
                query["continue"] = token
            body = self.transport.get_json(st.path(), query, "list")
            for item in body.get("items") or ():
                meta = item.get("metadata") or {}
                seen[(meta.get("namespace") or "", meta.get("name") or "")] = trim(st.spec.kind, item)
            if first_rv is None:
                # Watch from the first page's version: a server whose later pages are not a
                # consistent snapshot may have changed earlier pages meanwhile; replaying those
                # changes is harmless, missing them is not.
                first_rv = (body.get("metadata") or {}).get("resourceVersion")
            token = (body.get("metadata") or {}).get("continue")
            if not token:
                break
        now = self.clock()
        for key in [k for k in st.objects if k not in seen]:
            self._remove(st, key)
        for obj in seen.values():
            self._upsert(st, obj, now, trimmed=True)
        with self._lock:
            st.resource_version = first_rv
            st.synced = True
            st.relists += 1
        if self.on_change:
            self.on_change(None, False)

    def _open_watch(self, st: _KindState) -> Iterator[dict]:
        query = {"allowWatchBookmarks": True, "timeoutSeconds": self.watch_timeout_s,
                 "resourceVersion": st.resource_version}

        def remember(closer):
            with self._lock:
                st.closer = closer
            if self._stop.is_set():
                closer()
        return self.transport.watch(st.path(), query, on_open=remember)

    def _connect(self, st: _KindState) -> Iterator[dict]:
        """One connection attempt: (re)list when needed, then open the watch."""
        if self._stop.is_set():
            return iter(())
        if st.resource_version is None or st.version is None:
            self._connect_list(st)
        try:
            return self._open_watch(st)
        except Gone:
            with self._lock:
                st.resource_version = None
            self._connect_list(st)
            return self._open_watch(st)
        except NotFound as exc:
            st.version, st.resource_version = None, None
            with self._lock:
                st.absent, st.synced = True, False
            raise _Absent(str(exc)) from exc

    def _backoff_sleep(self, seconds: float) -> None:
        """tenacity's sleep between connection attempts: cut short by ``stop()``."""
        self._stop.wait(seconds)

    def _retrying(self) -> Retrying:
        backoff = wait_exponential_jitter(initial=self.backoff_initial_s, max=self.backoff_max_s,
                                          jitter=self.backoff_initial_s)

        def wait(retry_state) -> float:
            # A CRD that is not installed is polled slowly: it appears once, not every second.
            if isinstance(retry_state.outcome.exception(), _Absent):
                return max(backoff(retry_state), self.absent_retry_s)
            return backoff(retry_state)

        return Retrying(
            retry=retry_if_exception_type(RetryableError),
            wait=wait,
            stop=stop_any(stop_after_attempt(self.connect_attempts), stop_when_event_set(self._stop)),
            sleep=self._backoff_sleep,
            before_sleep=None,
            reraise=True,
        )

    def _run_kind(self, st: _KindState) -> None:
        while not self._stop.is_set():
            try:
                events = self._retrying()(self._connect, st)
            except RetryableError as exc:
                st.last_error = str(exc)
                if not self._stop.is_set():
                    log.warning("giving up watching %s: %s", st.spec.kind, exc)
                return
            except RetryError:
                return
            except Exception as exc:  # a permanent 4xx (e.g. 403): keep trying slowly, say why
                st.last_error = str(exc)
                log.warning("watching %s failed: %s", st.spec.kind, exc)
                self._stop.wait(self.backoff_max_s)
                continue
            try:
                for event in events:
                    if self._stop.is_set():
                        break
                    self._handle(st, event)
            except Gone:
                with self._lock:
                    st.resource_version = None
            except RetryableError as exc:
                st.last_error = str(exc)
                with self._lock:
                    st.reconnects += 1
                # Reconnect at once from the last resourceVersion; a failing connect backs off.
                self._stop.wait(min(self.backoff_initial_s, 0.05))
            finally:
                with self._lock:
                    st.closer = None

    def _handle(self, st: _KindState, event: dict) -> None:
        etype = event.get("type")
        obj = event.get("object") or {}
        if etype == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise Gone(f"watch {st.spec.kind}: {obj.get('message', 'resourceVersion expired')}", 410)
            raise RetryableError(f"watch {st.spec.kind}: error event {code}: {obj.get('message', '')}")
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if etype == "BOOKMARK":
            with self._lock:
                st.resource_version = rv or st.resource_version
            return
        meta = obj.get("metadata") or {}
        key = (meta.get("namespace") or "", meta.get("name") or "")
        if etype == "DELETED":
            self._remove(st, key)
        elif etype in ("ADDED", "MODIFIED"):
            self._upsert(st, obj, self.clock())
        with self._lock:
            st.resource_version = rv or st.resource_version

    def _upsert(self, st: _KindState, obj: dict, now: float, trimmed: bool = False) -> None:
        small = obj if trimmed else trim(st.spec.kind, obj)
        status = status_of(small)
        meta = small["metadata"]
        key = (meta.get("namespace") or "", meta.get("name") or "")
        with self._lock:
            rec = st.objects.get(key)
            if rec is None:
                rec = ObjectRecord(st.spec.kind, key[0], key[1], small, status, now)
                st.objects[key] = rec
                changed = True
            else:
                changed = rec._observe(small, status, now)
        if changed and self.on_change:
            self.on_change(rec, False)
        elif self.on_change and st.spec.kind in ("Kustomization", "HelmRelease"):
            # Graph edges or chart versions may change without a readiness change.
            self.on_change(rec, False)

    def _remove(self, st: _KindState, key: tuple[str, str]) -> None:
        with self._lock:
            rec = st.objects.pop(key, None)
        if rec is not None and self.on_change:
            self.on_change(rec, True)
