"""Join agents, in parallel, with K3S_URL and the cluster token (on stdin, never argv)."""
from __future__ import annotations

from drtool.errors import DrtoolError
from drtool.inventory import Node
from drtool.phases.context import Context
from drtool.phases.install import config_note, restore_config_files, upload_artifacts
from drtool.remote import k3s
from drtool.remote.runner import failures

NAME = "join_agents"


def server_url(ctx: Context) -> str:
    return f"https://{ctx.inv.servers[0].address}:6443"


def _join(ctx: Context, node: Node) -> None:
    upload_artifacts(ctx, node)
    restore_config_files(ctx, node)
    ctx.check_stop()
    cmd = k3s.install_command(ctx.inv, node, server_url=server_url(ctx))
    with ctx.step(node, "join"):
        # The install script is safe to run again: a dropped connection reruns it once.
        ctx.runner.run(node, cmd, sudo=True, stdin=ctx.cluster_token().reveal() + "\n", step="join",
                       timeout=ctx.deadline("join_agents"), idempotent=True)


def run(ctx: Context) -> str:
    agents = ctx.inv.agents
    if not agents:
        return "no agents in the inventory"
    bad = failures(ctx.runner.fan_out(agents, lambda n: _join(ctx, n)))
    if bad:
        raise DrtoolError("agent join failed: " + "; ".join(str(e).splitlines()[0] for e in bad.values()))
    return f"{len(agents)} agent(s) joined" + config_note(ctx, agents)


def plan(ctx: Context) -> list[tuple[str, str]]:
    steps = []
    for node in ctx.inv.agents:
        if ctx.inv.k3s.install.method == "airgap":
            steps += [(node.name, f"upload {ctx.inv.resolve(getattr(ctx.inv.k3s.install, a))} -> {r} (mode {m})") for a, r, m in k3s.airgap_uploads(ctx.inv)]
        steps.append((node.name, f"upload backup/{node.name}/etc-rancher-k3s/* -> {k3s.CONFIG_DIR}/ (mode 0600), if backed up"))
        steps.append((node.name, ctx.runner.wrap(node, k3s.install_command(ctx.inv, node, server_url=server_url(ctx)), sudo=True) + "   # token on stdin: ***"))
    return steps
