"""Drill results as a node_exporter textfile (``drtool_drill.prom``).

node_exporter's textfile collector reads every ``*.prom`` file in its directory on each
scrape, so the file is written whole to a temp file in the same directory and renamed
over the old one: a scrape never sees half a file, and the temp name (``.tmp``) is
ignored by the collector.

Label values are bounded on purpose: ``cluster`` and a FIXED set of ``phase`` names,
never run ids or messages, so a year of daily drills adds no new series.

Several clusters drilled from one host share the file: samples of other clusters are
read back and kept, and so is this cluster's ``last_success_timestamp`` when this drill
did not pass, so "no success in 8 days" keeps counting from the real last success.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Iterable, Mapping

from prometheus_client.parser import text_string_to_metric_families

from drtool.files import atomic_write
from drtool.drills.history import PHASE_NAMES, Regression, as_number, phase_durations, report_time

log = logging.getLogger(__name__)

FILENAME = "drtool_drill.prom"

#: name -> help text, in output order. All are gauges labelled ``cluster``.
METRICS: dict[str, str] = {
    "drtool_drill_last_success_timestamp_seconds": "Unix time the last passing drill ended.",
    "drtool_drill_last_run_timestamp_seconds": "Unix time the last drill ended, whatever its verdict.",
    "drtool_drill_success": "1 if the last drill passed (rebuilt, checks green, within objective), else 0.",
    "drtool_drill_recovery_seconds": "Recovery time measured by the last drill.",
    "drtool_drill_objective_seconds": "Recovery-time objective the last drill was held to.",
    "drtool_drill_phase_duration_seconds": "Duration of each phase of the last drill (phases it ran).",
    "drtool_drill_regressions": "Number of phases of the last drill slower than their historical median.",
}

#: Example Prometheus alerting rules for these metrics (rule file YAML).
EXAMPLE_ALERT_RULES = """\
groups:
  - name: drtool-drills
    rules:
      - alert: DrtoolDrillNoRecentSuccess
        # No passing drill in 8 days (daily or weekly drills both leave a margin);
        # also fires when a cluster has never had a passing drill but has drilled.
        expr: |
          (time() - drtool_drill_last_success_timestamp_seconds) > 8 * 86400
          or (drtool_drill_last_run_timestamp_seconds unless drtool_drill_last_success_timestamp_seconds)
        for: 1h
        labels:
          severity: critical
        annotations:
          summary: "No successful DR drill for cluster {{ $labels.cluster }} in 8 days"
          description: "The cluster may not be rebuildable from Git. Check the latest drill report."
      - alert: DrtoolDrillOverObjective
        expr: drtool_drill_recovery_seconds > drtool_drill_objective_seconds
        labels:
          severity: warning
        annotations:
          summary: "DR drill for {{ $labels.cluster }} exceeded its recovery-time objective"
          description: "Recovery took {{ $value | humanizeDuration }}, over the objective."
      - alert: DrtoolDrillRegression
        expr: drtool_drill_regressions > 0
        labels:
          severity: warning
        annotations:
          summary: "DR drill for {{ $labels.cluster }} has {{ $value }} slower phase(s)"
          description: "Some rebuild phases took clearly longer than their median; see drill history."
"""


def _escape_label(value: str) -> str:
    # Exposition format: backslash, double quote and newline are the only escapes.
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _fmt_value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v)) if v != int(v) or abs(v) >= 1e15 else str(int(v))


Sample = tuple[str, dict[str, str], float]


def _samples_from_text(text: str) -> list[Sample]:
    """Our metrics' samples in an existing file; anything unparsable is dropped with a warning."""
    out: list[Sample] = []
    try:
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if s.name in METRICS:
                    out.append((s.name, dict(s.labels), float(s.value)))
    except Exception as exc:  # the parser raises plain ValueError/TypeError on garbage
        log.warning("ignoring unreadable previous %s: %s", FILENAME, exc)
        return []
    return out


def drill_samples(
    report: Mapping[str, Any],
    regressions: Iterable[Regression] = (),
    previous_last_success: float | None = None,
) -> list[Sample]:
    """The samples one drill contributes, all labelled with its cluster."""
    cluster = str(report.get("cluster", ""))
    lab = {"cluster": cluster}
    ended = as_number(report.get("ended_at"))
    run_ts = ended if ended is not None else report_time(report)
    passed = report.get("verdict") == "pass"
    out: list[Sample] = []
    last_success = run_ts if passed else previous_last_success
    if last_success is not None:
        out.append(("drtool_drill_last_success_timestamp_seconds", lab, last_success))
    out.append(("drtool_drill_last_run_timestamp_seconds", lab, run_ts))
    out.append(("drtool_drill_success", lab, 1.0 if passed else 0.0))
    for key, name in (("recovery_s", "drtool_drill_recovery_seconds"),
                      ("objective_s", "drtool_drill_objective_seconds")):
        v = as_number(report.get(key))
        if v is not None:
            out.append((name, lab, v))
    # Every phase that ran, failed ones included: a failing converge that hit its
    # deadline is exactly the duration someone looking at a dashboard wants to see.
    durations = phase_durations(report, completed_only=False)
    for phase in PHASE_NAMES:
        if phase in durations:
            out.append(("drtool_drill_phase_duration_seconds", {"cluster": cluster, "phase": phase},
                        durations[phase]))
    unknown = set(durations) - set(PHASE_NAMES)
    if unknown:
        log.debug("phases not exported (not in the fixed label set): %s", sorted(unknown))
    out.append(("drtool_drill_regressions", lab, float(len(list(regressions)))))
    return out


def render_textfile(
    report: Mapping[str, Any],
    regressions: Iterable[Regression] = (),
    previous_text: str | None = None,
) -> str:
    """Full text of ``drtool_drill.prom`` after this drill.

    ``previous_text`` is the current file, if any: other clusters' samples are kept, and
    this cluster's last success time is carried over when this drill did not pass.
    """
    cluster = str(report.get("cluster", ""))
    kept: list[Sample] = []
    carried: float | None = None
    for name, labels, value in _samples_from_text(previous_text or ""):
        if labels.get("cluster") != cluster:
            kept.append((name, labels, value))
        elif name == "drtool_drill_last_success_timestamp_seconds":
            carried = value
    samples = kept + drill_samples(report, regressions, carried)
    lines: list[str] = []
    for name, help_text in METRICS.items():
        mine = sorted((s for s in samples if s[0] == name),
                      key=lambda s: (s[1].get("cluster", ""), _phase_key(s[1].get("phase"))))
        if not mine:
            continue
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        for _, labels, value in mine:
            body = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
            lines.append(f"{name}{{{body}}} {_fmt_value(value)}")
    return "\n".join(lines) + "\n"


def _phase_key(phase: str | None) -> int:
    if phase is None:
        return -1
    return PHASE_NAMES.index(phase) if phase in PHASE_NAMES else len(PHASE_NAMES)


def write_textfile(
    directory: str | Path,
    report: Mapping[str, Any],
    regressions: Iterable[Regression] = (),
    filename: str = FILENAME,
) -> Path:
    """Write (atomically) ``<directory>/drtool_drill.prom`` for this drill; returns its path.

    The directory is node_exporter's ``--collector.textfile.directory``; it must exist.
    """
    target = Path(directory) / filename
    try:
        previous = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        previous = None
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("cannot read previous %s (%s); starting afresh", target, exc)
        previous = None
    text = render_textfile(report, regressions, previous)
    atomic_write(target, text)
    return target
