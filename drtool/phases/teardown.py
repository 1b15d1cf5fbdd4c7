"""Teardown: uninstall K3s, agents first (in parallel), then servers.

Idempotent: a node with nothing installed is a recorded no-op. The node password
is kept (as the uninstall keeps it: a restored datastore checks agents against it), the
double-unit case is handled in the script, and the node is verified clean afterwards
(mount points under the wiped dirs, which the uninstall keeps, are not leftovers).
Protected paths that an uninstall would delete are refused before anything runs, and so
are local-path volumes holding data the backup did not archive (unless
``--discard-volume-data``).
"""
from __future__ import annotations

from drtool.errors import DrtoolError, PermanentError, Refused
from drtool.inventory import Node
from drtool.phases.context import Context
from drtool.phases.result import PhaseResult, ok
from drtool.remote import k3s, volumes

NAME = "teardown"
VOLUME_CHECK = "volume-check"
"""The step name of the read-only volume listing that runs on every node before any wipe."""
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


def volume_guard(ctx: Context, nodes, *, discard: bool, archived=(), how_to_discard: str = "--discard-volume-data") -> str:
    """Refuse a wipe of ``nodes`` while local-path volumes under the data dir hold data that was
    neither archived (``archived``: node names) nor explicitly given up (``discard``).

    Returns a note naming each volume and its size for the report."""
    results = ctx.runner.fan_out(nodes, lambda n: volumes.parse_volumes(
        n.name, ctx.runner.run(n, volumes.volumes_with_data_command(ctx.inv), sudo=True, step=VOLUME_CHECK).stdout))
    listed = results.raise_on_failure("listing local-path volumes")
    found = [v for vols in listed.values() for v in vols]
    at_risk = [v for v in found if v.node not in set(archived)]
    if not at_risk:
        return f"; volumes archived by the backup: {volumes.describe_all(found)}" if found else ""
    if discard:
        ctx.state["volumes_discarded"] = [v.describe() for v in at_risk]
        return f"; volume data discarded ({how_to_discard}): {volumes.describe_all(at_risk)}"
    raise Refused(
        f"refusing to wipe: local-path volumes under {volumes.storage_dir(ctx.inv)} hold data the uninstall deletes "
        f"and the backup did not archive: {volumes.describe_all(at_risk)}. Set backup.archive_volumes: true to "
        f"archive them first, move the data to a protected path, or pass {how_to_discard}; nothing was wiped")


def run(ctx: Context) -> PhaseResult:
    for node in ctx.inv.nodes:
        bad = k3s.protected_conflicts(ctx.inv, node)
        if bad:
            raise PermanentError(f"{node.name}: protected path(s) {', '.join(bad)} lie under directories the uninstall deletes; refusing to wipe")
    volume_note = volume_guard(ctx, ctx.inv.nodes, discard=ctx.options.discard_volume_data,
                               archived=ctx.state.get("volumes_archived", ()))
    outcome: dict[str, str] = {}
    for group in (ctx.inv.agents, ctx.inv.servers):
        ctx.check_stop()
        outcome.update(ctx.runner.fan_out(group, lambda n: _teardown(ctx, n)).raise_on_failure("teardown"))
    wiped = sorted(n for n, r in outcome.items() if r == "wiped")
    noop = sorted(n for n, r in outcome.items() if r == "noop")
    # Still "ok" when every node was already clean: recovery time is measured from teardown's start.
    return ok(f"wiped: {', '.join(wiped) or 'none'}; nothing installed: {', '.join(noop) or 'none'}{volume_note}",
              wiped=wiped, nothing_installed=noop)
