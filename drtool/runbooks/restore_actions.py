"""Runbook actions that put a backup's other parts back (Flux secrets, local-path volumes), and
the volume check a runbook runs before it wipes a node.

``restore-datastore`` and ``install-server`` (``drtool.runbooks.actions``) bring back the
datastore and the original token; these two complete the restore from ``runs/<run>/backup/``:

- ``restore-secrets`` (``run``): the Secrets the backup saved from ``flux-system``
  (``flux-secrets/*.json``: the SOPS key, Flux's deploy key) are created again, or replaced,
  through the API. They never pass through a shell or a log.
- ``restore-volumes`` (``run``, optional ``on``): each node's ``volumes.tgz`` (written when
  ``backup.archive_volumes`` is on; it holds ``storage/<volume>/...``) is uploaded (0600) and
  extracted back under the node's K3s data dir, where the local-path provisioner keeps them
  (k3s-io/k3s ``pkg/cli/server/server.go``, v1.31.4+k3s1: ``<data-dir>/storage``).
- ``guard-volumes`` (``on``, optional ``discard``: true/false): the teardown's volume check
  for a runbook that wipes nodes itself (``agent-replace``): it fails, naming each volume and
  its size, while a volume there holds data, unless ``discard`` is true.
"""
from __future__ import annotations

import json
from typing import Mapping

from drtool.remote.runner import q


def _secrets_dir(run_id: str):
    from drtool.runbooks.action_support import backup_dir as _backup_dir

    d = _backup_dir(run_id)
    if (d / "manifest.json").exists():
        from drtool.phases.backup import verify_manifest

        verify_manifest(d)
    return d / "flux-secrets"


def _restore_secrets(ctx, args: Mapping, where: tuple[str, str]) -> str:
    """The backup's Flux secrets and sealed-secrets keys, created or replaced as the rebuild's
    restore_secrets phase does it (``drtool.phases.restore_secrets``)."""
    from drtool.kube.client import KubeTransport
    from drtool.phases.backup import SEALED_SECRETS_FILE
    from drtool.phases.restore_secrets import put_secret, restore_sealed_secrets_keys
    from drtool.runbooks.action_support import ensure_kubeconfig

    saved = _secrets_dir(args["run"])
    files = sorted(p for p in saved.glob("*.json") if p.name != SEALED_SECRETS_FILE)
    if not files and not (saved / SEALED_SECRETS_FILE).is_file():
        return f"run {args['run']} saved no Flux secrets (the old cluster did not answer); nothing to restore"
    ensure_kubeconfig(ctx)
    api_client = ctx.api_client()
    api = KubeTransport(api_client, timeout=(5, 15))
    restored = []
    try:
        for path in files:
            body = json.loads(path.read_text())
            meta = body.get("metadata", {})
            name, namespace = meta.get("name"), meta.get("namespace", "flux-system")
            put_secret(api, namespace, name, body)
            restored.append(f"{namespace}/{name}")
        keys = restore_sealed_secrets_keys(api, saved / SEALED_SECRETS_FILE)
        if keys:
            restored.append(f"{keys} sealed-secrets key(s)")
    finally:
        api_client.close()
    return f"restored Secrets {', '.join(restored)} from run {args['run']}"


def _archives(ctx, args: Mapping, where: tuple[str, str]):
    from drtool.runbooks.action_support import backup_dir as _backup_dir
    from drtool.runbooks.action_support import targets as _targets

    d = _backup_dir(args["run"])
    nodes = _targets(ctx, args.get("on", "all"), where)
    return d, [(n, d / n.name / "volumes.tgz") for n in nodes]


def _extract_command(ctx, archive: str) -> str:
    data_dir = ctx.inv.k3s.data_dir
    return (f"mkdir -p {q(data_dir)} && tar -xzf {q(archive)} -C {q(data_dir)} --no-same-owner --overwrite; "
            f"rc=$?; rm -f {q(archive)}; exit $rc")


def _restore_volumes(ctx, args: Mapping, where: tuple[str, str]) -> str:
    import uuid

    from drtool.phases.backup import verify_manifest

    d, items = _archives(ctx, args, where)
    if (d / "manifest.json").exists():
        verify_manifest(d)
    todo = [(n, a) for n, a in items if a.is_file()]
    if not todo:
        return f"run {args['run']} archived no volumes (backup.archive_volumes was off); nothing to restore"

    def restore(node_and_archive) -> str:
        node, archive = node_and_archive
        tmp = f"/var/tmp/drtool-volumes-{uuid.uuid4().hex}.tgz"
        with ctx.step(node, "restore volumes"):
            ctx.runner.put(node, archive, tmp, mode="0600", step=ctx.phase_name)
            ctx.runner.run(node, _extract_command(ctx, tmp), sudo=True, step=ctx.phase_name)
        return node.name

    by_name = {n.name: (n, a) for n, a in todo}
    results = ctx.runner.fan_out([n for n, _ in todo], lambda n: restore(by_name[n.name]))
    results.raise_on_failure("restoring volumes")
    return f"restored local-path volumes on {', '.join(sorted(by_name))} from run {args['run']}"


def _guard_volumes(ctx, args: Mapping, where: tuple[str, str]) -> str:
    from drtool.errors import BadInput
    from drtool.phases.teardown import volume_guard
    from drtool.runbooks.action_support import targets

    discard = str(args.get("discard", "false")).strip().lower()
    if discard not in ("true", "false"):
        raise BadInput(where[0], where[1] + ".args.discard", f"expected true or false, got {discard!r}")
    note = volume_guard(ctx, targets(ctx, args["on"], where), discard=discard == "true",
                        how_to_discard="--param discard_volume_data=true")
    return note.removeprefix("; ") if note else "no local-path volume holds data"


def restore_actions():
    """(name, summary, run) of each restore action; ``actions`` registers them."""
    return (
        ("restore-secrets", "create again the Flux secrets a backup saved", _restore_secrets),
        ("restore-volumes", "extract each node's archived local-path volumes under its data dir", _restore_volumes),
        ("guard-volumes", "refuse to go on while local-path volumes on the nodes hold data (unless discard)",
         _guard_volumes),
    )
