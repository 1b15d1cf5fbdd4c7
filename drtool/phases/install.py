"""Install servers: the pinned K3s on each server, first one first (HA: --cluster-init).

Air-gapped installs upload the script, binary and images; online installs fetch
the script on the node. The token reaches the installer on stdin. Each server is
then waited on (bounded, tenacity) until its API answers /readyz.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

from drtool.errors import RetryableError
from drtool.inventory import Node
from drtool.kubeconfig import dump, rewrite
from drtool.phases import image_cache
from drtool.phases.context import Context
from drtool.phases.overlap import SERVER_API
from drtool.phases.result import PhaseResult, ok
from drtool.remote import k3s
from drtool.remote.runner import q
from drtool.secret import Secret

NAME = "install_servers"


def upload_artifacts(ctx: Context, node: Node) -> None:
    if ctx.inv.k3s.install.method != "airgap":
        return
    items: list[tuple[Path | str | bytes, str, str]] = []
    for attr, remote, mode in k3s.airgap_uploads(ctx.inv):
        local = ctx.inv.resolve(getattr(ctx.inv.k3s.install, attr))
        assert local is not None  # the inventory refuses an airgap install without script and binary
        items.append((local, remote, mode))
    with ctx.step(node, "upload"):
        ctx.runner.put_many(node, items, step="upload")


def restore_config_files(ctx: Context, node: Node) -> list[str]:
    """Put the node's backed-up /etc/rancher/k3s config files back before K3s starts; returns them."""
    from drtool.phases.backup import CONFIG_BACKUP

    base = ctx.run.dir / "backup" / node.name / CONFIG_BACKUP
    if not base.is_dir():
        return []
    files = sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
    if files:
        with ctx.step(node, "k3s config"):
            ctx.runner.put_many(node, [(base / rel, f"{k3s.CONFIG_DIR}/{rel}", "0600") for rel in files], step="install")
        ctx.state.setdefault("k3s_config_restored", {})[node.name] = files
    return files


def install_node(ctx: Context, node: Node, *, server_url: str | None, first: Node | None, cluster_init: bool,
                 token: Secret | None = None, step: str = "install") -> str:
    """Install (or reinstall) K3s on a server; returns the start marker for :func:`wait_ready`."""
    upload_artifacts(ctx, node)
    restore_config_files(ctx, node)
    image_cache.give_back(ctx, node)
    ctx.check_stop()
    cmd = k3s.install_command(ctx.inv, node, server_url=server_url, first_server=first, cluster_init=cluster_init)
    marker = f"/run/drtool/start-{uuid.uuid4().hex}"
    with ctx.step(node, "install"):
        ctx.runner.run(node, k3s.start_marker_command(marker), sudo=True, step="wait")
        # The install script is safe to run again: a dropped connection reruns it once.
        ctx.runner.run(node, cmd, sudo=True, stdin=(token or ctx.cluster_token()).reveal() + "\n", step=step,
                       timeout=ctx.deadline("install_servers"), idempotent=True)
    return marker


def wait_ready(ctx: Context, node: Node, deadline_s: float, since: str | None = None) -> None:
    """Wait for the kubeconfig written by this start (newer than ``since``), then for /readyz (bounded)."""
    import time

    from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

    start = time.monotonic()
    with ctx.step(node, "wait kubeconfig"):
        for attempt in Retrying(stop=stop_after_delay(deadline_s), wait=wait_exponential(0.1, max=2),
                                retry=retry_if_exception_type(RetryableError), reraise=True):
            with attempt:
                ctx.check_stop()
                res = ctx.runner.run(node, k3s.wait_file_command(k3s.KUBECONFIG, since), sudo=True, check=False,
                                     step="wait")
                if not res.ok:
                    raise RetryableError(f"{node.name}: {k3s.KUBECONFIG} not written by this start yet")
    if since is not None:
        ctx.runner.run(node, f"rm -f {q(since)}", sudo=True, check=False, step="wait")
    text = ctx.runner.read(node, k3s.KUBECONFIG, step="wait")
    cfg = rewrite(text, f"https://{node.address}:6443", ctx.inv.cluster.context_name)
    tmp = ctx.run.dir / f".kubeconfig-{node.name}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(dump(cfg))
    try:
        with ctx.step(node, "wait readyz"):
            _wait_readyz(ctx, tmp, deadline_s - (time.monotonic() - start))
    finally:
        Path(tmp).unlink(missing_ok=True)


def _wait_readyz(ctx: Context, kubeconfig: Path, deadline_s: float) -> None:
    from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

    # Through the context: unit tests and --dry-run answer it with a recording client.
    client = ctx.api_client(kubeconfig)
    try:
        for attempt in Retrying(stop=stop_after_delay(max(deadline_s, 1)), wait=wait_exponential(0.1, max=2),
                                retry=retry_if_exception_type(RetryableError), reraise=True):
            with attempt:
                ctx.check_stop()
                try:
                    method, url, headers, _, _ = client.param_serialize(
                        "GET", "/readyz", auth_settings=["BearerToken"], header_params={})
                    resp = client.call_api(method, url, header_params=headers, _request_timeout=(2, 3))
                    body = resp.response.data.decode(errors="replace")
                except Exception as exc:
                    raise RetryableError(f"API not answering yet: {type(exc).__name__}") from None
                if resp.status != 200 or body.strip() != "ok":
                    raise RetryableError(f"/readyz answered {resp.status}: {body.strip()[:80]!r}")
    finally:
        client.close()


def run(ctx: Context) -> PhaseResult:
    servers = ctx.inv.servers
    first, rest = servers[0], servers[1:]
    ha = bool(rest)
    deadline = ctx.deadline("install_servers")
    marker = install_node(ctx, first, server_url=None, first=None, cluster_init=ha)
    wait_ready(ctx, first, deadline, since=marker)
    # Agents waiting in join_agents may install now (drtool.phases.overlap: an agent needs only
    # the first server's supervisor port, which is the API port).
    ctx.reached(SERVER_API)
    if rest:
        def one(node: Node) -> None:
            mark = install_node(ctx, node, server_url=None, first=first, cluster_init=False)
            wait_ready(ctx, node, deadline, since=mark)

        ctx.runner.fan_out(rest, one).raise_on_failure("server install")
    ctx.run.record["versions"]["k3s"] = ctx.inv.k3s.version
    reused = image_cache.details(ctx, servers)
    return ok(f"{len(servers)} server(s) ready ({'HA, embedded etcd' if ha else 'single server, SQLite'})"
              + config_note(ctx, servers) + image_cache.note(ctx, servers), servers=[n.name for n in servers], ha=ha,
              **({"images_reused": reused} if reused else {}))


def config_note(ctx: Context, nodes) -> str:
    """``; K3s config files put back: node1: config.yaml`` (or nothing)."""
    restored = ctx.state.get("k3s_config_restored") or {}
    parts = [f"{n.name}: {', '.join(restored[n.name])}" for n in nodes if restored.get(n.name)]
    return f"; K3s config files put back: {'; '.join(parts)}" if parts else ""
