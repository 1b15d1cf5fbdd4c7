"""What a step would do, per target, without doing it: for ``--dry-run`` and the rendered docs.

With an inventory every command is resolved exactly as it will run (sudo
wrapping, node names, quoted parameters); phase steps use the phase's own
plan (``drtool.phases.dry_run.plan_phase``). Without one, the text says which group of nodes a step targets.
Secrets are masked by the caller (``redact``) and never reach a plan anyway:
tokens travel on stdin.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from drtool.runbooks.converge_check import converge_text
from drtool.runbooks.model import Runbook, Step, Targets
from drtool.runbooks.params import resolve_targets, substitute, substitute_args

if TYPE_CHECKING:
    from drtool.inventory import Inventory
    from drtool.phases.context import Context

Plan = list[tuple[str, str]]


def dry_context(inv: Inventory, *, keep_waiting: bool = False, book: Runbook | None = None) -> Context:
    """A Context whose runner records instead of running and whose run is a throwaway. With
    ``book``, its scripted cluster also has Ready the Kustomizations and HelmReleases that the
    book's converge checks name, so those checks end at their first look as the others do."""
    from drtool.phases import dry_run
    from drtool.phases.context import Options
    from drtool.runbooks.converge_check import release

    checks = [s.check.converge for s in (book.steps if book is not None else ()) if s.check and s.check.converge]
    return dry_run.dry_context(inv, Options(keep_waiting=keep_waiting),
                               kustomizations=[k for c in checks for k in c.kustomizations or ()],
                               helmreleases=[release(h) for c in checks for h in c.helmreleases or ()])


def phase_module(name: str):
    from drtool.pipeline import PHASE_NAMES, PHASES

    return dict(zip(PHASE_NAMES, PHASES))[name]


def _targets_text(on: str | tuple[str, ...] | list[str]) -> str:
    return on if isinstance(on, str) else ",".join(on)


def _phase_plan(phase: str, args: Mapping, ctx: Context | None) -> Plan:
    module = phase_module(phase)
    if ctx is None:
        doc = (module.__doc__ or "").strip().splitlines()
        return [("local", f"the {phase} phase of `inv rebuild`" + (f": {doc[0]}" if doc else ""))]
    from dataclasses import replace

    from drtool.phases.dry_run import plan_phase

    saved = ctx.options
    ctx.options = replace(saved, **args)
    try:
        return plan_phase(module, ctx)
    finally:
        ctx.options = saved


def _command_plan(book: Runbook, index: int, params: Mapping[str, str], ctx: Context | None, kind: str,
                  command: str, on: Targets, sudo: bool, expect: str = "") -> Plan:
    """A ``remote`` or ``check`` command on its target nodes."""
    cmd = substitute(command, params, shell=True)
    if ctx is None:
        shown = on if isinstance(on, str) else tuple(substitute(x, params, shell=False) for x in on)
        return [(_targets_text(shown) + (" (as root)" if sudo else ""), cmd + expect)]
    nodes = resolve_targets(ctx.inv, on, params, source=str(book.path), field=book.where(index, f"{kind}.on"))
    return [(n.name, ctx.runner.wrap(n, cmd, sudo) + expect) for n in nodes]


def plan_step(book: Runbook, index: int, params: Mapping[str, str], ctx: Context | None = None) -> Plan:
    """(target, what) for one step; ``ctx`` from ``dry_context`` resolves it against an inventory.
    A step sets exactly one of its parts (``Step._exactly_one_action``): the one that is set is planned."""
    step = book.steps[index]
    if step.phase is not None:
        return _phase_plan(step.phase, step.args, ctx)
    if step.remote is not None:
        return _command_plan(book, index, params, ctx, "remote", step.remote.command, step.remote.on, step.remote.sudo)
    if step.check is not None:
        check = step.check
        if check.converge is not None:
            said = ("local", converge_text(check.converge, ctx.inv if ctx is not None else None))
            if ctx is None:
                return [said]
            from drtool.phases.dry_run import plan_call
            from drtool.runbooks.converge_check import run_converge_check

            converge = check.converge
            return [said, *plan_call(ctx, step.id, lambda: run_converge_check(ctx, converge))]
        assert check.command is not None  # Check._one: a check has exactly one of converge and command
        expect = f"   # expect output matching /{check.expect}/" if check.expect else ""
        if check.on is None:
            return [("local", substitute(check.command, params, shell=True) + expect)]
        return _command_plan(book, index, params, ctx, "check", check.command, check.on, check.sudo, expect)
    if step.local is not None:
        return [("local", substitute(step.local.command, params, shell=True))]
    if step.manual is not None:
        return [("operator", substitute(step.manual.instruction, params, shell=False))]
    if step.wait is not None:
        return [("local", f"wait {step.wait.seconds:g}s")]
    assert step.action is not None  # the last kind of part
    return _action_plan(book, index, params, ctx)


def _action_targets(book: Runbook, index: int, args: Mapping, ctx: Context) -> None:
    """An action's ``on`` resolved against the inventory: an unknown node is bad input naming the step."""
    from drtool.runbooks.action_support import targets

    if "on" in args:
        targets(ctx, args["on"], (str(book.path), book.where(index)))


def _action_plan(book: Runbook, index: int, params: Mapping[str, str], ctx: Context | None) -> Plan:
    """What the action sends, recorded from its own ``run`` against the dry context (without an
    inventory, its one-line summary)."""
    from drtool.phases.dry_run import plan_call
    from drtool.runbooks.actions import ACTIONS

    step = book.steps[index]
    assert step.action is not None
    action = ACTIONS[step.action]
    args = substitute_args(step.args, params)
    if ctx is None:
        shown = ", ".join(f"{k}={v}" for k, v in args.items())
        return [("local", f"action {action.name}({shown}): {action.summary}")]
    _action_targets(book, index, args, ctx)
    return plan_call(ctx, action.name, lambda: action.run(ctx, args, (str(book.path), book.where(index))))


def check_step(book: Runbook, index: int, params: Mapping[str, str], ctx: Context) -> None:
    """Resolve one step against the inventory (targets, parameter values) without running
    anything: ``BadInput`` when it cannot run as written. A phase step and a converge check take
    neither; an action step only has its targets resolved (a dry run of these reports what would
    stop them, never raises)."""
    step = book.steps[index]
    if step.action is not None:
        _action_targets(book, index, substitute_args(step.args, params), ctx)
    elif step.phase is None and not (step.check is not None and step.check.converge is not None):
        plan_step(book, index, params, ctx)


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
