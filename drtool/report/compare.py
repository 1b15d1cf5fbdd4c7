"""Compare two reports: how much faster or slower each phase and each object was.

Used to compare a drill with the previous one, or a rebuild before and after a change.
Deltas are ``b - a``: positive means the second run was slower.
"""
from __future__ import annotations

from typing import Any

from drtool.report import fmt
from drtool.report.markdown import cell, code
from drtool.report.model import load_report


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(b - a, 3)


def _pct(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or a <= 0 else round(100.0 * (b - a) / a, 1)


def _row(key: str, a: float | None, b: float | None, **extra: Any) -> dict[str, Any]:
    return {key: extra.pop("name"), "a_s": a, "b_s": b, "delta_s": _delta(a, b), "delta_pct": _pct(a, b), **extra}


def _aligned(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, a's item or None, b's item or None) for every key, in a's order then b's extras."""
    return [(k, a.get(k), b.get(k)) for k in list(a) + [k for k in b if k not in a]]


def _get(item: Any, field: str) -> Any:
    return None if item is None else getattr(item, field)


def compare(report_a: dict[str, Any], report_b: dict[str, Any]) -> dict[str, Any]:
    """Per-phase and per-object deltas between two report.json dicts.

    Phases are matched by name and objects by id; one present in only one report gets
    ``None`` on the other side. Object times are ``ready_s`` (since recovery start), so a
    delta says how much later the object was Ready in run b. Phases keep run a's order
    (then b's extras); objects are sorted by the size of the change, largest first.
    """
    a, b = load_report(report_a), load_report(report_b)
    phases = [_row("name", _get(x, "duration_s"), _get(y, "duration_s"), name=n,
                   a_outcome=_get(x, "outcome"), b_outcome=_get(y, "outcome"))
              for n, x, y in _aligned({p.name: p for p in a.phases}, {p.name: p for p in b.phases})]
    objects = [_row("id", _get(x, "ready_s"), _get(y, "ready_s"), name=i,
                    a_wait_s=_get(x, "wait_s"), b_wait_s=_get(y, "wait_s"))
               for i, x, y in _aligned({o.id: o for o in a.objects}, {o.id: o for o in b.objects})]
    objects.sort(key=lambda r: (r["delta_s"] is None, -abs(r["delta_s"] or 0), r["id"]))
    return {
        "schema": "drtool.report-compare/v1",
        "a": {"run_id": a.run_id, "verdict": a.verdict, "recovery_s": a.recovery_s, "started_at": a.started_at},
        "b": {"run_id": b.run_id, "verdict": b.verdict, "recovery_s": b.recovery_s, "started_at": b.started_at},
        "recovery": {"a_s": a.recovery_s, "b_s": b.recovery_s, "delta_s": _delta(a.recovery_s, b.recovery_s),
                     "delta_pct": _pct(a.recovery_s, b.recovery_s)},
        "phases": phases,
        "objects": objects,
        "critical_time": [_row("cause", a.critical_time_by_cause.get(c), b.critical_time_by_cause.get(c), name=c)
                          for c in ("work", "image_pull", "flux_timer")
                          if c in a.critical_time_by_cause or c in b.critical_time_by_cause],
    }


def _pct_text(p: float | None) -> str:
    return fmt.DASH if p is None else f"{p:+.0f}%"


def render_compare_md(comparison: dict[str, Any], max_objects: int = 15) -> str:
    """A Markdown summary of ``compare()``: recovery time, a phase table, and the objects
    whose Ready time moved most."""
    a, b, rec = comparison["a"], comparison["b"], comparison["recovery"]
    out = [f"# Comparing {code(a['run_id'])} (a) with {code(b['run_id'])} (b)", "",
           f"Recovery time: {fmt.duration(rec['a_s'])} → {fmt.duration(rec['b_s'])} "
           f"({fmt.signed_duration(rec['delta_s'])}, {_pct_text(rec['delta_pct'])}); "
           f"verdict {cell(a['verdict'])} → {cell(b['verdict'])}", "",
           "## Phases", "", "| Phase | a | b | Δ | Δ% |", "|---|---|---|---|---|"]
    for p in comparison["phases"]:
        out.append(f"| {code(p['name'])} | {fmt.duration(p['a_s'])} | {fmt.duration(p['b_s'])} | "
                   f"{fmt.signed_duration(p['delta_s'])} | {_pct_text(p['delta_pct'])} |")
    causes = comparison.get("critical_time") or []
    if causes:
        labels = {"work": "work", "image_pull": "image pulls", "flux_timer": "Flux timers"}
        out += ["", "## Where the time went (critical path, by cause)", "", "| Spent on | a | b | Δ | Δ% |",
                "|---|---|---|---|---|"]
        for c in causes:
            out.append(f"| {labels.get(c['cause'], c['cause'])} | {fmt.duration(c['a_s'])} | {fmt.duration(c['b_s'])} | "
                       f"{fmt.signed_duration(c['delta_s'])} | {_pct_text(c['delta_pct'])} |")
    objs = comparison["objects"][:max_objects]
    if objs:
        more = len(comparison["objects"]) - len(objs)
        out += ["", f"## Objects (Ready time since recovery start, largest change first"
                    f"{f'; {more} more not shown' if more > 0 else ''})", "",
                "| Object | a | b | Δ |", "|---|---|---|---|"]
        for o in objs:
            out.append(f"| {code(o['id'])} | {fmt.offset(o['a_s'])} | {fmt.offset(o['b_s'])} | "
                       f"{fmt.signed_duration(o['delta_s'])} |")
    return "\n".join(out) + "\n"
