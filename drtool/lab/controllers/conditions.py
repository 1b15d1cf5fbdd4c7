"""Status conditions and Events, written the way Flux and Kubernetes controllers write them.

``set_condition`` keeps ``lastTransitionTime`` unless the status flips, so rewriting
an unchanged status is a no-op in the store (no new resourceVersion, no watch event):
that is what keeps the level-triggered controllers from looping on their own writes.
"""
from __future__ import annotations

import secrets
from typing import Any

from drtool.lab.api.objects import clone, now_rfc3339


def set_condition(status: dict[str, Any], type_: str, value: str, reason: str, message: str,
                  observed_generation: int | None = None) -> None:
    """Insert or update one condition in ``status["conditions"]`` (mutates ``status``)."""
    conditions = status.setdefault("conditions", [])
    for cond in conditions:
        if cond.get("type") == type_:
            if cond.get("status") != value:
                cond["lastTransitionTime"] = now_rfc3339()
            cond.update(status=value, reason=reason, message=message)
            if observed_generation is not None:
                cond["observedGeneration"] = observed_generation
            return
    cond = {"type": type_, "status": value, "reason": reason, "message": message,
            "lastTransitionTime": now_rfc3339()}
    if observed_generation is not None:
        cond["observedGeneration"] = observed_generation
    conditions.append(cond)


def remove_condition(status: dict[str, Any], type_: str) -> None:
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != type_]


def get_condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return None


def is_ready(obj: dict[str, Any] | None) -> bool:
    """Flux readiness: ``Ready=True`` for the current generation."""
    if obj is None:
        return False
    cond = get_condition(obj, "Ready")
    if not cond or cond.get("status") != "True":
        return False
    observed = (obj.get("status") or {}).get("observedGeneration")
    return observed is None or int(observed) == int(obj["metadata"].get("generation") or 1)


def flux_ready(status: dict[str, Any], generation: int, reason: str, message: str) -> None:
    """Ready=True, no Reconciling/Stalled."""
    remove_condition(status, "Reconciling")
    remove_condition(status, "Stalled")
    set_condition(status, "Ready", "True", reason, message, generation)
    status["observedGeneration"] = generation


def flux_progressing(status: dict[str, Any], generation: int, message: str,
                     ready_reason: str = "Progressing", ready_status: str = "Unknown") -> None:
    """Reconciling=True reason Progressing; Ready Unknown (or False) with ``ready_reason``."""
    remove_condition(status, "Stalled")
    set_condition(status, "Reconciling", "True", "Progressing", message, generation)
    set_condition(status, "Ready", ready_status, ready_reason, message, generation)


def flux_not_ready(status: dict[str, Any], generation: int, reason: str, message: str,
                   *, stalled: bool = False, stalled_reason: str | None = None) -> None:
    """Ready=False with ``reason``; Stalled=True when the failure is terminal."""
    remove_condition(status, "Reconciling")
    if stalled:
        set_condition(status, "Stalled", "True", stalled_reason or reason, message, generation)
    else:
        remove_condition(status, "Stalled")
    set_condition(status, "Ready", "False", reason, message, generation)
    status["observedGeneration"] = generation


def api_group(obj: dict[str, Any]) -> str:
    return str(obj.get("apiVersion", "")).rpartition("/")[0]


def new_event(obj: dict[str, Any], reason: str, message: str, component: str,
              type_: str = "Normal") -> dict[str, Any]:
    """A core/v1 Event about ``obj`` (named ``<name>.<hex>`` like client-go's recorder)."""
    meta = obj["metadata"]
    ts = now_rfc3339()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}",
                     "namespace": meta.get("namespace") or "default"},
        "involvedObject": {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
                           "name": meta["name"], "namespace": meta.get("namespace", ""),
                           "uid": meta.get("uid", ""), "resourceVersion": meta.get("resourceVersion", "")},
        "reason": reason,
        "message": message,
        "type": type_,
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": f"{component}-lab",
        "firstTimestamp": ts,
        "lastTimestamp": ts,
        "count": 1,
    }


def status_copy(obj: dict[str, Any]) -> dict[str, Any]:
    return clone(obj.get("status") or {})
