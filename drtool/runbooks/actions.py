"""The few internal actions a runbook step can name with ``action:``.

They exist for what a shell command in a runbook cannot do safely: talk to the
API without kubectl, move the cluster token from one node to another without it
ever appearing in argv or a log, or put a backed-up datastore back. Keep this
list short; anything expressible as a command belongs in the runbook itself.

- ``delete-node`` (``node``): delete a Node object (and with it, in K3s, its node
  password Secret) so a wiped machine can rejoin under the same name.
- ``join-agent`` (``on``: ``agents`` or node names): install K3s on agents with the
  token read from the first server's ``node-token`` (sudo), handed over on stdin.
- ``restore-datastore`` (``run``): put ``state.db`` from ``runs/<run>/backup/`` back on
  the first server (K3s must be stopped), with the certificates, token and kubeconfig set
  aside so the datastore's bootstrap data wins; with embedded etcd, restore the run's
  snapshot with ``--cluster-reset`` and let the other servers join again.
- ``install-server`` (``token_from_run``, optional): reinstall K3s on the servers with
  the token saved in ``runs/<run>/backup/`` (the original cluster's), or the
  inventory's token source, and wait until the API answers.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from drtool.errors import BadInput, DrtoolError, PermanentError
from drtool.inventory import Node
from drtool.remote.runner import q
from drtool.runbooks.action_support import backup_dir as _backup_dir
from drtool.runbooks.action_support import backup_file as _backup_file
from drtool.runbooks.action_support import ensure_kubeconfig
from drtool.runbooks.action_support import targets as _targets
from drtool.runbooks.model import ACTION_ARGS
from drtool.runbooks.restore_actions import restore_actions
from drtool.secret import Secret


@dataclass(frozen=True)
class Action:
    name: str
    summary: str
    run: Callable[..., str]
    """``run(ctx, args, where) -> message``; ``where`` is (file, field) for bad-input errors. A
    dry run runs it too, against the recording runner and API client (``drtool.runbooks.plan``)."""

    @property
    def required(self) -> tuple[str, ...]:
        return ACTION_ARGS[self.name][0]

    @property
    def optional(self) -> tuple[str, ...]:
        return ACTION_ARGS[self.name][1]


# --- delete-node ---------------------------------------------------------------------


def _delete_node(ctx, args: Mapping, where: tuple[str, str]) -> str:
    from kubernetes import client as kclient
    from kubernetes.client.exceptions import ApiException

    name = args["node"]
    ensure_kubeconfig(ctx)
    api_client = ctx.api_client()
    try:
        kclient.CoreV1Api(api_client).delete_node(name, _request_timeout=(5, 15))
    except ApiException as exc:
        if exc.status == 404:
            return f"Node {name} was not registered"
        raise DrtoolError(f"deleting Node {name}: HTTP {exc.status} {exc.reason}") from None
    except Exception as exc:  # urllib3 connection errors: the API is down
        raise DrtoolError(f"deleting Node {name}: API unreachable ({type(exc).__name__})") from None
    finally:
        api_client.close()
    return f"deleted Node {name}"


# --- join-agent ----------------------------------------------------------------------

NODE_TOKEN = "node-token"


def _server_token(ctx) -> Secret:
    from drtool.remote import k3s

    server = ctx.inv.servers[0]
    path = f"{k3s.server_dir(ctx.inv)}/{NODE_TOKEN}"
    with ctx.step(server, "read node-token"):
        # base64 on the wire: the runner masks known secrets in output, and this token may be one already.
        res = ctx.runner.run(server, f"base64 {q(path)}", sudo=True, step=ctx.phase_name)
    token = Secret(base64.b64decode(res.stdout).decode().strip(), "k3s-node-token")
    if not token:
        raise PermanentError(f"{server.name}: {path} is empty; is the server installed?")
    return token


def _join_agent(ctx, args: Mapping, where: tuple[str, str]) -> str:
    from drtool.phases.install import upload_artifacts
    from drtool.phases.join import server_url
    from drtool.remote import k3s

    nodes = _targets(ctx, args.get("on", "agents"), where)
    servers = [n.name for n in nodes if n.role != "agent"]
    if servers:
        raise BadInput(where[0], where[1] + ".args.on", f"{', '.join(servers)} is not an agent")
    if not nodes:
        return "no agents to join"
    token = _server_token(ctx)

    def join(node: Node) -> None:
        upload_artifacts(ctx, node)
        cmd = k3s.install_command(ctx.inv, node, server_url=server_url(ctx))
        with ctx.step(node, "join"):
            ctx.runner.run(node, cmd, sudo=True, stdin=token.reveal() + "\n", step=ctx.phase_name,
                           timeout=ctx.deadline("join_agents"))

    ctx.runner.fan_out(nodes, join).raise_on_failure("join")
    return f"joined {', '.join(n.name for n in nodes)} with the server's node-token"


# --- restore-datastore ---------------------------------------------------------------


def _db_dir(ctx) -> str:
    from drtool.remote import k3s

    return f"{k3s.server_dir(ctx.inv)}/db"


def _datastore_backup(ctx, run_id: str) -> tuple[str, Path]:
    """(``sqlite`` or ``etcd``, file) from the run's backup of the first server."""
    try:
        return "etcd", _backup_file(ctx, run_id, "etcd-snapshot")
    except PermanentError:
        return "sqlite", _backup_file(ctx, run_id, "state.db")


def _restore_node_passwords(ctx, run_id: str) -> list[str]:
    """Put each node's backed-up ``/etc/rancher/node/password`` back (a reimaged node has another).

    The restored datastore holds ``<node>.node-password.k3s`` Secrets made from these: an
    agent with another password is rejected ("Node password rejected", k3s-io/k3s v1.31
    pkg/nodepassword/validate.go).
    """
    from drtool.remote import k3s

    d = _backup_dir(run_id)
    nodes = [n for n in ctx.inv.nodes if (d / n.name / "node-password").is_file()]

    def put(node: Node) -> None:
        with ctx.step(node, "node password"):
            ctx.runner.put(node, (d / node.name / "node-password").read_bytes(), k3s.NODE_PASSWORD, mode="0600",
                           step=ctx.phase_name)

    ctx.runner.fan_out(nodes, put).raise_on_failure("restoring node passwords")
    return [n.name for n in nodes]


def _restore_datastore(ctx, args: Mapping, where: tuple[str, str]) -> str:
    msg = _restore_one_datastore(ctx, args)
    restored = _restore_node_passwords(ctx, args["run"])
    return msg + (f"; node passwords put back on {', '.join(restored)}" if restored else "")


def _restore_one_datastore(ctx, args: Mapping) -> str:
    from drtool.remote import k3s

    kind, db_file = _datastore_backup(ctx, args["run"])
    first, peers = ctx.inv.servers[0], ctx.inv.servers[1:]
    if kind == "sqlite":
        with ctx.step(first, "restore state.db"):
            ctx.runner.run(first, k3s.restore_prepare_command(ctx.inv, datastore="sqlite"), sudo=True, step=ctx.phase_name)
            ctx.runner.put(first, db_file, f"{_db_dir(ctx)}/state.db", mode="0600", step=ctx.phase_name)
        return (f"restored {db_file.stat().st_size} bytes of state.db from run {args['run']} on {first.name} "
                f"(tls, cred, token and k3s.yaml set aside as *{k3s.RESTORE_SUFFIX})")
    token = _backup_file(ctx, args["run"], "token").read_text().strip()
    snapshot = f"{_db_dir(ctx)}/snapshots/drtool-restore-{args['run']}"
    for peer in peers:
        with ctx.step(peer, "set aside db"):
            ctx.runner.run(peer, k3s.restore_prepare_command(ctx.inv, datastore="etcd", peer=True), sudo=True,
                           step=ctx.phase_name)
    with ctx.step(first, "cluster-reset"):
        ctx.runner.run(first, k3s.restore_prepare_command(ctx.inv, datastore="etcd"), sudo=True, step=ctx.phase_name)
        ctx.runner.put(first, db_file, snapshot, mode="0600", step=ctx.phase_name)
        ctx.runner.run(first, k3s.cluster_reset_command(ctx.inv, snapshot), sudo=True,
                       stdin=Secret(token, "original-k3s-token").reveal() + "\n", step=ctx.phase_name,
                       timeout=ctx.deadline("install_servers"))
    return (f"restored the etcd snapshot of run {args['run']} on {first.name} with --cluster-reset"
            + (f"; {', '.join(p.name for p in peers)} set their db aside to join again" if peers else ""))


# --- install-server ------------------------------------------------------------------


def _install_server(ctx, args: Mapping, where: tuple[str, str]) -> str:
    from drtool.phases.install import install_node, wait_ready

    run_id = args.get("token_from_run")
    if run_id:
        text = _backup_file(ctx, run_id, "token").read_text().strip()
        token = Secret(text, "original-k3s-token")
    else:
        token = ctx.cluster_token()
    servers = ctx.inv.servers
    ha = len(servers) > 1
    deadline = ctx.deadline("install_servers")
    for i, node in enumerate(servers):
        ctx.check_stop()
        marker = install_node(ctx, node, server_url=None, first=servers[0] if i else None, cluster_init=ha and i == 0,
                              token=token, step=ctx.phase_name)
        wait_ready(ctx, node, deadline, since=marker)
    source = f"the token saved by run {run_id}" if run_id else "the inventory's token"
    return f"{len(servers)} server(s) reinstalled with {source} and answering"


ACTIONS: dict[str, Action] = {a.name: a for a in (
    Action("delete-node", "delete a Node object through the API", _delete_node),
    Action("join-agent", "join agents with the server's node-token (on stdin)", _join_agent),
    Action("restore-datastore", "put a backed-up datastore (state.db or etcd snapshot) back", _restore_datastore),
    Action("install-server", "reinstall K3s on the servers with a saved or the inventory's token", _install_server),
)}

ACTIONS.update({name: Action(name, summary, run) for name, summary, run in restore_actions()})
