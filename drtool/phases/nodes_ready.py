"""Nodes ready: every inventory node registered, Ready, with its labels and taints (bounded)."""
from __future__ import annotations

import time

from drtool.errors import NotConverged
from drtool.phases.context import Context
from drtool.phases.result import PhaseResult, ok

NAME = "nodes_ready"


def node_problems(inv, nodes: list[dict]) -> dict[str, str]:
    """Pure: what is still wrong per inventory node, given the API's Node objects."""
    by_name = {n.get("metadata", {}).get("name"): n for n in nodes}
    problems: dict[str, str] = {}
    for want in inv.nodes:
        obj = by_name.get(want.name)
        if obj is None:
            problems[want.name] = "not registered"
            continue
        conds = {c.get("type"): c for c in obj.get("status", {}).get("conditions") or []}
        ready = conds.get("Ready", {})
        if ready.get("status") != "True":
            problems[want.name] = f"not Ready ({ready.get('reason') or 'no Ready condition'})"
            continue
        labels = obj.get("metadata", {}).get("labels") or {}
        missing = [f"{k}={v}" for k, v in want.labels.items() if labels.get(k) != v]
        if missing:
            problems[want.name] = f"missing label(s) {', '.join(missing)}"
            continue
        have = {f"{t.get('key')}={t.get('value', '')}:{t.get('effect')}" for t in obj.get("spec", {}).get("taints") or []}
        have |= {f"{t.get('key')}:{t.get('effect')}" for t in obj.get("spec", {}).get("taints") or [] if not t.get("value")}
        lacking = [t for t in want.taints if t not in have]
        if lacking:
            problems[want.name] = f"missing taint(s) {', '.join(lacking)}"
    return problems


def run(ctx: Context) -> PhaseResult:
    from drtool.kube.client import KubeTransport

    deadline = time.monotonic() + ctx.deadline("nodes_ready")
    client = ctx.api_client()
    transport = KubeTransport(client)
    problems: dict[str, str] = {n.name: "not checked" for n in ctx.inv.nodes}
    delay = 0.1
    try:
        while time.monotonic() < deadline:
            ctx.check_stop()
            try:
                items = transport.get_json("/api/v1/nodes").get("items", [])
                problems = node_problems(ctx.inv, items)
            except Exception as exc:  # transient API trouble right after install: keep polling until the bound
                problems = {"api": f"{type(exc).__name__}: {exc}".splitlines()[0]}
            if not problems:
                return ok(f"{len(ctx.inv.nodes)} node(s) Ready with their labels and taints")
            ctx.sleep(delay)
            delay = min(delay * 1.5, 1.0)
    finally:
        client.close()
    raise NotConverged("nodes not ready within "
                       f"{ctx.deadline('nodes_ready'):g}s: " + "; ".join(f"{k}: {v}" for k, v in problems.items()))
