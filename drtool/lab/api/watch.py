"""Watch streams: newline-delimited JSON events, resumable by resourceVersion.

Semantics copied from the real API server:

* no ``resourceVersion`` (or ``"0"``): synthetic ``ADDED`` events for the current
  matching objects, then live changes;
* a ``resourceVersion``: only changes after it, from the store's bounded history;
  one that left the history gets a single ``ERROR`` event carrying a 410 ``Status``
  (the HTTP response itself is 200, as with the real server);
* with selectors, an object that stops matching is sent as ``DELETED`` and one that
  starts matching as ``ADDED``;
* ``allowWatchBookmarks`` gets a ``BOOKMARK`` (only ``metadata.resourceVersion``)
  whenever the stream has been idle for ``bookmark_interval`` seconds;
* the stream ends after ``timeoutSeconds`` or when the server ends it (fault or stop).
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any, Callable

from .kinds import KindInfo
from .selectors import FieldSelector, LabelSelector
from .status import Gone
from .store import Store

END = ("END", None)            # put into a watch queue to end that stream
MAX_BATCH = 512                # events written per socket write when they pile up


@dataclass(frozen=True)
class WatchSpec:
    """What one watch request asked for."""

    info: KindInfo
    version: str
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    resource_version: str | None
    timeout: float
    bookmarks: bool
    send_initial_events: bool = False


def _dumps(event_type: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


class WatchStream:
    """Produces the event lines of one watch; the HTTP layer writes them out."""

    def __init__(self, store: Store, spec: WatchSpec, render: Callable[[dict[str, Any]], dict[str, Any]]):
        self.store, self.spec, self._render = store, spec, render
        self._api_versions = {spec.info.api_version(v) for v in spec.info.versions}
        self._seen: set[tuple[str, str]] = set()
        self.queue: asyncio.Queue | None = None

    def _matches(self, obj: dict[str, Any]) -> bool:
        meta = obj["metadata"]
        if self.spec.namespace is not None and meta.get("namespace") != self.spec.namespace:
            return False
        if self.spec.labels and not self.spec.labels.matches(meta.get("labels")):
            return False
        return not self.spec.fields or self.spec.fields.matches(obj)

    def _event(self, event_type: str, obj: dict[str, Any], from_history: bool) -> bytes | None:
        """The line to send for a store event, or ``None`` when this watch does not see it."""
        if obj.get("kind") != self.spec.info.kind or obj.get("apiVersion") not in self._api_versions:
            return None
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        matches = self._matches(obj)
        if event_type == "DELETED":
            if not (matches or key in self._seen):
                return None
            self._seen.discard(key)
        elif matches:
            if event_type == "MODIFIED" and key not in self._seen and not from_history:
                event_type = "ADDED"
            self._seen.add(key)
        elif key in self._seen:
            self._seen.discard(key)
            event_type = "DELETED"
        else:
            return None
        return _dumps(event_type, self._render(obj))

    def start(self) -> list[bytes]:
        """Subscribe and return the first lines (initial state or history replay).

        Must run without awaiting in between, so no change falls between the snapshot
        and the subscription.
        """
        spec = self.spec
        rv = spec.resource_version
        lines: list[bytes] = []
        if not rv or rv == "0" or spec.send_initial_events:
            for obj in self.store.iter_objects(spec.info.group, spec.info.kind, spec.namespace,
                                               spec.labels, spec.fields):
                self._seen.add((obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))
                lines.append(_dumps("ADDED", self._render(obj)))
            if spec.send_initial_events:
                lines.append(self.bookmark({"k8s.io/initial-events-end": "true"}))
        else:
            try:
                history = self.store.events_since(int(rv))
            except ValueError:
                history = []
                lines.append(_dumps("ERROR", Gone(f"invalid resource version: {rv!r}").status()))
            except Gone as exc:
                return [_dumps("ERROR", exc.status())]
            for ev in history:
                line = self._event(ev.type, ev.obj, from_history=True)
                if line:
                    lines.append(line)
        self.queue = self.store.subscribe(copy=False)
        return lines

    def bookmark(self, annotations: dict[str, str] | None = None) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(self.store.resource_version)}
        if annotations:
            meta["annotations"] = annotations
        obj = {"kind": self.spec.info.kind, "apiVersion": self.spec.info.api_version(self.spec.version),
               "metadata": meta}
        return _dumps("BOOKMARK", obj)

    async def run(self, write: Callable[[bytes], Any], bookmark_interval: float) -> None:
        """Write events until the timeout or an ``END`` marker; ``start()`` must have run."""
        assert self.queue is not None
        deadline = time.monotonic() + self.spec.timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                wait = min(remaining, bookmark_interval) if self.spec.bookmarks else remaining
                try:
                    item = await asyncio.wait_for(self.queue.get(), wait)
                except asyncio.TimeoutError:
                    # Idle: every change up to the store's version has been handled.
                    if self.spec.bookmarks and deadline - time.monotonic() > 0:
                        await write(self.bookmark())
                    continue
                items = [item]
                while len(items) < MAX_BATCH and not self.queue.empty():
                    items.append(self.queue.get_nowait())
                out = []
                for event_type, obj in items:
                    if event_type == END[0]:
                        if out:
                            await write(b"".join(out))
                        return
                    line = self._event(event_type, obj, from_history=False)
                    if line:
                        out.append(line)
                if out:
                    await write(b"".join(out))
        finally:
            self.store.unsubscribe(self.queue)

    def end(self) -> None:
        """Ask the stream to finish (safe to call from the server's loop at any time)."""
        if self.queue is not None:
            self.queue.put_nowait(END)
