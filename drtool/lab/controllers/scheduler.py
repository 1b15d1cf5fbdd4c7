"""Pick a node for a pod the way kube-scheduler's filters would, as pure code.

Filters: the node is Ready (a not-ready node carries the ``node.kubernetes.io/not-ready``
taint), not cordoned, matches ``nodeSelector`` and every NoSchedule/NoExecute taint is
tolerated. Among fitting nodes the one with fewest pods wins (name breaks ties), which
is enough to spread replicas. When nothing fits, the message has kube-scheduler's shape:
``0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s)
had untolerated taint {heavy: true}.``
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

NOT_READY_TAINT = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
_BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")


@dataclass(frozen=True)
class Decision:
    """Where the pod goes; ``node`` is ``None`` when it cannot be scheduled (see ``message``)."""

    node: str | None
    message: str = ""


def node_is_ready(node: Mapping[str, Any]) -> bool:
    """True when the Node's ``Ready`` condition is True."""
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def tolerates(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    """Whether any toleration matches ``taint`` (Kubernetes toleration semantics)."""
    for tol in tolerations or ():
        effect = tol.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        operator = tol.get("operator") or "Equal"
        key = tol.get("key") or ""
        if operator == "Exists":
            if not key or key == taint.get("key"):
                return True
        elif key == taint.get("key") and str(tol.get("value") or "") == str(taint.get("value") or ""):
            return True
    return False


def _taint_text(taint: Mapping[str, Any]) -> str:
    return "{%s: %s}" % (taint.get("key"), taint.get("value") or "")


def _why_not(pod_spec: Mapping[str, Any], node: Mapping[str, Any]) -> str | None:
    """The reason ``node`` is filtered out, or ``None`` when it fits."""
    tolerations = pod_spec.get("tolerations") or []
    if not node_is_ready(node) and not tolerates(tolerations, NOT_READY_TAINT):
        return f"had untolerated taint {_taint_text(NOT_READY_TAINT)}"
    spec = node.get("spec") or {}
    if spec.get("unschedulable"):
        return "were unschedulable"
    labels = (node.get("metadata") or {}).get("labels") or {}
    selector = pod_spec.get("nodeSelector") or {}
    if any(labels.get(k) != str(v) for k, v in selector.items()):
        return "didn't match Pod's node affinity/selector"
    for taint in spec.get("taints") or []:
        if taint.get("effect") in _BLOCKING_EFFECTS and not tolerates(tolerations, taint):
            return f"had untolerated taint {_taint_text(taint)}"
    return None


def schedule(pod_spec: Mapping[str, Any], nodes: Iterable[Mapping[str, Any]],
             pods_per_node: Mapping[str, int] | None = None) -> Decision:
    """Choose a node for a pod with ``pod_spec``; see the module docstring for the rules."""
    nodes = list(nodes)
    load = pods_per_node or {}
    fitting: list[str] = []
    reasons: Counter[str] = Counter()
    for node in nodes:
        why = _why_not(pod_spec, node)
        name = (node.get("metadata") or {}).get("name", "")
        if why is None:
            fitting.append(name)
        else:
            reasons[why] += 1
    if fitting:
        return Decision(min(fitting, key=lambda n: (load.get(n, 0), n)))
    if not nodes:
        return Decision(None, "no nodes available to schedule pods")
    parts = sorted(f"{count} node(s) {why}" for why, count in reasons.items())
    return Decision(None, f"0/{len(nodes)} nodes are available: {', '.join(parts)}. "
                          f"preemption: 0/{len(nodes)} nodes are available: "
                          f"{len(nodes)} Preemption is not helpful for scheduling.")
