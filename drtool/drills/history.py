"""Drill history: the list of past runs' reports, and how this drill compares with them.

History is nothing more than the ``runs/<run-id>/report.json`` files already on disk
(the ansible-runner habit: no separate database to drift out of sync). This module
reads them tolerantly (a half-written or foreign directory is skipped with a warning,
never fatal: the drill that just ran must still get its outputs) and computes phase
regressions against the median of earlier drills. Everything except
``load_history`` is pure, so it is tested with plain dicts.
"""
from __future__ import annotations

import json
import logging
import math
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

log = logging.getLogger(__name__)

#: The rebuild phases in pipeline order. Outputs that must stay bounded (Prometheus
#: labels) use exactly this set; tables use it to order columns.
PHASE_NAMES: tuple[str, ...] = (
    "preflight",
    "backup",
    "teardown",
    "install_servers",
    "join_agents",
    "kubeconfig",
    "nodes_ready",
    "restore_secrets",
    "bootstrap",
    "converge",
    "post_checks",
)

#: Phase outcomes that mean "the phase ran to completion" (the pipeline writes ``ok``, or
#: ``noop`` when there was nothing to do, e.g. teardown of already clean nodes).
SUCCESS_OUTCOMES = frozenset({"ok", "noop", "pass", "passed", "success", "succeeded", "done", "completed"})
#: Completed, but did no work: a 0.3 s ``noop`` teardown would drag the median down and
#: make the next real teardown look like a regression, so these are never compared.
NO_WORK_OUTCOMES = frozenset({"noop"})
#: Outcomes of phases that did not run in this run (skipped, resumed, never reached).
#: Anything else (``failed``, ``interrupted``, ``running``...) is a failure.
SKIPPED_OUTCOMES = frozenset({"skipped", "skip", "resumed", "pending", "not-run", "not_run", "cached"})


def normalize_phase(name: str) -> str:
    """Canonical phase key: lower case, ``-`` and spaces as ``_`` (``Install servers`` -> ``install_servers``)."""
    return "_".join(str(name).strip().lower().replace("-", " ").split())


def phase_succeeded(phase: Mapping[str, Any]) -> bool:
    """True when a report phase entry ran to completion."""
    return str(phase.get("outcome", "")).lower() in SUCCESS_OUTCOMES


def phase_skipped(phase: Mapping[str, Any]) -> bool:
    """True when a report phase entry did no work in that run."""
    return str(phase.get("outcome", "")).lower() in SKIPPED_OUTCOMES


def as_number(value: Any) -> float | None:
    """A finite float, or None for missing/garbage values in hand-edited or old reports."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def report_time(report: Mapping[str, Any]) -> float:
    """When a run started (epoch s); falls back to its end, then 0 so sorting never fails."""
    for key in ("started_at", "ended_at"):
        t = as_number(report.get(key))
        if t is not None:
            return t
    return 0.0


def phase_duration(phase: Mapping[str, Any]) -> float | None:
    """``duration_s``, else ``ended_at - started_at`` (journal-shaped entries); None if unknown."""
    d = as_number(phase.get("duration_s"))
    if d is None:
        start, end = as_number(phase.get("started_at")), as_number(phase.get("ended_at"))
        d = end - start if start is not None and end is not None else None
    return d


def phase_durations(report: Mapping[str, Any], *, completed_only: bool = True) -> dict[str, float]:
    """``{phase_key: duration_s}`` of the phases that ran. ``completed_only`` (for speed
    comparisons) keeps only phases that completed and did real work. A phase listed twice
    (a resumed run) keeps the last entry."""
    out: dict[str, float] = {}
    for phase in report.get("phases") or []:
        if not isinstance(phase, Mapping) or "name" not in phase:
            continue
        if phase_skipped(phase):
            continue
        if completed_only and (not phase_succeeded(phase)
                               or str(phase.get("outcome", "")).lower() in NO_WORK_OUTCOMES):
            continue
        d = phase_duration(phase)
        if d is not None and d >= 0:
            out[normalize_phase(phase["name"])] = d
    return out


# --------------------------------------------------------------------------- loading


def load_history(
    runs_dir: str | Path,
    cluster: str,
    kind: str = "drill",
    last: int | None = None,
) -> list[dict]:
    """Reports of past runs of ``kind`` for ``cluster`` under ``runs_dir``, oldest first.

    Each run is ``<runs_dir>/<run-id>/report.json``. Unreadable directories (no report,
    broken JSON, not an object) are skipped with a warning. ``last=N`` keeps the N newest.
    A missing ``runs_dir`` is an empty history, not an error: the first drill has none.
    """
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    reports: list[dict] = []
    for run_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        path = run_dir / "report.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            log.warning("skipping %s: no report.json", run_dir)
            continue
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            log.warning("skipping %s: unreadable report.json (%s)", run_dir, exc)
            continue
        if not isinstance(data, dict):
            log.warning("skipping %s: report.json is not an object", run_dir)
            continue
        if data.get("kind") != kind or data.get("cluster") != cluster:
            continue
        data.setdefault("run_id", run_dir.name)
        reports.append(data)
    reports.sort(key=lambda r: (report_time(r), str(r.get("run_id", ""))))
    if last is not None:
        reports = reports[-last:] if last > 0 else []
    return reports


# --------------------------------------------------------------------------- regressions


@dataclass(frozen=True)
class Regression:
    """One phase that took clearly longer than it usually does."""

    phase: str            #: canonical phase key (``install_servers``)
    duration_s: float     #: this drill's duration of the phase
    median_s: float       #: median duration of the phase over the previous drills
    samples: int          #: how many previous drills the median is taken over

    @property
    def delta_s(self) -> float:
        """Seconds slower than the median."""
        return self.duration_s - self.median_s

    @property
    def ratio(self) -> float:
        """This duration over the median (``inf`` when the median is 0)."""
        return self.duration_s / self.median_s if self.median_s > 0 else math.inf

    def describe(self) -> str:
        """One line for messages: ``converge 95.0s vs median 60.0s (+58%, 5 drills)``."""
        pct = f"+{(self.ratio - 1) * 100:.0f}%" if math.isfinite(self.ratio) else "new cost"
        return (f"{self.phase} {self.duration_s:.1f}s vs median {self.median_s:.1f}s "
                f"({pct}, {self.samples} drill{'s' if self.samples != 1 else ''})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (used in notifications and reports)."""
        return {"phase": self.phase, "duration_s": round(self.duration_s, 3),
                "median_s": round(self.median_s, 3), "delta_s": round(self.delta_s, 3),
                "samples": self.samples}


def phase_medians(previous: Iterable[Mapping[str, Any]]) -> dict[str, tuple[float, int]]:
    """``{phase: (median_s, samples)}`` over the completed phases of ``previous`` reports."""
    samples: dict[str, list[float]] = {}
    for report in previous:
        for phase, d in phase_durations(report).items():
            samples.setdefault(phase, []).append(d)
    return {p: (statistics.median(v), len(v)) for p, v in samples.items()}


def regressions(
    current: Mapping[str, Any],
    previous: Sequence[Mapping[str, Any]],
    margin: float = 0.25,
    min_delta_s: float = 1.0,
    min_samples: int = 1,
) -> list[Regression]:
    """Phases of ``current`` slower than the median of the same phase over ``previous``.

    A phase is flagged when ``duration > median * (1 + margin)`` AND
    ``duration - median > min_delta_s``: the relative test ignores noise on long phases,
    the absolute one ignores jitter on sub-second phases. Only phases that completed are
    compared, in both the current and the previous drills (a failed phase is already
    reported as a failure; its duration measures the failure, not the speed). A previous
    entry with the same ``run_id`` as ``current`` is ignored, so callers may pass the
    whole history. Result is in pipeline order.
    """
    run_id = current.get("run_id")
    baseline = [r for r in previous if run_id is None or r.get("run_id") != run_id]
    medians = phase_medians(baseline)
    found: list[Regression] = []
    for phase, duration in phase_durations(current).items():
        if phase not in medians:
            continue
        median, n = medians[phase]
        if n < min_samples:
            continue
        if duration > median * (1 + margin) and duration - median > min_delta_s:
            found.append(Regression(phase, duration, median, n))
    return sorted(found, key=lambda r: _phase_order(r.phase))


def _phase_order(phase: str) -> tuple[int, str]:
    try:
        return (PHASE_NAMES.index(phase), phase)
    except ValueError:
        return (len(PHASE_NAMES), phase)


# --------------------------------------------------------------------------- table


@dataclass(frozen=True)
class PhaseCell:
    """One phase of one drill in the history table."""

    duration_s: float | None   #: None when the phase did not complete in that drill
    median_s: float | None     #: median over the drills before it; None for the first
    regressed: bool
    failed_s: float | None = None  #: time spent before the phase failed (then duration_s is None)

    @property
    def delta_pct(self) -> float | None:
        """Percent above (+) or below (-) the median; None when not comparable."""
        if self.duration_s is None or not self.median_s:
            return None
        return (self.duration_s / self.median_s - 1) * 100

    def text(self) -> str:
        """``61.2s (+12%)``, ``61.2s``, ``41.0s failed`` or ``-``."""
        if self.duration_s is None:
            return f"{self.failed_s:.1f}s failed" if self.failed_s is not None else "-"
        pct = self.delta_pct
        return f"{self.duration_s:.1f}s" + (f" ({pct:+.0f}%)" if pct is not None else "")


@dataclass(frozen=True)
class HistoryRow:
    """One drill in the history table."""

    run_id: str
    started_at: float
    date: str                       #: UTC, ``2026-11-26 23:48``
    verdict: str
    recovery_s: float | None
    objective_s: float | None
    phases: Mapping[str, PhaseCell] = field(default_factory=dict)
    regressions: tuple[Regression, ...] = ()


@dataclass(frozen=True)
class HistoryTable:
    """Data for the drill history view: columns in pipeline order, rows oldest first."""

    cluster: str
    phases: tuple[str, ...]
    rows: tuple[HistoryRow, ...]

    def to_dict(self) -> dict[str, Any]:
        """The table as JSON-ready data (``inv drill.history --json``)."""
        return {
            "schema": "drtool.drill-history/v1",
            "cluster": self.cluster,
            "phases": list(self.phases),
            "drills": [{
                "run_id": r.run_id, "started_at": r.started_at, "verdict": r.verdict,
                "recovery_s": r.recovery_s, "objective_s": r.objective_s,
                "phases": {p: {"duration_s": c.duration_s, "median_s": c.median_s, "delta_pct": c.delta_pct,
                               "regressed": c.regressed, "failed_s": c.failed_s} for p, c in r.phases.items()},
                "regressions": [g.to_dict() for g in r.regressions],
            } for r in self.rows],
        }


def _failed(report: Mapping[str, Any], phase: str) -> bool:
    return any(isinstance(x, Mapping) and normalize_phase(x.get("name", "")) == phase
               and not phase_succeeded(x) and not phase_skipped(x) for x in report.get("phases") or [])


def _fmt_date(epoch: float) -> str:
    if not epoch:
        return "?"
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def history_table(
    reports: Sequence[Mapping[str, Any]],
    cluster: str | None = None,
    margin: float = 0.25,
    min_delta_s: float = 1.0,
) -> HistoryTable:
    """Table data for ``reports`` (as from ``load_history``): each drill's phases are
    compared with the median of the drills listed before it, with the same regression
    rule as :func:`regressions`."""
    ordered = sorted(reports, key=lambda r: (report_time(r), str(r.get("run_id", ""))))
    seen: set[str] = set()
    for r in ordered:
        seen.update(p for p in (normalize_phase(x.get("name", "")) for x in r.get("phases") or []
                                if isinstance(x, Mapping)) if p)
    columns = tuple(sorted(seen, key=_phase_order))
    rows = []
    for i, report in enumerate(ordered):
        earlier = ordered[:i]
        medians = phase_medians(earlier)
        regs = tuple(regressions(report, earlier, margin=margin, min_delta_s=min_delta_s))
        regressed = {r.phase for r in regs}
        durations = phase_durations(report)
        ran = phase_durations(report, completed_only=False)
        cells = {p: PhaseCell(durations.get(p), medians.get(p, (None, 0))[0], p in regressed,
                              ran.get(p) if p not in durations and _failed(report, p) else None)
                 for p in columns}
        rows.append(HistoryRow(
            run_id=str(report.get("run_id", "?")),
            started_at=report_time(report),
            date=_fmt_date(report_time(report)),
            verdict=str(report.get("verdict", "incomplete")),
            recovery_s=as_number(report.get("recovery_s")),
            objective_s=as_number(report.get("objective_s")),
            phases=cells,
            regressions=regs,
        ))
    name = cluster or (str(ordered[-1].get("cluster", "")) if ordered else "")
    return HistoryTable(cluster=name, phases=columns, rows=tuple(rows))


_VERDICT_STYLE = {"pass": "green", "fail": "bold red", "over-objective": "yellow", "incomplete": "magenta"}


def render_history_table(table: HistoryTable, width: int | None = None):
    """A ``rich.table.Table`` for the terminal; regressed phases are shown in red.

    With ``width``, a table with a column per phase that would not fit becomes a narrow
    one (run, verdict, times, and which phases regressed) rather than one squeezed until
    every cell wraps."""
    wide = _wide_history_table(table)
    if width is not None:
        from rich.console import Console

        if Console(width=10_000).measure(wide).maximum > width:
            return _narrow_history_table(table)
    return wide


def _narrow_history_table(table: HistoryTable):
    """Run, verdict and times per drill; below, one line per drill with a regressed or
    failed phase (the phases that would not fit as columns)."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    t = Table(title=Text(f"Drill history: {table.cluster}"), box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("run", no_wrap=True)
    t.add_column("verdict", no_wrap=True)
    t.add_column("recovery", justify="right", no_wrap=True)
    t.add_column("objective", justify="right", no_wrap=True)
    notes: list[Text] = []
    for row in table.rows:
        t.add_row(Text(row.run_id), Text(row.verdict, style=_VERDICT_STYLE.get(row.verdict, "")),
                  f"{row.recovery_s:.1f}s" if row.recovery_s is not None else "-",
                  f"{row.objective_s:.0f}s" if row.objective_s is not None else "-")
        marked = [f"{p} {c.text()}" for p, c in row.phases.items() if c.regressed or c.failed_s is not None]
        if marked:
            notes.append(Text(f"{row.run_id}: " + ", ".join(marked), style="bold red"))
    caption = Text("phase columns hidden at this width; --json has them all", style="dim")
    return Group(t, *notes, caption)


def _wide_history_table(table: HistoryTable):
    from rich.table import Table  # imported here: only the CLI view needs rich
    from rich.text import Text

    t = Table(title=Text(f"Drill history: {table.cluster}"), show_lines=False)
    for col in ("date (UTC)", "run", "verdict", "recovery", "objective"):
        t.add_column(col, no_wrap=True)
    for p in table.phases:
        t.add_column(p, justify="right")
    for row in table.rows:
        cells: list[Any] = [
            # Text, not str: rich would read "[...]" in a run id as markup.
            Text(row.date), Text(row.run_id),
            Text(row.verdict, style=_VERDICT_STYLE.get(row.verdict, "")),
            f"{row.recovery_s:.1f}s" if row.recovery_s is not None else "-",
            f"{row.objective_s:.0f}s" if row.objective_s is not None else "-",
        ]
        for p in table.phases:
            cell = row.phases[p]
            cells.append(Text(cell.text(), style="bold red" if cell.regressed else ""))
        t.add_row(*cells)
    return t
