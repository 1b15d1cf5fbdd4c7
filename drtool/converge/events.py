"""The recent Kubernetes Events about one object, quoted in a failure."""
from __future__ import annotations

import logging
from typing import Mapping

from drtool.errors import DrtoolError
from drtool.secret import redact

log = logging.getLogger(__name__)

MAX_EVENTS = 5          # Events quoted per failure


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

