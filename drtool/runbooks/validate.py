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
from typing import Mapping

from drtool.errors import BadInput
from drtool.inventory import Inventory
from drtool.runbooks.model import Runbook, load_runbook, template_names
from drtool.runbooks.params import resolve_params, sample_values
from drtool.runbooks.plan import check_step, dry_context

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


def lint(book: Runbook, inv: Inventory | None = None, given: Mapping[str, str] | None = None) -> list[Problem]:
    """Problems of one loaded runbook (targets are checked only with an inventory); ``given``
    parameter values are checked against their types as ``runbook.run`` would."""
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
    try:
        # Given values (``--param``) are type-checked even without an inventory (run ids).
        params = resolve_params(book, inv, given or {}, lenient=True)
    except BadInput as exc:
        return problems + [Problem(exc.source, exc.field, exc.problem)]
    if inv is not None:
        for name, spec in book.parameters.items():
            if spec.type in ("agent", "server") and not (inv.agents if spec.type == "agent" else inv.servers):
                problems.append(Problem(src, f"parameters.{name}", f"inventory {inv.path} has no {spec.type}", "warning"))
        try:
            params = sample_values(book, inv, params)
            ctx = dry_context(inv)
            for i in range(len(book.steps)):
                try:
                    check_step(book, i, params, ctx)
                except BadInput as exc:
                    problems.append(Problem(exc.source, exc.field, exc.problem))
        except BadInput as exc:
            problems.append(Problem(exc.source, exc.field, exc.problem))
    return problems


def lint_files(paths: list[Path], inv: Inventory | None = None, given: Mapping[str, str] | None = None) -> list[Problem]:
    """Load and lint every file; a file that does not load is one error.

    ``given`` parameter values apply to the runbooks that declare them; a name no runbook
    declares is an error."""
    problems: list[Problem] = []
    names: dict[str, str] = {}
    declared: set[str] = set()
    for path in paths:
        try:
            book = load_runbook(path)
        except BadInput as exc:
            problems += [Problem(exc.source, f, p) for f, p in exc.problems]
            continue
        if book.name in names:
            problems.append(Problem(str(path), "name", f"runbook name {book.name!r} also used by {names[book.name]}"))
        names[book.name] = str(path)
        if Path(path).stem != book.name:
            problems.append(Problem(str(path), "name", f"name {book.name!r} differs from the file name", "warning"))
        declared |= set(book.parameters)
        problems += lint(book, inv, {k: v for k, v in (given or {}).items() if k in book.parameters})
    for name in sorted(set(given or {}) - declared):
        problems.append(Problem("command line", "--param", f"no runbook here has a parameter {name!r}"))
    return problems
