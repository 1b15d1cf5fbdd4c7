"""The lab API's datastore: objects in memory, a global resourceVersion, watch history.

This plays etcd/SQLite behind the lab API server, and is also the API that simulated
controllers (Flux, K3s) running in the same event loop use directly. It is not
thread-safe: call it from the event loop that serves the API.

Semantics follow the real API server where drtool or kubectl can see them:

* every write bumps one global, monotonically increasing ``resourceVersion``;
  a write that changes nothing is a no-op (no new version, no event);
* ``metadata.generation`` starts at 1 and grows only when something outside
  ``metadata``/``status`` changes; status writes never bump it;
* for kinds with a ``status`` subresource, main-resource updates keep the stored status;
* delete of an object with ``metadata.finalizers`` only sets ``deletionTimestamp``; the
  object goes away when an update empties its finalizers;
* a bounded history of events lets watches resume from a resourceVersion; older
  versions raise ``Gone`` (HTTP 410), and ``compact()`` forces that on purpose.

Stored objects are never mutated in place (a write stores a new dict), so history
entries and internal subscribers can share them without copying.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import secrets
import string
import tempfile
import uuid
from collections import deque
from dataclasses import asdict
from typing import Any, Iterator, NamedTuple

from . import kine
from .kinds import KindInfo, KindRegistry, kind_from_crd, split_api_version
from .objects import SYSTEM_METADATA, clone, merge_patch, now_rfc3339, spec_part, validate_name
from .selectors import FieldSelector, LabelSelector
from .status import AlreadyExists, ApiError, BadRequest, Conflict, Gone, Invalid, NotFound

__all__ = ["Store", "Event", "ApiError", "AlreadyExists", "Conflict", "Gone", "Invalid", "NotFound",
           "BadRequest"]

log = logging.getLogger(__name__)

Key = tuple[str, str]          # (namespace or "", name)
CRD_GROUP = "apiextensions.k8s.io"
PERSIST_DELAY = 0.2            # seconds: debounce so a burst of writes is one file write


class Event(NamedTuple):
    """One change, as kept in the watch history."""

    rv: int
    type: str                  # ADDED | MODIFIED | DELETED
    obj: dict[str, Any]        # the stored snapshot; never mutate it


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise Invalid("metadata: Required value")
    return meta


class Store:
    """In-memory object store with watch history and optional JSON persistence."""

    def __init__(self, persist_path: str | None = None, history: int = 10000):
        self.kinds = KindRegistry.with_builtins()
        self.resource_version = 0
        self._objects: dict[tuple[str, str], dict[Key, dict[str, Any]]] = {}
        self._history: deque[Event] = deque(maxlen=max(1, history))
        # Every event with rv > _window_start is still in the history.
        self._window_start = 0
        self._subscribers: dict[asyncio.Queue, bool] = {}   # queue -> deliver copies?
        self._extra_kinds: dict[tuple[str, str], KindInfo] = {}   # register_kind() calls, persisted
        self.persist_path = persist_path
        self._flush_handle: asyncio.TimerHandle | None = None
        if persist_path and os.path.exists(persist_path):
            self._load(persist_path)

    # ----------------------------------------------------------------- kinds

    def register_kind(self, group: str, version: str, kind: str, plural: str, namespaced: bool,
                      subresources: tuple[str, ...] = ("status",), short_names: tuple[str, ...] = ()) -> None:
        """Serve ``kind`` under ``group/version`` (adds the version if the kind is known)."""
        info = self.kinds.add(KindInfo(group, (version,), kind, plural, namespaced, tuple(subresources),
                                       tuple(short_names)))
        if not info.builtin:
            self._extra_kinds[(group, kind)] = info

    def kind_info(self, group: str, kind: str) -> KindInfo:
        """The registered kind, or ``NotFound`` like an API server without that resource."""
        info = self.kinds.by_kind(group, kind)
        if info is None:
            gv = f"{group}/" if group else ""
            raise NotFound(f"the server could not find the requested resource ({gv}{kind})", kind=kind)
        return info

    def _info_for(self, obj: dict[str, Any]) -> KindInfo:
        if not isinstance(obj, dict) or not obj.get("apiVersion") or not obj.get("kind"):
            raise BadRequest("Object 'Kind' or 'apiVersion' is missing")
        group, _ = split_api_version(obj["apiVersion"])
        return self.kind_info(group, obj["kind"])

    def _key(self, info: KindInfo, namespace: str | None, name: str) -> Key:
        return ((namespace or "default") if info.namespaced else "", name)

    def _bucket(self, info: KindInfo) -> dict[Key, dict[str, Any]]:
        return self._objects.setdefault((info.group, info.kind), {})

    # ----------------------------------------------------------------- reads

    def get(self, group: str, kind: str, namespace: str | None, name: str) -> dict | None:
        """A deep copy of the object, or ``None`` when it does not exist."""
        obj = self.peek(group, kind, namespace, name)
        return clone(obj) if obj is not None else None

    def peek(self, group: str, kind: str, namespace: str | None, name: str) -> dict | None:
        """Like ``get`` but without copying: the caller must not mutate the result."""
        info = self.kinds.by_kind(group, kind)
        if info is None:
            return None
        return self._objects.get((group, kind), {}).get(self._key(info, namespace, name))

    def list(self, group: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None, field_selector: str | None = None) -> list[dict]:
        """Deep copies of matching objects, ordered by namespace then name (etcd key order)."""
        return [clone(o) for o in self.iter_objects(group, kind, namespace, label_selector, field_selector)]

    def iter_objects(self, group: str, kind: str, namespace: str | None = None,
                     label_selector: str | LabelSelector | None = None,
                     field_selector: str | FieldSelector | None = None) -> Iterator[dict]:
        """Matching stored objects without copying, in key order; do not mutate them."""
        labels = label_selector if isinstance(label_selector, LabelSelector) else LabelSelector.parse(label_selector)
        fields = field_selector if isinstance(field_selector, FieldSelector) else FieldSelector.parse(field_selector)
        bucket = self._objects.get((group, kind), {})
        name = fields.exact_name()
        if name is not None and namespace is not None:
            info = self.kind_info(group, kind)
            one = bucket.get(self._key(info, namespace, name))
            candidates: Any = [(None, one)] if one is not None else []
        else:
            candidates = sorted(bucket.items(), key=lambda kv: kv[0])
        for key, obj in candidates:
            if namespace is not None and key is not None and key[0] != namespace:
                continue
            if labels and not labels.matches(obj["metadata"].get("labels")):
                continue
            if fields and not fields.matches(obj):
                continue
            yield obj

    # ----------------------------------------------------------------- writes

    def create(self, obj: dict, *, keep_status: bool = True) -> dict:
        """Store a new object and return it with server-set metadata.

        Raises ``AlreadyExists`` (409), ``Invalid`` (422) or ``NotFound`` for unknown kinds.
        ``keep_status=False`` drops the body's status as a real API server does for kinds
        with a status subresource (the HTTP layer uses that; controllers keep theirs).
        """
        info = self._info_for(obj)
        new = clone(obj)
        meta = _meta(new)
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))
            meta["name"] = f"{meta['generateName']}{suffix}"
        validate_name(info.kind, meta.get("name"))
        if info.namespaced:
            meta["namespace"] = meta.get("namespace") or "default"
        else:
            meta.pop("namespace", None)
        key = self._key(info, meta.get("namespace"), meta["name"])
        bucket = self._bucket(info)
        if key in bucket:
            raise AlreadyExists(f'{info.resource} "{meta["name"]}" already exists',
                                kind=info.plural, name=meta["name"], group=info.group)
        for field in SYSTEM_METADATA:
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta["generation"] = 1
        new["apiVersion"] = info.api_version()
        if info.has_status and not keep_status:
            new.pop("status", None)
        self._default_on_create(info, new)
        return clone(self._commit(info, key, new, "ADDED"))

    @staticmethod
    def _normalize(info: KindInfo, obj: dict[str, Any]) -> None:
        """Conversions the API server applies on every write (Secret ``stringData`` → ``data``)."""
        if info.group == "" and info.kind == "Secret" and obj.get("stringData"):
            data = dict(obj.get("data") or {})
            for k, v in obj.pop("stringData").items():
                data[k] = base64.b64encode(str(v).encode()).decode()
            obj["data"] = data

    def _default_on_create(self, info: KindInfo, obj: dict[str, Any]) -> None:
        """Fields the real API server (or its always-on controllers) fill in at creation."""
        self._normalize(info, obj)
        if info.group == "" and info.kind == "Pod":
            obj.setdefault("status", {}).setdefault("phase", "Pending")
        elif info.group == "" and info.kind == "Namespace":
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj.setdefault("status", {}).setdefault("phase", "Active")
        elif info.group == CRD_GROUP and info.kind == "CustomResourceDefinition":
            self._accept_crd(obj)

    def _accept_crd(self, crd: dict[str, Any]) -> None:
        """Register the CRD's kind and mark it Established, as the real apiextensions server does."""
        declared = kind_from_crd(crd)
        if declared is None:
            raise Invalid(f'CustomResourceDefinition "{crd["metadata"].get("name")}" is invalid: '
                          "spec: group, names.kind, names.plural and a served version are required")
        expected = f"{declared.plural}.{declared.group}"
        if crd["metadata"]["name"] != expected:
            raise Invalid(f'CustomResourceDefinition "{crd["metadata"]["name"]}" is invalid: '
                          f'metadata.name: Invalid value: must be spec.names.plural+"."+spec.group ({expected})')
        self.kinds.remove(declared.group, declared.kind)   # a CRD update replaces the served versions
        self.kinds.add(declared)
        names = crd["spec"]["names"]
        # A condition's lastTransitionTime moves only when its status does (apimachinery
        # SetStatusCondition): re-applying an unchanged CRD must change nothing.
        before = {c.get("type"): c.get("lastTransitionTime")
                  for c in (crd.get("status") or {}).get("conditions") or [] if c.get("status") == "True"}
        ts = now_rfc3339()
        crd["status"] = {
            "acceptedNames": clone(names),
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": before.get("NamesAccepted") or ts},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted",
                 "lastTransitionTime": before.get("Established") or ts},
            ],
            "storedVersions": [next((v["name"] for v in crd["spec"].get("versions") or []
                                     if v.get("storage")), declared.versions[0])],
        }

    def update(self, obj: dict) -> dict:
        """Replace an object (PUT). Checks ``metadata.resourceVersion`` when it is set.

        Status is kept from the stored object for kinds with a status subresource.
        Raises ``NotFound``, ``Conflict`` (stale resourceVersion) or ``Invalid``.
        """
        info = self._info_for(obj)
        meta = _meta(obj)
        old = self._existing(info, meta.get("namespace"), meta.get("name"))
        self._check_rv(info, old, meta.get("resourceVersion"))
        new = clone(obj)
        new["apiVersion"] = info.api_version()
        self._keep_system_metadata(old, new)
        if info.has_status:
            self._copy_status(old, new)
        if info.group == CRD_GROUP and info.kind == "CustomResourceDefinition":
            self._accept_crd(new)
        return clone(self._write(info, old, new))

    def apply(self, obj: dict) -> dict:
        """Create, or replace the spec-like fields plus labels/annotations; status is kept.

        A server-side-apply-ish convenience for controllers: applying the same object
        twice is a no-op (no new resourceVersion, no event).
        """
        info = self._info_for(obj)
        meta = _meta(obj)
        old = self.peek(info.group, info.kind, meta.get("namespace"), meta.get("name") or "")
        if old is None:
            return self.create(obj)
        new = {k: clone(v) for k, v in old.items() if k in ("apiVersion", "kind", "metadata", "status")}
        new["metadata"] = dict(new["metadata"])
        new.update({k: clone(v) for k, v in spec_part(obj).items()})
        for field in ("labels", "annotations", "ownerReferences", "finalizers"):
            if field in meta:
                new["metadata"][field] = clone(meta[field])
        if info.group == CRD_GROUP and info.kind == "CustomResourceDefinition":
            self._accept_crd(new)
        return clone(self._write(info, old, new))

    def patch(self, group: str, kind: str, namespace: str | None, name: str, patch: dict,
              *, subresource: str | None = None) -> dict:
        """Merge-patch an object (or only its status with ``subresource="status"``)."""
        info = self.kind_info(group, kind)
        old = self._existing(info, namespace, name)
        return self.replace_patched(info, old, merge_patch(old, patch), subresource=subresource)

    def replace_patched(self, info: KindInfo, old: dict, patched: dict, *, subresource: str | None = None) -> dict:
        """Store ``patched`` (``old`` after any kind of patch) with the rules of the target."""
        if not isinstance(patched, dict):
            raise BadRequest("the patch did not produce an object")
        self._check_rv(info, old, (patched.get("metadata") or {}).get("resourceVersion"))
        if subresource == "status":
            new = dict(old)
            if "status" in patched:
                new["status"] = clone(patched["status"])
            else:
                new.pop("status", None)
            return clone(self._write(info, old, new))
        new = clone(patched)
        if not isinstance(new.get("metadata"), dict):
            raise Invalid("metadata: Required value")
        new["kind"] = old["kind"]
        new["apiVersion"] = info.api_version()
        new["metadata"]["name"], new["metadata"]["namespace"] = old["metadata"]["name"], old["metadata"].get("namespace")
        if not info.namespaced:
            new["metadata"].pop("namespace", None)
        self._keep_system_metadata(old, new)
        if info.has_status:
            self._copy_status(old, new)
        if info.group == CRD_GROUP and info.kind == "CustomResourceDefinition":
            self._accept_crd(new)
        return clone(self._write(info, old, new))

    def update_status(self, group: str, kind: str, namespace: str | None, name: str, status: dict) -> dict:
        """Replace ``status``; never bumps ``metadata.generation``. Raises ``NotFound``."""
        info = self.kind_info(group, kind)
        old = self._existing(info, namespace, name)
        new = dict(old)
        new["status"] = clone(status)
        return clone(self._write(info, old, new))

    def patch_status(self, group: str, kind: str, namespace: str | None, name: str, patch: dict) -> dict:
        """Merge-patch ``status``; never bumps ``metadata.generation``. Raises ``NotFound``."""
        info = self.kind_info(group, kind)
        old = self._existing(info, namespace, name)
        new = dict(old)
        new["status"] = merge_patch(old.get("status") or {}, patch)
        return clone(self._write(info, old, new))

    def delete(self, group: str, kind: str, namespace: str | None, name: str) -> dict | None:
        """Delete an object; returns its last state, or ``None`` if it did not exist.

        With finalizers the object only gets ``deletionTimestamp`` and stays until an
        update removes them. Deleting a Namespace deletes what it holds; deleting a CRD
        deletes its objects and stops serving its kind.
        """
        info = self.kind_info(group, kind)
        old = self.peek(group, kind, namespace, name)
        if old is None:
            return None
        if old["metadata"].get("finalizers"):
            if old["metadata"].get("deletionTimestamp"):
                return clone(old)
            new = dict(old)
            new["metadata"] = dict(old["metadata"], deletionTimestamp=now_rfc3339(),
                                   deletionGracePeriodSeconds=0)
            return clone(self._commit(info, self._key(info, namespace, name), new, "MODIFIED"))
        self._cascade(info, old)
        return clone(self._remove(info, old))

    def _cascade(self, info: KindInfo, obj: dict[str, Any]) -> None:
        if info.group == "" and info.kind == "Namespace":
            ns = obj["metadata"]["name"]
            for other in self.kinds.all():
                if other.namespaced:
                    for o in list(self.iter_objects(other.group, other.kind, ns)):
                        self.delete(other.group, other.kind, ns, o["metadata"]["name"])
        elif info.group == CRD_GROUP and info.kind == "CustomResourceDefinition":
            declared = kind_from_crd(obj)
            if declared is not None:
                for o in list(self.iter_objects(declared.group, declared.kind)):
                    key = self._key(declared, o["metadata"].get("namespace"), o["metadata"]["name"])
                    self._commit(declared, key, None, "DELETED", old=o)
                self.kinds.remove(declared.group, declared.kind)
                self._objects.pop((declared.group, declared.kind), None)

    # ----------------------------------------------------------------- internals

    def _existing(self, info: KindInfo, namespace: str | None, name: str | None) -> dict[str, Any]:
        if not name:
            raise Invalid(f'{info.kind} "" is invalid: metadata.name: Required value', kind=info.kind)
        old = self._objects.get((info.group, info.kind), {}).get(self._key(info, namespace, name))
        if old is None:
            raise NotFound(f'{info.resource} "{name}" not found', kind=info.plural, name=name, group=info.group)
        return old

    def _check_rv(self, info: KindInfo, old: dict[str, Any], rv: Any) -> None:
        if rv and str(rv) != old["metadata"]["resourceVersion"]:
            name = old["metadata"]["name"]
            raise Conflict(f'Operation cannot be fulfilled on {info.resource} "{name}": the object has been '
                           "modified; please apply your changes to the latest version and try again",
                           kind=info.plural, name=name, group=info.group)

    @staticmethod
    def _keep_system_metadata(old: dict[str, Any], new: dict[str, Any]) -> None:
        meta = new.setdefault("metadata", {})
        for field in SYSTEM_METADATA:
            if field in old["metadata"]:
                meta[field] = old["metadata"][field]
            else:
                meta.pop(field, None)
        meta["name"] = old["metadata"]["name"]
        if "namespace" in old["metadata"]:
            meta["namespace"] = old["metadata"]["namespace"]

    @staticmethod
    def _copy_status(old: dict[str, Any], new: dict[str, Any]) -> None:
        if "status" in old:
            new["status"] = old["status"]
        else:
            new.pop("status", None)

    def _write(self, info: KindInfo, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        """Store ``new`` over ``old``: generation rule, finalizer completion, no-op detection."""
        meta = new["metadata"] = dict(new["metadata"])
        self._normalize(info, new)
        if spec_part(new) != spec_part(old):
            meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return self._remove(info, old)
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new == old:
            return old
        key = self._key(info, meta.get("namespace"), meta["name"])
        return self._commit(info, key, new, "MODIFIED")

    def _remove(self, info: KindInfo, old: dict[str, Any]) -> dict[str, Any]:
        key = self._key(info, old["metadata"].get("namespace"), old["metadata"]["name"])
        return self._commit(info, key, None, "DELETED", old=old)

    def _commit(self, info: KindInfo, key: Key, new: dict[str, Any] | None, type_: str,
                old: dict[str, Any] | None = None) -> dict[str, Any]:
        self.resource_version += 1
        bucket = self._bucket(info)
        if new is None:                      # deletion: the event carries the last state, new rv
            bucket.pop(key, None)
            snapshot = dict(old or {})
            snapshot["metadata"] = dict(snapshot["metadata"], resourceVersion=str(self.resource_version))
        else:
            new["metadata"]["resourceVersion"] = str(self.resource_version)
            bucket[key] = snapshot = new
        if len(self._history) == self._history.maxlen:
            self._window_start = self._history[0].rv
        self._history.append(Event(self.resource_version, type_, snapshot))
        for queue, copy in list(self._subscribers.items()):
            queue.put_nowait((type_, clone(snapshot) if copy else snapshot))
        self._schedule_flush()
        return snapshot

    # ----------------------------------------------------------------- watch support

    def subscribe(self, *, copy: bool = True) -> "asyncio.Queue[tuple[str, dict]]":
        """A queue receiving ``(type, obj)`` for every later change, of every kind.

        ``copy=False`` delivers the shared stored snapshot (faster; do not mutate it).
        """
        queue: asyncio.Queue = asyncio.Queue()
        self._subscribers[queue] = copy
        return queue

    def unsubscribe(self, q: asyncio.Queue) -> None:
        self._subscribers.pop(q, None)

    def events_since(self, rv: int) -> list[Event]:
        """History events after ``rv``; raises ``Gone`` (410) when ``rv`` left the window."""
        if rv < self._window_start:
            raise Gone(f"too old resource version: {rv} ({self._window_start + 1})")
        out: list[Event] = []
        for ev in reversed(self._history):
            if ev.rv <= rv:
                break
            out.append(ev)
        out.reverse()
        return out

    def compact(self) -> None:
        """Forget the watch history: resuming from any earlier version now gets 410 Gone."""
        self._history.clear()
        self._window_start = self.resource_version

    @property
    def oldest_resumable_version(self) -> int:
        """The lowest resourceVersion a watch can still resume from."""
        return self._window_start

    def object_count(self) -> int:
        return sum(len(b) for b in self._objects.values())

    # ----------------------------------------------------------------- persistence

    def _schedule_flush(self) -> None:
        if not self.persist_path:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()                     # no loop (scripts, unit tests): write now
            return
        if self._flush_handle is None:
            self._flush_handle = loop.call_later(PERSIST_DELAY, self.flush)

    def flush(self) -> None:
        """Write the state to ``persist_path`` now (atomically: temp file + rename)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self.persist_path:
            return
        state = {
            "resourceVersion": self.resource_version,
            "kinds": [asdict(k) for k in self._extra_kinds.values()],
            "objects": [o for bucket in self._objects.values() for o in bucket.values()],
        }
        if kine.is_sqlite_path(self.persist_path):
            kine.write_state(self.persist_path, state)
            return
        directory = os.path.dirname(os.path.abspath(self.persist_path))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".state-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(state, fh, separators=(",", ":"))
            os.replace(tmp, self.persist_path)
        except BaseException:
            os.unlink(tmp)
            raise

    def _load(self, path: str) -> None:
        if kine.is_sqlite_path(path):
            state = kine.read_state(path)
        else:
            with open(path) as fh:
                state = json.load(fh)
        for raw in state.get("kinds", []):
            fields = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
            info = self.kinds.add(KindInfo(**fields))
            self._extra_kinds[(info.group, info.kind)] = info
        objects = state.get("objects", [])
        # CRDs first, so the kinds of the custom objects are known when those load.
        for obj in sorted(objects, key=lambda o: o.get("kind") != "CustomResourceDefinition"):
            if obj.get("kind") == "CustomResourceDefinition":
                declared = kind_from_crd(obj)
                if declared is not None:
                    self.kinds.add(declared)
            group, _ = split_api_version(obj["apiVersion"])
            info = self.kinds.by_kind(group, obj["kind"])
            if info is None:
                log.warning("dropping stored %s %s: kind no longer served", obj["kind"], obj["metadata"]["name"])
                continue
            self._bucket(info)[self._key(info, obj["metadata"].get("namespace"), obj["metadata"]["name"])] = obj
        self.resource_version = int(state.get("resourceVersion", 0))
        # Like a restarted API server: no history, so older versions get 410 on resume.
        self._window_start = self.resource_version
