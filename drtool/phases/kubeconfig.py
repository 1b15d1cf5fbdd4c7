"""Kubeconfig: fetch k3s.yaml with sudo, point it at the API endpoint, name it, write it 0600.

``--merge-kubeconfig`` merges it into ~/.kube/config (or $KUBECONFIG's first
file), replacing the old cluster's CA and credentials under the same names.
"""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from drtool.kubeconfig import dump, merge
from drtool.phases.context import Context
from drtool.phases.result import PhaseResult, ok

NAME = "kubeconfig"


def user_kubeconfig(environ: dict[str, str]) -> Path:
    first = (environ.get("KUBECONFIG") or "").split(os.pathsep)[0]
    return Path(first) if first else Path.home() / ".kube" / "config"


def fetch(ctx: Context) -> dict:
    """Fetch k3s.yaml from the first server, rewrite it, write it 0600 into the run dir."""
    return ctx.fetch_kubeconfig()


def run(ctx: Context) -> PhaseResult:
    cfg = fetch(ctx)
    msg = f"wrote {ctx.kubeconfig_path} (context {ctx.inv.cluster.context_name})"
    if ctx.options.merge_kubeconfig:
        target = user_kubeconfig(ctx.environ)
        existing = yaml.safe_load(target.read_text()) if target.exists() else None
        # Through the runner: the operator's file, which a dry run must leave alone.
        ctx.runner.write_local(target, dump(merge(existing, cfg)), mode=0o600, step=NAME)
        msg += f"; merged into {target}"
    return ok(msg)

