"""Finding 3: node references in Git against the nodes the inventory will install.

The kubelet labels every node ``kubernetes.io/hostname=<node name>`` and ``kubernetes.io/os``;
drtool installs the inventory's ``labels`` and ``taints`` with ``--node-label`` / ``--node-taint``.
Labels the check cannot know before install (architecture, zone, node role) are assumed to match.
A PersistentVolume pinned to a hostname no node will have can never be used: a blocker. A pod
that fits no node stays Pending: a warning (the converge phase fails fast on it anyway).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from drtool.gitops.check.findings import CheckResult, Finding
from drtool.gitops.check.podspecs import helm_scheduling, pod_specs
from drtool.gitops.check.repo import Repo, ref
from drtool.inventory import Inventory

HOSTNAME = "kubernetes.io/hostname"
_UNKNOWN_PREFIXES = ("kubernetes.io/arch", "beta.kubernetes.io/", "topology.kubernetes.io/", "node.kubernetes.io/",
                     "node-role.kubernetes.io/", "k3s.io/", "failure-domain.beta.kubernetes.io/")


@dataclass(frozen=True)
class NodeView:
    name: str
    labels: dict[str, str]
    taints: tuple[tuple[str, str, str], ...]
    """(key, value, effect)"""


def node_views(inv: Inventory) -> list[NodeView]:
    out = []
    for n in inv.nodes:
        labels = {HOSTNAME: n.name, "kubernetes.io/os": "linux", **n.labels}
        taints = []
        for t in n.taints:
            kv, _, effect = t.rpartition(":")
            key, _, value = kv.partition("=")
            taints.append((key, value, effect))
        out.append(NodeView(n.name, labels, tuple(taints)))
    return out


def _unknown(key: str) -> bool:
    return any(key == p or key.startswith(p) for p in _UNKNOWN_PREFIXES)


def _req(node: NodeView, key: str, op: str, values: list[str]) -> bool:
    if _unknown(key) and key not in node.labels:
        return True
    have = node.labels.get(key)
    if op == "In":
        return have is not None and have in values
    if op == "NotIn":
        return have is None or have not in values
    if op == "Exists":
        return have is not None
    if op == "DoesNotExist":
        return have is None
    if op in ("Gt", "Lt"):
        try:
            return have is not None and (int(have) > int(values[0]) if op == "Gt" else int(have) < int(values[0]))
        except (ValueError, IndexError):
            return False
    return True


def _term(node: NodeView, term: dict[str, Any]) -> bool:
    for e in term.get("matchExpressions") or []:
        if isinstance(e, dict) and not _req(node, str(e.get("key")), str(e.get("operator")), [str(v) for v in e.get("values") or []]):
            return False
    for e in term.get("matchFields") or []:
        if isinstance(e, dict) and e.get("key") == "metadata.name" and \
                not _req(NodeView(node.name, {"metadata.name": node.name}, ()), "metadata.name", str(e.get("operator")),
                         [str(v) for v in e.get("values") or []]):
            return False
    return True


def _tolerated(taint: tuple[str, str, str], tolerations: list[Any]) -> bool:
    key, value, effect = taint
    for t in tolerations or []:
        if not isinstance(t, dict):
            continue
        op = t.get("operator") or "Equal"
        if t.get("effect") and t.get("effect") != effect:
            continue
        if op == "Exists" and (not t.get("key") or t.get("key") == key):
            return True
        if op == "Equal" and t.get("key") == key and str(t.get("value") or "") == value:
            return True
    return False


def _fits(node: NodeView, selector: dict[str, Any], terms: list[dict[str, Any]]) -> bool:
    for k, v in (selector or {}).items():
        if not _req(node, str(k), "In", [str(v)]):
            return False
    return not terms or any(_term(node, t) for t in terms if isinstance(t, dict))


def _suggest(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _has_var(value: Any) -> bool:
    return "${" in str(value)


def check_nodes(repo: Repo, inv: Inventory, result: CheckResult) -> None:
    nodes = node_views(inv)
    names = [n.name for n in nodes]
    for ks, b in repo.objects():
        obj, file = b.obj, ks.file_of(b)
        subject = ref(obj)
        if obj.get("kind") == "PersistentVolume":
            _pv(obj, subject, names, ks.key, file, result)
            continue
        blocks: list[tuple[str, dict[str, Any], bool]] = [("spec", s, obj.get("kind") == "DaemonSet") for s in pod_specs(obj)]
        if obj.get("kind") == "HelmRelease":
            blocks += [(p, blk, False) for p, blk in helm_scheduling((obj.get("spec") or {}).get("values"))]
        for where, spec, daemon in blocks:
            selector = spec.get("nodeSelector") or {}
            affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {})
            terms = ((affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or [])
            if not isinstance(selector, dict) or _has_var(selector) or _has_var(terms):
                continue
            if not selector and not terms and daemon:
                continue
            fitting = [n for n in nodes if _fits(n, selector, terms)]
            if not fitting:
                wanted = ", ".join(f"{k}={v}" for k, v in selector.items()) or "its node affinity"
                hostname = selector.get(HOSTNAME)
                result.add(Finding(
                    "node-reference", "warning", subject,
                    f"{subject} ({where}) selects {wanted}, which no inventory node has"
                    + (_suggest(str(hostname), names) if hostname else ""),
                    "add the label to a node's labels in the inventory (installed as --node-label), "
                    "or change the selector to match the nodes: " + ", ".join(names),
                    kustomization=ks.key, file=file))
                continue
            if daemon:
                continue
            tolerations = spec.get("tolerations") or []
            schedulable = [n for n in fitting if all(_tolerated(t, tolerations) for t in n.taints
                                                     if t[2] in ("NoSchedule", "NoExecute"))]
            if not schedulable:
                taints = sorted({f"{k}={v}:{e}" if v else f"{k}:{e}" for n in fitting for k, v, e in n.taints})
                result.add(Finding(
                    "node-reference", "warning", subject,
                    f"{subject} ({where}) only fits node(s) {', '.join(n.name for n in fitting)}, whose taint(s) "
                    f"{', '.join(taints)} it does not tolerate",
                    "add a matching toleration, or drop the taint from the inventory node",
                    kustomization=ks.key, file=file))


def _pv(obj: dict[str, Any], subject: str, names: list[str], ks: str, file: str, result: CheckResult) -> None:
    terms = ((((obj.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}).get("nodeSelectorTerms") or [])
    for term in terms:
        for e in (term or {}).get("matchExpressions") or []:
            if not isinstance(e, dict) or e.get("key") != HOSTNAME or e.get("operator") != "In":
                continue
            values = [str(v) for v in e.get("values") or []]
            if not values or _has_var(values) or any(v in names for v in values):
                continue
            missing = values[0]
            result.add(Finding(
                "node-reference", "blocker", subject,
                f"{subject} is pinned to {HOSTNAME} {', '.join(values)}, a name no inventory node will have"
                f"{_suggest(missing, names)}; its data can never be mounted",
                f"change the PersistentVolume's nodeAffinity to one of: {', '.join(names)} "
                "(or name the inventory node as the host was named)",
                kustomization=ks, file=file))
