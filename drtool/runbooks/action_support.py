"""Helpers shared by the runbook actions (``actions`` and ``restore_actions``)."""
from __future__ import annotations

from pathlib import Path

from drtool.errors import BadInput, PermanentError
from drtool.inventory import Node


def ensure_kubeconfig(ctx) -> None:
    """The run's kubeconfig, fetched from the first server when this run has none yet."""
    if not ctx.kubeconfig_path.exists():
        from drtool.phases import kubeconfig

        kubeconfig.run(ctx)


def targets(ctx, on: str | list[str], where: tuple[str, str]) -> tuple[Node, ...]:
    from drtool.runbooks.params import resolve_targets

    spec = on if isinstance(on, str) and on in ("servers", "agents", "all") else tuple([on] if isinstance(on, str) else on)
    return resolve_targets(ctx.inv, spec, {}, source=where[0], field=where[1] + ".args.on")


def backup_dir(run_id: str) -> Path:
    from drtool.run import runs_dir

    if "/" in run_id or run_id.startswith("."):
        raise BadInput("command line", "--param", f"{run_id!r} is not a run id")
    d = runs_dir() / run_id / "backup"
    if not d.is_dir():
        raise BadInput("command line", "--param", f"run {run_id!r} has no backup directory under {runs_dir()}")
    return d


def backup_file(ctx, run_id: str, name: str) -> Path:
    """``backup/<first server>/<name>`` (as the backup phase writes it), else ``backup/<name>``."""
    d = backup_dir(run_id)
    if (d / "manifest.json").exists():
        from drtool.phases.backup import verify_manifest

        verify_manifest(d)
    for candidate in (d / ctx.inv.servers[0].name / name, d / name):
        if candidate.is_file():
            return candidate
    raise PermanentError(f"run {run_id}: no {name} in {d} (expected {ctx.inv.servers[0].name}/{name})")
