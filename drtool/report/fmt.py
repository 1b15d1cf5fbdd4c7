"""Small formatting helpers shared by the Markdown and HTML renderers."""
from __future__ import annotations

from datetime import datetime, timezone

DASH = "—"


def duration(seconds: float | None) -> str:
    """``4.2s``, ``3m 07s``, ``1h 02m``; a dash for unknown."""
    if seconds is None:
        return DASH
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s < 60:
        return f"{sign}{s:.1f}s"
    if s < 3600:
        m, rest = divmod(int(round(s)), 60)
        return f"{sign}{m}m {rest:02d}s"
    h, rest = divmod(int(round(s)), 3600)
    return f"{sign}{h}h {rest // 60:02d}m"


def signed_duration(seconds: float | None) -> str:
    """A delta: ``+4.2s`` / ``-1m 03s``."""
    if seconds is None:
        return DASH
    return ("+" if seconds >= 0 else "") + duration(seconds)


def clock(epoch: float | None) -> str:
    """UTC wall-clock time, ``2026-11-26 23:45:01Z``."""
    if epoch is None:
        return DASH
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def offset(seconds: float | None) -> str:
    """``+m:ss`` since a reference time (``+12:05``); a dash for unknown."""
    if seconds is None:
        return DASH
    sign = "-" if seconds < 0 else "+"
    s = int(round(abs(seconds)))
    return f"{sign}{s // 60}:{s % 60:02d}"


def unfinished(status: str, started_at: float | None) -> str:
    """What a phase with no end shows instead of a duration."""
    if started_at is None:
        return DASH
    return "running" if status == "running" else "not ended"


VERDICT_TEXT = {
    "pass": "PASS",
    "fail": "FAIL",
    "over-objective": "OVER OBJECTIVE",
    "incomplete": "INCOMPLETE",
}


def headline(report) -> str:
    """One line: ``lab: PASS, recovered in 3m 12s (objective 20m 00s)``."""
    verdict = VERDICT_TEXT.get(report.verdict, report.verdict.upper())
    if report.recovery_s is not None:
        rec = f"recovered in {duration(report.recovery_s)}"
    else:
        rec = "recovery time not measured"
    obj = f"objective {duration(report.objective_s)}" if report.objective_s is not None else "no objective"
    return f"{report.cluster or report.run_id}: {verdict}, {rec} ({obj})"


#: How the explained critical path names each cause of time (``report.critical_time``).
CAUSE_LABELS = {"work": "work", "image_pull": "image pull", "flux_timer": "waiting for a Flux timer"}
_CAUSE_TOTALS = (("work", "work"), ("image_pull", "image pulls"), ("flux_timer", "Flux timers"))


def cause_totals(by_cause: dict[str, float]) -> str:
    """E.g. ``work 1m 57s, image pulls 14s, Flux timers 30s``."""
    return ", ".join(f"{label} {duration(by_cause.get(key, 0.0))}" for key, label in _CAUSE_TOTALS)
