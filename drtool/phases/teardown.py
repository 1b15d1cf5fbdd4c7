"""Teardown: uninstall K3s, agents first (in parallel), then servers.

Idempotent: a node with nothing installed is a recorded no-op. The node password
is removed on a full wipe (a rebuilt server would reject it), the double-unit
case is handled in the script, and the node is verified clean afterwards.
Protected paths that an uninstall would delete are refused before anything runs.
"""
from __future__ import annotations

from drtool.errors import DrtoolError, PermanentError
from drtool.inventory import Node
from drtool.phases.context import Context
from drtool.remote import k3s
from drtool.remote.runner import failures

NAME = "teardown"
DESTRUCTIVE = True


def _teardown(ctx: Context, node: Node) -> str:
    with ctx.step(node, "uninstall"):
        # The script is idempotent (it uninstalls whatever is left, then verifies), so a
        # dropped connection is retried once instead of leaving a half-wiped node.
        res = ctx.runner.run(node, k3s.teardown_script(ctx.inv, node), sudo=True, check=False, step=NAME,
                             timeout=ctx.deadline("teardown"), idempotent=True)
    noop, left = k3s.parse_teardown(res.stdout)
    if left or res.exit_code not in (0,):
        raise DrtoolError(f"{node.name}: not clean after uninstall: {', '.join(left) or res.tail(5)}")
    return "noop" if noop else "wiped"


def run(ctx: Context) -> str:
    for node in ctx.inv.nodes:
        bad = k3s.protected_conflicts(ctx.inv, node)
        if bad:
            raise PermanentError(f"{node.name}: protected path(s) {', '.join(bad)} lie under directories the uninstall deletes; refusing to wipe")
    outcome: dict[str, str] = {}
    for group in (ctx.inv.agents, ctx.inv.servers):
        ctx.check_stop()
        results = ctx.runner.fan_out(group, lambda n: _teardown(ctx, n))
        bad = failures(results)
        if bad:
            raise DrtoolError("teardown failed: " + "; ".join(str(e).splitlines()[0] for e in bad.values()))
        outcome.update(results)  # type: ignore[arg-type]
    wiped = sorted(n for n, r in outcome.items() if r == "wiped")
    noop = sorted(n for n, r in outcome.items() if r == "noop")
    return f"wiped: {', '.join(wiped) or 'none'}; nothing installed: {', '.join(noop) or 'none'}"


def plan(ctx: Context) -> list[tuple[str, str]]:
    return [(n.name, ctx.runner.wrap(n, k3s.teardown_script(ctx.inv, n), sudo=True)) for n in (*ctx.inv.agents, *ctx.inv.servers)]
