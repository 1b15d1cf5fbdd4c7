"""An in-memory stand-in for ``KubeTransport``: list, watch, discovery and Events, no HTTP.

It exists for fast, deterministic tests of the watcher and the converge engine (fault
injection included: outages, dropped streams, expired resourceVersions). It keeps the API's
semantics that the watcher relies on: one global resourceVersion, list returns it, watch
resumes after it, a version older than the retained history gets ``410 Gone``. The real paths
are tested against the lab API server.
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Iterator, Mapping

from drtool.kube.client import Gone, KubeRetryable, NotFound

def _plural(kind: str) -> str:
    low = kind.lower()
    return low + ("es" if low.endswith("s") else "s")


class InMemoryApi:
    """A tiny API server in memory. Thread-safe; watches block on a condition variable."""

    def __init__(self, flux_versions: Mapping[str, str] | None = None):
        self.requests: Counter[str] = Counter()
        self._cond = threading.Condition()
        self._rv = 0
        self._objects: dict[str, dict[tuple[str, str], dict]] = {}   # plural -> key -> obj
        self._log: list[tuple[int, str, str, dict]] = []             # (rv, plural, type, obj)
        self._window_start = 0
        self._generation_of_streams = 0
        self.down = False                                            # every request fails when True
        self.served_groups = {"source.toolkit.fluxcd.io": "v1", "kustomize.toolkit.fluxcd.io": "v1",
                              "helm.toolkit.fluxcd.io": "v2", "apps": "v1", "batch": "v1"}
        self.served_groups.update(flux_versions or {})
        self.events: list[dict] = []
        self.patches: list[tuple[str, dict]] = []                    # (path, body) of each PATCH

    # -- test controls --

    def put(self, obj: dict, event: str | None = None) -> dict:
        """Create or replace ``obj`` (kind, metadata.name, metadata.namespace required)."""
        obj = json.loads(json.dumps(obj))
        kind = obj["kind"]
        meta = obj.setdefault("metadata", {})
        key = (meta.get("namespace") or "", meta["name"])
        with self._cond:
            bucket = self._objects.setdefault(_plural(kind), {})
            etype = event or ("MODIFIED" if key in bucket else "ADDED")
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            bucket[key] = obj
            self._log.append((self._rv, _plural(kind), etype, obj))
            self._cond.notify_all()
        return obj

    def delete(self, kind: str, namespace: str, name: str) -> None:
        with self._cond:
            obj = self._objects.get(_plural(kind), {}).pop((namespace or "", name), None)
            if obj is None:
                return
            self._rv += 1
            obj = dict(obj, metadata=dict(obj["metadata"], resourceVersion=str(self._rv)))
            self._log.append((self._rv, _plural(kind), "DELETED", obj))
            self._cond.notify_all()

    def expire(self) -> None:
        """Forget history: every watch resuming from an older version gets 410 Gone."""
        with self._cond:
            self._log.clear()
            self._window_start = self._rv
            self._generation_of_streams += 1
            self._cond.notify_all()

    def drop_streams(self) -> None:
        """Close every open watch stream as a network failure would."""
        with self._cond:
            self._generation_of_streams += 1
            self._cond.notify_all()

    def set_down(self, down: bool) -> None:
        with self._cond:
            self.down = down
            if down:
                self._generation_of_streams += 1
            self._cond.notify_all()

    # -- transport interface --

    def _parse(self, path: str) -> tuple[str, str]:
        parts = path.strip("/").split("/")
        if parts[0] == "api":
            return "", parts[-1]
        if len(parts) == 2:
            return parts[1], ""
        group = parts[1]
        if self.served_groups.get(group) is None:
            raise NotFound(f"GET {path}: HTTP 404", 404)
        return group, parts[-1]

    def get_json(self, path: str, query: Mapping | None = None, category: str = "get") -> dict:
        self.requests[category] += 1
        if self.down:
            raise KubeRetryable(f"GET {path}: connection refused")
        query = dict(query or {})
        if path.endswith("/events"):
            name = dict(p.split("=", 1) for p in query.get("fieldSelector", "").split(",") if "=" in p)
            return {"items": [e for e in self.events
                              if e["involvedObject"]["name"] == name.get("involvedObject.name")]}
        group, plural = self._parse(path)
        if not plural:
            version = self.served_groups.get(group)
            if version is None:
                raise NotFound(f"GET {path}: HTTP 404", 404)
            return {"kind": "APIGroup", "name": group, "versions": [{"version": version}],
                    "preferredVersion": {"version": version}}
        with self._cond:
            items = sorted(self._objects.get(plural, {}).items())
            rv = self._rv
        limit = int(query.get("limit") or 0) or len(items) or 1
        start = int(query.get("continue") or 0)
        page = [obj for _, obj in items[start:start + limit]]
        meta = {"resourceVersion": str(rv)}
        if start + limit < len(items):
            meta["continue"] = str(start + limit)
        return {"kind": "List", "metadata": meta, "items": page}

    def merge_patch(self, path: str, body: Mapping, category: str = "patch") -> dict:
        """Merge ``body``'s metadata annotations into ``.../namespaces/<ns>/<plural>/<name>``."""
        self.requests[category] += 1
        if self.down:
            raise KubeRetryable(f"PATCH {path}: connection refused")
        parts = path.strip("/").split("/")
        plural, name = parts[-2], parts[-1]
        namespace = parts[parts.index("namespaces") + 1] if "namespaces" in parts else ""
        self.patches.append((path, json.loads(json.dumps(body))))
        with self._cond:
            current = self._objects.get(plural, {}).get((namespace, name))
            if current is None:
                raise NotFound(f"PATCH {path}: HTTP 404", 404)
            obj = json.loads(json.dumps(current))
        annotations = ((body.get("metadata") or {}).get("annotations") or {})
        obj["metadata"].setdefault("annotations", {}).update(annotations)
        return self.put(obj)

    def watch(self, path: str, query: Mapping, on_open=None) -> Iterator[dict]:
        self.requests["watch"] += 1
        if self.down:
            raise KubeRetryable(f"watch {path}: connection refused")
        _, plural = self._parse(path)
        since = int(query.get("resourceVersion") or 0)
        with self._cond:
            if since < self._window_start:
                raise Gone(f"watch {path}: HTTP 410: too old resource version", 410)
            stream_gen = self._generation_of_streams
        closed = threading.Event()
        if on_open:
            def close():
                closed.set()
                with self._cond:
                    self._cond.notify_all()
            on_open(close)
        return self._stream(plural, since, stream_gen, closed, float(query.get("timeoutSeconds", 60)))

    def _stream(self, plural, since, stream_gen, closed, timeout) -> Iterator[dict]:
        end = time.monotonic() + timeout
        while True:
            with self._cond:
                batch = [(rv, t, o) for rv, p, t, o in self._log if rv > since and p == plural]
                if not batch:
                    if closed.is_set() or time.monotonic() >= end:
                        return
                    if self._generation_of_streams != stream_gen:
                        raise KubeRetryable("watch: connection reset")
                    self._cond.wait(min(0.2, max(0.0, end - time.monotonic())))
                    continue
            for rv, etype, obj in batch:
                since = rv
                yield {"type": etype, "object": obj}
