"""Join agents, in parallel, with K3S_URL and the cluster token (on stdin, never argv).

In a rebuild this phase starts alongside install_servers: each agent's artifacts, K3s config
files and kept images are put in place while the server installs, and its install script runs
once the first server's API answers (``drtool.phases.overlap``).
"""
from __future__ import annotations

from drtool.inventory import Node
from drtool.phases import image_cache
from drtool.phases.context import Context
from drtool.phases.overlap import SERVER_API
from drtool.phases.install import config_note, restore_config_files, upload_artifacts
from drtool.phases.result import PhaseResult, noop, ok
from drtool.remote import k3s

NAME = "join_agents"


def server_url(ctx: Context) -> str:
    return f"https://{ctx.inv.servers[0].address}:6443"


def _join(ctx: Context, node: Node) -> None:
    upload_artifacts(ctx, node)
    restore_config_files(ctx, node)
    image_cache.give_back(ctx, node)
    # Everything above ran alongside install_servers; the agent itself needs the server's API
    # (drtool.phases.overlap cites why).
    ctx.wait_for(SERVER_API, node)
    ctx.check_stop()
    cmd = k3s.install_command(ctx.inv, node, server_url=server_url(ctx))
    with ctx.step(node, "join"):
        # The install script is safe to run again: a dropped connection reruns it once.
        ctx.runner.run(node, cmd, sudo=True, stdin=ctx.cluster_token().reveal() + "\n", step="join",
                       timeout=ctx.deadline("join_agents"), idempotent=True)


def run(ctx: Context) -> PhaseResult:
    agents = ctx.inv.agents
    if not agents:
        return noop("no agents in the inventory")
    ctx.runner.fan_out(agents, lambda n: _join(ctx, n)).raise_on_failure("agent join")
    reused = image_cache.details(ctx, agents)
    return ok(f"{len(agents)} agent(s) joined" + config_note(ctx, agents) + image_cache.note(ctx, agents),
              agents=[n.name for n in agents], **({"images_reused": reused} if reused else {}))

