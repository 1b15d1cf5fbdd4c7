"""Drill history as one self-contained HTML page with inline SVG trend charts.

The page is meant to be mailed, attached to CI or opened from a USB stick during an
outage: no scripts, no fonts, no network (a Content-Security-Policy forbids any fetch).
Every text that came from a report (run ids, cluster names, messages) is redacted and
HTML-escaped: reports are written by the tool but hold output from remote commands.

Two pictures:
- recovery time per drill with the objective as a dashed line (points coloured by verdict);
- per drill, a stacked bar of phase durations; a phase slower than its median over the
  earlier drills (see :func:`drtool.drills.history.regressions`) has a red outline.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Mapping, Sequence

from drtool.drills.history import PHASE_NAMES, HistoryRow, HistoryTable, history_table
from drtool.secret import redact

_VERDICT_COLOR = {"pass": "#2e7d32", "over-objective": "#ef6c00", "fail": "#c62828", "incomplete": "#6a1b9a"}
# Verdicts whose recovery time measures a rebuild; others are marked, not drawn on the line
# (a drill that failed after 60 s is not a fast recovery).
_RECOVERED = ("pass", "over-objective")
# One distinct colour per pipeline phase, neighbours contrasting; no red (red means regression).
_PALETTE = ("#4e79a7", "#a0cbe8", "#f28e2b", "#59a14f", "#8cd17d", "#b6992d",
            "#edc948", "#b07aa1", "#9c755f", "#76b7b2", "#bab0ac", "#d4a6c8")

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.85rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right;white-space:nowrap}
th{background:#f4f4f4}td.l{text-align:left}
td.reg{background:#fde0e0;color:#b71c1c;font-weight:bold}
.v-pass{color:#2e7d32}.v-fail{color:#c62828}.v-over-objective{color:#ef6c00}.v-incomplete{color:#6a1b9a}
.legend span{display:inline-block;margin-right:1rem;font-size:.8rem}
.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}
svg{max-width:100%;height:auto;border:1px solid #eee}
.scroll{overflow-x:auto}
"""


def _e(text: Any) -> str:
    """Redacted and HTML-escaped (quotes too: safe in attributes)."""
    return html.escape(redact("" if text is None else str(text)), quote=True)


def _phase_color(phase: str, columns: Sequence[str]) -> str:
    idx = PHASE_NAMES.index(phase) if phase in PHASE_NAMES else len(PHASE_NAMES) + list(columns).index(phase)
    return _PALETTE[idx % len(_PALETTE)]


def _nice_max(v: float) -> float:
    """A round axis maximum above ``v`` (60, 120, 300, 600, 900, ...)."""
    for step in (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200):
        top = step * (int(v // step) + 1)
        if top / step <= 6:
            return float(top)
    return float(v * 1.1 or 1)


def _x_positions(n: int, left: float, width: float) -> list[float]:
    if n == 1:
        return [left + width / 2]
    return [left + width * i / (n - 1) for i in range(n)]


def recovery_svg(rows: Sequence[HistoryRow], width: int = 760, height: int = 260) -> str:
    """SVG line chart: recovery time per drill, objective dashed."""
    left, right, top, bottom = 56, 16, 16, 48
    pw, ph = width - left - right, height - top - bottom
    values = [v for r in rows for v in (r.recovery_s, r.objective_s) if v is not None]
    ymax = _nice_max(max(values)) if values else 60.0
    xs = _x_positions(len(rows), left + 10, pw - 20)

    def y(v: float) -> float:
        return top + ph - ph * min(v, ymax) / ymax

    parts = [f'<svg viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="Recovery time per drill">']
    for i in range(5):  # horizontal grid with second labels
        v = ymax * i / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>'
                     f'<text x="{left - 6}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end">{v:.0f}s</text>')
    obj = [(x, r.objective_s) for x, r in zip(xs, rows) if r.objective_s is not None]
    if obj:
        pts = " ".join(f"{x:.1f},{y(v):.1f}" for x, v in obj)
        parts.append(f'<polyline class="objective" points="{pts}" fill="none" stroke="#c62828" '
                     f'stroke-dasharray="6 4" stroke-width="1.5"><title>objective</title></polyline>')
    rec = [(x, r.recovery_s) for x, r in zip(xs, rows) if r.recovery_s is not None and r.verdict in _RECOVERED]
    if rec:
        pts = " ".join(f"{x:.1f},{y(v):.1f}" for x, v in rec)
        parts.append(f'<polyline class="recovery" points="{pts}" fill="none" stroke="#1f4e79" stroke-width="2"/>')
    for x, r in zip(xs, rows):
        label = f"{r.date} {r.run_id}: {r.verdict}"
        if r.recovery_s is not None and r.verdict in _RECOVERED:
            color = _VERDICT_COLOR.get(r.verdict, "#555")
            ring = ' stroke="#b71c1c" stroke-width="2.5"' if r.regressions else ""
            parts.append(f'<circle cx="{x:.1f}" cy="{y(r.recovery_s):.1f}" r="4.5" fill="{color}"{ring}>'
                         f'<title>{_e(label)}, recovery {r.recovery_s:.1f}s</title></circle>')
        else:  # no recovery time: mark the drill on the axis so failures are not invisible
            parts.append(f'<text x="{x:.1f}" y="{top + ph - 4:.1f}" font-size="13" text-anchor="middle" '
                         f'fill="{_VERDICT_COLOR.get(r.verdict, "#555")}">&#x2715;<title>{_e(label)}</title></text>')
    parts += _x_labels(rows, xs, top + ph)
    parts.append("</svg>")
    return "".join(parts)


def _x_labels(rows: Sequence[HistoryRow], xs: Sequence[float], base: float) -> list[str]:
    every = max(1, -(-len(rows) // 8))  # at most 8 date labels fit without overlapping
    out = []
    for i, (x, r) in enumerate(zip(xs, rows)):
        if (len(rows) - 1 - i) % every == 0:  # counted from the newest drill, always labelled
            out.append(f'<text x="{x:.1f}" y="{base + 16:.1f}" font-size="10" text-anchor="middle">'
                       f'{_e(r.date[:10])}</text>')
    return out


def phases_svg(table: HistoryTable, width: int = 760, height: int = 300) -> str:
    """SVG stacked bars: phase durations per drill; regressed phases outlined in red."""
    rows, cols = table.rows, table.phases
    left, right, top, bottom = 56, 16, 16, 48
    pw, ph = width - left - right, height - top - bottom
    totals = [sum(c.duration_s or c.failed_s or 0 for c in r.phases.values()) for r in rows]
    ymax = _nice_max(max(totals)) if totals and max(totals) > 0 else 60.0
    slot = pw / max(len(rows), 1)
    bw = max(min(slot * 0.6, 40), 2)
    parts = [f'<svg viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="Phase durations per drill">']
    for i in range(5):
        v = ymax * i / 4
        yy = top + ph - ph * v / ymax
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#eee"/>'
                     f'<text x="{left - 6}" y="{yy + 4:.1f}" font-size="11" text-anchor="end">{v:.0f}s</text>')
    xs = [left + slot * (i + 0.5) for i in range(len(rows))]
    for x, r in zip(xs, rows):
        base = float(top + ph)
        for p in cols:
            cell = r.phases[p]
            secs = cell.duration_s or cell.failed_s
            if not secs:
                continue
            h = ph * secs / ymax
            base -= h
            stroke = (' stroke="#b71c1c" stroke-width="2.5" class="regressed"' if cell.regressed else
                      ' fill-opacity="0.45" stroke="#c62828" stroke-dasharray="3 2" class="failed"'
                      if cell.duration_s is None else "")
            tip = f"{r.run_id} {p}: {cell.text()}" + (" REGRESSION" if cell.regressed else "")
            parts.append(f'<rect x="{x - bw / 2:.1f}" y="{base:.1f}" width="{bw:.1f}" height="{h:.1f}" '
                         f'fill="{_phase_color(p, cols)}"{stroke}><title>{_e(tip)}</title></rect>')
    parts += _x_labels(rows, xs, top + ph)
    parts.append("</svg>")
    return "".join(parts)


def render_history_html(
    reports: Sequence[Mapping[str, Any]],
    cluster: str | None = None,
    *,
    margin: float = 0.25,
    min_delta_s: float = 1.0,
    title: str | None = None,
) -> str:
    """The whole HTML page for ``reports`` (oldest first, as ``load_history`` returns)."""
    table = history_table(reports, cluster, margin=margin, min_delta_s=min_delta_s)
    rows = table.rows
    name = table.cluster or "?"
    heading = title or f"DR drill history: {name}"
    passed = sum(r.verdict == "pass" for r in rows)
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # Self-contained by construction; the policy makes any accidental fetch fail loudly.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(heading)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(heading)}</h1>",
    ]
    if not rows:
        out.append("<p>No drills recorded yet.</p></body></html>")
        return "\n".join(out)
    last = rows[-1]
    out.append(f'<p>{len(rows)} drill{"s" if len(rows) != 1 else ""}, {passed} passed. Latest: '
               f'<strong class="v-{_e(last.verdict)}">{_e(last.verdict)}</strong> on {_e(last.date)} UTC '
               f'(run <code>{_e(last.run_id)}</code>).</p>')
    if last.regressions:
        out.append('<p class="regressions"><strong>Regressions in the latest drill:</strong></p><ul>')
        out += [f"<li>{_e(reg.describe())}</li>" for reg in last.regressions]
        out.append("</ul>")
    out.append("<h2>Recovery time</h2>")
    out.append(recovery_svg(rows))
    out.append('<div class="legend"><span><i style="background:#1f4e79"></i>recovery</span>'
               '<span><i style="background:#c62828"></i>objective (dashed)</span>'
               + "".join(f'<span><i style="background:{c}"></i>{_e(v)}</span>' for v, c in _VERDICT_COLOR.items())
               + "</div>")
    out.append("<h2>Phases per drill</h2>")
    out.append(phases_svg(table))
    out.append('<div class="legend">' + "".join(
        f'<span><i style="background:{_phase_color(p, table.phases)}"></i>{_e(p)}</span>' for p in table.phases)
        + '<span><i style="border:2px solid #b71c1c;box-sizing:border-box"></i>regression</span>'
        + '<span><i style="border:2px dashed #c62828;box-sizing:border-box"></i>failed</span></div>')
    out.append("<h2>Drills</h2><div class=\"scroll\"><table><thead><tr><th>date (UTC)</th><th>run</th><th>verdict</th>"
               "<th>recovery</th><th>objective</th>"
               + "".join(f"<th>{_e(p)}</th>" for p in table.phases) + "</tr></thead><tbody>")
    for r in reversed(rows):  # newest first: that is what a reader looks for
        cells = [f'<td class="l">{_e(r.date)}</td>', f'<td class="l"><code>{_e(r.run_id)}</code></td>',
                 f'<td class="l v-{_e(r.verdict)}">{_e(r.verdict)}</td>',
                 f"<td>{_e(f'{r.recovery_s:.1f}s' if r.recovery_s is not None else '-')}</td>",
                 f"<td>{_e(f'{r.objective_s:.0f}s' if r.objective_s is not None else '-')}</td>"]
        for p in table.phases:
            c = r.phases[p]
            cls = ' class="reg"' if c.regressed else ""
            tip = f' title="median {c.median_s:.1f}s"' if c.median_s is not None else ""
            cells.append(f"<td{cls}{tip}>{_e(c.text())}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    out.append("<p><small>Phase cells compare with the median of the drills before each one; "
               f"red: slower by more than {margin:.0%} and {min_delta_s:g}s.</small></p>")
    out.append("</body></html>")
    return "\n".join(out)


def write_history_html(path: str | Path, reports: Sequence[Mapping[str, Any]], cluster: str | None = None,
                       **kwargs: Any) -> Path:
    """Write :func:`render_history_html` to ``path`` and return it."""
    p = Path(path)
    p.write_text(render_history_html(reports, cluster, **kwargs), encoding="utf-8")
    return p
