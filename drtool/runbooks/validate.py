"""Lint runbooks beyond what loading checks.

Loading already refuses unknown keys, unknown phases and actions, duplicate
ids, empty steps, steps without (or with two) actions and undeclared
parameters. This adds what needs the whole runbook or an inventory: unknown
nodes, unused parameters, phases out of the rebuild's order, destructive
phases without a confirmation before them, and steps no run can reach.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from drtool.errors import BadInput
from drtool.inventory import Inventory
from drtool.runbooks.model import Runbook, load_runbook, template_names
from drtool.runbooks.params import resolve_params
from drtool.runbooks.plan import dry_context, plan_step

DESTRUCTIVE_PHASES = ("teardown", "install_servers")


@dataclass(frozen=True)
class Problem:
    file: str
    field: str
    message: str
    severity: str = "error"
    """``error`` (the runbook cannot run as written) or ``warning``."""

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else self.file
        return f"{where}: {self.severity}: {self.message}"


def lint(book: Runbook, inv: Inventory | None = None) -> list[Problem]:
    """Problems of one loaded runbook (targets are checked only with an inventory)."""
    from drtool.pipeline import PHASE_NAMES

    src = str(book.path)
    problems: list[Problem] = []
    used = {n for s in book.steps for _, text in s.templated_strings() for n in template_names(text)}
    for name in book.parameters:
        if name not in used:
            problems.append(Problem(src, f"parameters.{name}", "declared but never used", "warning"))
    last_phase, confirmed = -1, False
    for i, step in enumerate(book.steps):
        if step.kind == "manual":
            confirmed = True
        if step.kind == "phase":
            order = PHASE_NAMES.index(step.phase)
            if order < last_phase:
                problems.append(Problem(src, book.where(i, "phase"),
                                        f"{step.phase} runs after {PHASE_NAMES[last_phase]}, unlike `inv rebuild`", "warning"))
            last_phase = max(last_phase, order)
            if step.phase in DESTRUCTIVE_PHASES and not confirmed:
                problems.append(Problem(src, book.where(i, "phase"),
                                        f"destructive phase {step.phase} without a manual confirmation step before it", "warning"))
        if step.kind == "wait" and step.on_failure == "continue":
            problems.append(Problem(src, book.where(i, "on_failure"), "a wait cannot fail; on_failure has no effect", "warning"))
    if inv is not None:
        try:
            params = resolve_params(book, inv, {}, lenient=True)
            ctx = dry_context(inv)
            for i in range(len(book.steps)):
                try:
                    plan_step(book, i, params, ctx)
                except BadInput as exc:
                    problems.append(Problem(exc.source, exc.field, exc.problem))
        except BadInput as exc:
            problems.append(Problem(exc.source, exc.field, exc.problem))
    return problems


def lint_files(paths: list[Path], inv: Inventory | None = None) -> list[Problem]:
    """Load and lint every file; a file that does not load is one error."""
    problems: list[Problem] = []
    names: dict[str, str] = {}
    for path in paths:
        try:
            book = load_runbook(path)
        except BadInput as exc:
            problems.append(Problem(exc.source, exc.field, exc.problem))
            continue
        if book.name in names:
            problems.append(Problem(str(path), "name", f"runbook name {book.name!r} also used by {names[book.name]}"))
        names[book.name] = str(path)
        if Path(path).stem != book.name:
            problems.append(Problem(str(path), "name", f"name {book.name!r} differs from the file name", "warning"))
        problems += lint(book, inv)
    return problems
