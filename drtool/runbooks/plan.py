"""What a step would do, per target, without doing it: for ``--dry-run`` and the rendered docs.

With an inventory every command is resolved exactly as it will run (sudo
wrapping, node names, quoted parameters); phase steps use the phase's own
plan (``drtool.phases.dry_run.plan_phase``). Without one, the text says which group of nodes a step targets.
Secrets are masked by the caller (``redact``) and never reach a plan anyway:
tokens travel on stdin.
"""
from __future__ import annotations

from typing import Mapping

from drtool.runbooks.model import Runbook, Step
from drtool.runbooks.params import resolve_targets, substitute, substitute_args

Plan = list[tuple[str, str]]


def dry_context(inv, *, keep_waiting: bool = False):
    """A Context whose runner records instead of running and whose run is a throwaway."""
    from drtool.phases import dry_run
    from drtool.phases.context import Options

    return dry_run.dry_context(inv, Options(keep_waiting=keep_waiting))


def phase_module(name: str):
    from drtool.pipeline import PHASE_NAMES, PHASES

    return dict(zip(PHASE_NAMES, PHASES))[name]


def _targets_text(on) -> str:
    return on if isinstance(on, str) else ",".join(on)


def converge_text(step: Step, inv) -> str:
    c = step.check.converge
    deadline = c.deadline or (inv.timeouts.converge if inv is not None else None)
    what = []
    if c.kustomizations is not None:
        what.append("Kustomizations " + (", ".join(c.kustomizations) or "-"))
    if c.helmreleases is not None:
        what.append("HelmReleases " + (", ".join(c.helmreleases) or "-"))
    within = f" (≤ {deadline:g}s)" if deadline else ""
    extra = f"; expect {'; '.join(what)}" if what else ""
    return f"wait until every Flux object, workload, pod and node is ready{within}{extra}"


def plan_step(book: Runbook, index: int, params: Mapping[str, str], ctx=None) -> Plan:
    """(target, what) for one step; ``ctx`` from ``dry_context`` resolves it against an inventory."""
    step = book.steps[index]
    inv = ctx.inv if ctx is not None else None
    source = str(book.path)
    kind = step.kind
    if kind == "phase":
        module = phase_module(step.phase)
        if ctx is None:
            doc = (module.__doc__ or "").strip().splitlines()
            return [("local", f"the {step.phase} phase of `inv rebuild`" + (f": {doc[0]}" if doc else ""))]
        from dataclasses import replace

        saved = ctx.options
        ctx.options = replace(saved, **step.args)
        try:
            from drtool.phases.dry_run import plan_phase

            return plan_phase(module, ctx)
        finally:
            ctx.options = saved
    if kind in ("remote", "check") and getattr(step, kind).command is not None:
        part = getattr(step, kind)
        cmd = substitute(part.command, params, shell=True)
        expect = f"   # expect output matching /{part.expect}/" if kind == "check" and part.expect else ""
        if kind == "check" and part.on is None:
            return [("local", cmd + expect)]
        if inv is None:
            on = part.on if isinstance(part.on, str) else tuple(substitute(x, params, shell=False) for x in part.on)
            return [(_targets_text(on) + (" (as root)" if part.sudo else ""), cmd + expect)]
        nodes = resolve_targets(inv, part.on, params, source=source, field=book.where(index, f"{kind}.on"))
        return [(n.name, ctx.runner.wrap(n, cmd, part.sudo) + expect) for n in nodes]
    if kind == "local":
        return [("local", substitute(step.local.command, params, shell=True))]
    if kind == "check":
        return [("local", converge_text(step, inv))]
    if kind == "manual":
        return [("operator", substitute(step.manual.instruction, params, shell=False))]
    if kind == "wait":
        return [("local", f"wait {step.wait.seconds:g}s")]
    from drtool.runbooks.actions import ACTIONS

    action = ACTIONS[step.action]
    args = substitute_args(step.args, params)
    if ctx is None:
        shown = ", ".join(f"{k}={v}" for k, v in args.items())
        return [("local", f"action {action.name}({shown}): {action.summary}")]
    return list(action.plan(ctx, args))


def policy_text(step: Step) -> str:
    """Timeout, retries and failure handling, as one line (empty when all defaults)."""
    parts = []
    if step.timeout:
        parts.append(f"timeout {step.timeout:g}s")
    if step.retries:
        parts.append(f"{step.retries} retr{'y' if step.retries == 1 else 'ies'} every {step.retry_delay:g}s")
    if step.on_failure == "continue":
        parts.append("on failure: continue")
    return ", ".join(parts)
