"""A Mermaid ``gantt`` chart of a report: phases, then Flux objects and workloads.

Mermaid's gantt grammar reads a task line as ``<text> :<data>`` where the text runs up to
the first ``:`` and the data stops at ``#`` or ``;``; ``%%`` starts a comment, ``#...;``
is taken as an HTML entity, and a line starting with a keyword (``section``, ``title``,
``click``...) is not a task at all. Object names and phase names come from the cluster
and the journal, so every name goes through ``task_text`` before it is written: a
restricted character set, and a prefix when it would start with a keyword.

Times use ``dateFormat x`` (epoch milliseconds) so sub-second phases keep their length.
"""
from __future__ import annotations

import re
import string

from drtool.report.model import Report, select_objects

MAX_OBJECTS = 40
"""Gantt rows for objects; past this ``select_objects`` picks which to draw."""

_UNSAFE = re.compile(r"[^A-Za-z0-9 ._/()=+,-]+")
_KEYWORDS = {"gantt", "title", "section", "dateformat", "axisformat", "tickinterval", "includes",
             "excludes", "todaymarker", "weekday", "weekend", "click", "call", "href", "topaxis",
             "inclusiveenddates", "acctitle", "accdescr", "accdescription"}

PHASE_TAGS = {"ok": "done", "noop": "done", "skipped": "done", "failed": "crit", "interrupted": "crit, active", "running": "active"}
OBJECT_TAGS = {"ready": "done", "failed": "crit", "pending": "crit, active"}


def task_text(text: str, limit: int = 60) -> str:
    """A name that Mermaid reads as task text, whatever the input."""
    clean = " ".join(_UNSAFE.sub("-", text).split()) or "unnamed"
    if len(clean) > limit:
        clean = clean[: limit - 3].rstrip() + "..."
    first = clean[: len(clean) - len(clean.lstrip(string.ascii_letters))].lower()
    if first in _KEYWORDS or re.match(r"\d{4}-\d\d-\d\d", clean):
        clean = "- " + clean
    return clean


def _ms(epoch: float) -> int:
    return int(round(epoch * 1000))


def _task(name: str, tags: str, ident: str, start: float, end: float) -> str:
    a, b = _ms(start), _ms(end)
    b = max(b, a + 1)  # a zero-length task is dropped or mis-drawn by some renderers
    data = ", ".join(x for x in (tags, ident, str(a), str(b)) if x)
    return f"    {task_text(name)} :{data}"


def gantt(report: Report) -> str:
    """The ``gantt`` chart text (without the fence). Open-ended bars end at the run's end
    or, for a run still going, at the time the report was made."""
    horizon = report.ended_at or report.generated_at
    title = task_text(f"{report.kind} {report.cluster} {report.run_id}", limit=100)
    lines = ["gantt", f"    title {title}", "    dateFormat x", "    axisFormat %H:%M:%S"]
    phases = [(p, p.started_at) for p in report.phases if p.started_at is not None]
    if phases:
        lines.append("    section Phases")
        for i, (p, start) in enumerate(phases, 1):
            lines.append(_task(p.name, PHASE_TAGS.get(p.outcome, ""), f"p{i}", start,
                               p.ended_at if p.ended_at is not None else horizon))
    objs = select_objects(report, MAX_OBJECTS)
    if objs:
        shown = f" ({len(objs)} of {len(report.objects)})" if len(objs) < len(report.objects) else ""
        lines.append(f"    section Flux objects{shown}")
        conv_end = report.converge.ended_at if report.converge and report.converge.ended_at else horizon
        for i, o in enumerate(objs, 1):
            if o.first_seen_at is None:  # select_objects keeps only objects that were seen
                continue
            end = o.ready_at if o.ready_at is not None else conv_end
            tags = "active" if o.critical and o.outcome == "ready" else OBJECT_TAGS[o.outcome]
            lines.append(_task(f"{o.kind} {o.namespace}/{o.name}" if o.namespace else f"{o.kind} {o.name}",
                               tags, f"o{i}", o.first_seen_at, end))
    if report.recovery_s is not None or report.objective_s is not None:
        lines.append("    section Recovery")
        if report.recovery_s is not None:
            lines.append(_task("recovery time", "crit" if report.verdict == "over-objective" else "done",
                               "r1", report.recovery_start_at, report.recovery_start_at + report.recovery_s))
        if report.objective_s is not None:
            lines.append(_task("objective", "", "r2", report.recovery_start_at,
                               report.recovery_start_at + report.objective_s))
    return "\n".join(lines)
