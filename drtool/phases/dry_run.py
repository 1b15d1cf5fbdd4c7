"""Dry runs from the phases' own code: a phase runs against a recording runner, and the
commands it sent are its plan (``drtool.remote.recording``).

The run directory is a throwaway temp dir (a dry run leaves nothing under ``runs/``), the
K3s token is generated there when the inventory names no source, and secret variables
the inventory names but this shell does not set get a placeholder: a dry run shows what
would be sent, and tokens only ever go on stdin or in the environment, never in a command.
Phases that talk to the Kubernetes API or wait on it (install_servers, nodes_ready, restore_secrets,
converge) keep a hand-written ``plan(ctx)``: the recording runner sees SSH and local commands only,
and a dry run has no cluster to answer; each ``plan`` says why above it. Unit tests run those
phases against ``drtool.kube.recording.RecordingApiClient`` (``Context.api_factory``).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

from drtool.errors import DrtoolError
from drtool.inventory import Inventory
from drtool.phases.context import Context, Options, RunProgress
from drtool.phases.result import Phase
from drtool.remote.recording import RecordingRunner
from drtool.run import Run

PLACEHOLDER = "dry-run-placeholder"


def dry_context(inv: Inventory, options: Options = Options()) -> Context:
    """A Context with a recording runner and a throwaway run directory."""
    tmp = tempfile.TemporaryDirectory(prefix="drtool-dry-run-")
    run = Run.placeholder(Path(tmp.name))
    run.tmp = tmp  # type: ignore[attr-defined]  # removed with the context's run
    environ = dict(os.environ)
    token = inv.k3s.token
    if token is not None and token.token_env and not environ.get(token.token_env):
        environ[token.token_env] = PLACEHOLDER
    return Context(inv, RecordingRunner(inv), run, replace(options, dry_run=True), RunProgress(quiet=True),
                   environ=environ)


def plan_phase(phase: Phase, ctx: Context) -> list[tuple[str, str]]:
    """(target, what) for each command the phase sends: its hand-written ``plan`` when it has
    one, else what it recorded when run against the context's recording runner."""
    written = getattr(phase, "plan", None)
    if written is not None:
        return list(written(ctx))
    runner = ctx.runner
    if not isinstance(runner, RecordingRunner):
        raise TypeError("plan_phase needs a dry_context()")
    mark = len(runner.recorded)
    ctx.phase_name = phase.NAME
    stopped: list[tuple[str, str]] = []
    try:
        phase.run(ctx)
    except DrtoolError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        stopped.append(("local", f"(the dry run of {phase.NAME} stops here: {first})"))
    return [(r.node, r.describe()) for r in runner.recorded[mark:]] + stopped
