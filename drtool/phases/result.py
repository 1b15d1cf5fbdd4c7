"""What a phase returns: an outcome, a one-line message, and details for the journal.

The outcome is said, never read back from the message: ``ok`` (the phase changed what it
had to), ``noop`` (there was nothing to do, e.g. no agents to join) or ``skipped`` (the
operator asked for it not to run, e.g. ``--skip-backup``). A failed phase raises instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Mapping, Protocol

if TYPE_CHECKING:
    from drtool.phases.context import Context

Outcome = Literal["ok", "noop", "skipped"]


@dataclass(frozen=True)
class PhaseResult:
    outcome: Outcome
    message: str
    """One line for the progress output, the journal and the report."""
    details: Mapping[str, Any] = field(default_factory=dict)
    """Small JSON-able facts for the journal (node names, counts); never secrets."""

    @classmethod
    def of(cls, value: "PhaseResult | str | None") -> "PhaseResult":
        """A phase's return value as a result; a plain message (or nothing) is an ``ok``."""
        if isinstance(value, PhaseResult):
            return value
        return cls("ok", value or "")


def ok(message: str, **details: Any) -> PhaseResult:
    return PhaseResult("ok", message, details)


def noop(message: str, **details: Any) -> PhaseResult:
    return PhaseResult("noop", message, details)


def skipped(message: str, **details: Any) -> PhaseResult:
    return PhaseResult("skipped", message, details)


class Phase(Protocol):
    """A rebuild phase: a module (or class) with a ``NAME`` and ``run(ctx)``.

    A phase that waits on the Kubernetes API may also have ``plan(ctx)``, the hand-written
    description a dry run shows for it; the others are dry-run from their own code
    (``drtool.phases.dry_run``)."""

    NAME: str

    def run(self, ctx: "Context") -> "PhaseResult | str": ...
