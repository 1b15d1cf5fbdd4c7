"""The report's timeline picture: an inline SVG gantt chart, no script, no external asset.

Rows: each phase, then each Flux object / workload from first seen to Ready (or to the end
of the wait when it never got there), coloured by outcome; objects on the critical path
are outlined. Vertical markers show where recovery time starts, where the cluster
converged, and the objective's deadline when it falls on the chart. Every label is
escaped: object names and messages come from the cluster.
"""
from __future__ import annotations

from html import escape

from drtool.report import fmt
from drtool.report.model import Report, select_objects

MAX_OBJECT_ROWS = 300
"""Past this many objects ``select_objects`` picks which to draw (the chart stays a few pages tall)."""

COLOURS = {
    # phase outcomes
    "ok": "#2e9d5b", "noop": "#8fb8a0", "skipped": "#b7bcc4", "failed": "#d64545",
    "interrupted": "#e8913a", "running": "#8fb3e8", "pending": "#d6d9de",
    # object outcomes
    "ready": "#3f7fd1", "pending-object": "#e8b23a", "failed-object": "#d64545",
}
NICE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400)

WIDTH, LABEL_W, RIGHT_PAD, AXIS_H, ROW_H, BAR_H, SECTION_H = 1160, 310, 24, 46, 20, 13, 24


def _e(x: object) -> str:
    return escape(str(x), quote=True)


def tick_step(span_s: float, max_ticks: int = 10) -> int:
    """A round tick interval (seconds) giving at most ``max_ticks`` ticks over ``span_s``."""
    for step in NICE_STEPS:
        if span_s / step <= max_ticks:
            return step
    return NICE_STEPS[-1] * (int(span_s / (NICE_STEPS[-1] * max_ticks)) + 1)


def _short(text: str, limit: int = 44) -> str:
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


def _rows(report: Report) -> list[tuple]:
    """(section or None, label, start, end, colour, critical, tooltip, marks) per row."""
    horizon = report.ended_at or report.generated_at
    rows: list[tuple] = []
    phases = [(p, p.started_at) for p in report.phases if p.started_at is not None]
    if phases:
        rows.append(("Phases",))
    for p, start in phases:
        end = p.ended_at if p.ended_at is not None else horizon
        tip = f"{p.name}: {p.outcome}, {fmt.duration(p.duration_s if p.duration_s is not None else end - start)}"
        rows.append((None, p.name, start, end, COLOURS.get(p.outcome, COLOURS["pending"]), False,
                     tip + (f"\n{p.message}" if p.message else ""), ()))
    shown = select_objects(report, MAX_OBJECT_ROWS)
    if shown:
        more = (f" ({len(shown)} of {len(report.objects)}: critical, not Ready, Flux, slowest)"
                if len(shown) < len(report.objects) else "")
        rows.append(("Flux objects and workloads" + more,))
    conv_end = report.converge.ended_at if report.converge and report.converge.ended_at else horizon
    for o in shown:
        end = o.ready_at if o.ready_at is not None else conv_end
        colour = {"ready": COLOURS["ready"], "failed": COLOURS["failed-object"]}.get(o.outcome, COLOURS["pending-object"])
        took = fmt.duration(o.wait_s) if o.wait_s is not None else "not Ready"
        tip = f"{o.id}: {o.outcome} ({took}), ready {fmt.offset(o.ready_s)} after recovery start"
        if o.outcome != "ready":
            tip += f"\n{o.state} {o.reason}: {o.message}"
        if o.critical:
            tip += "\non the critical path"
        marks = tuple((h.at, f"{fmt.offset(h.t_s)} {h.state} {h.reason}: {h.message}") for h in o.history[1:])
        label = f"{o.kind} {o.namespace}/{o.name}" if o.namespace else f"{o.kind} {o.name}"
        rows.append((None, label, o.first_seen_at, end, colour, o.critical, tip, marks))
    return rows


def render_timeline(report: Report) -> str:
    """The ``<svg>`` element (a string) for the report's timeline; empty when nothing started."""
    rows = _rows(report)
    if not rows:
        return ""
    starts = [r[2] for r in rows if r[0] is None]
    ends = [r[3] for r in rows if r[0] is None]
    t0 = min([report.started_at, *starts])
    t1 = max([*ends, report.recovery_end_at or t0, t0 + 1])
    span = t1 - t0
    plot_w = WIDTH - LABEL_W - RIGHT_PAD

    def x(t: float) -> float:
        return LABEL_W + (t - t0) / span * plot_w

    height = AXIS_H + sum(SECTION_H if r[0] else ROW_H for r in rows) + 44
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {WIDTH} {height}" '
           f'width="{WIDTH}" height="{height}" role="img" aria-label="Timeline of the run">',
           '<defs><pattern id="pend" width="6" height="6" patternUnits="userSpaceOnUse" '
           'patternTransform="rotate(45)"><rect width="6" height="6" fill="#f3d27a"/>'
           '<rect width="3" height="6" fill="#e8b23a"/></pattern></defs>',
           f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>']
    # axis, grid and tick labels (offsets from run start)
    step = tick_step(span)
    grid_bottom = height - 44
    n = 0
    while n * step <= span + 1e-6 and n < 200:
        tx = x(t0 + n * step)
        out.append(f'<line x1="{tx:.1f}" y1="{AXIS_H - 6}" x2="{tx:.1f}" y2="{grid_bottom}" stroke="#e6e8eb"/>')
        out.append(f'<text x="{tx:.1f}" y="{AXIS_H - 10}" class="tick" text-anchor="middle">'
                   f'{_e(fmt.offset(n * step))}</text>')
        n += 1
    out.append(f'<text x="8" y="{AXIS_H - 10}" class="tick">time since run start ({_e(fmt.clock(t0))})</text>')

    y = AXIS_H
    for row in rows:
        if row[0] is not None:
            out.append(f'<text x="8" y="{y + 16}" class="section">{_e(row[0])}</text>')
            out.append(f'<line x1="8" y1="{y + 20}" x2="{WIDTH - RIGHT_PAD}" y2="{y + 20}" stroke="#c9ced6"/>')
            y += SECTION_H
            continue
        _, label, start, end, colour, critical, tip, marks = row
        end = max(end, start)
        bx, bw = x(start), max(x(end) - x(start), 2.0)
        by = y + (ROW_H - BAR_H) / 2
        fill = "url(#pend)" if colour == COLOURS["pending-object"] else colour
        stroke = ' stroke="#1b1f24" stroke-width="2"' if critical else ""
        out.append(f'<g><title>{_e(tip)}</title>'
                   f'<text x="{LABEL_W - 8}" y="{y + 14}" class="label" text-anchor="end">{_e(_short(label))}</text>'
                   f'<rect x="{bx:.1f}" y="{by:.1f}" width="{bw:.1f}" height="{BAR_H}" rx="3" fill="{fill}"{stroke}/>')
        for at, text in marks:
            if start < at < end:
                out.append(f'<line x1="{x(at):.1f}" y1="{by + 2:.1f}" x2="{x(at):.1f}" y2="{by + BAR_H - 2:.1f}" '
                           f'stroke="#ffffff" stroke-width="1.5"><title>{_e(text)}</title></line>')
        label_dur = fmt.duration(end - start)
        tx = bx + bw + 5
        if tx + 50 < WIDTH:
            out.append(f'<text x="{tx:.1f}" y="{y + 14}" class="dur">{_e(label_dur)}</text>')
        out.append("</g>")
        y += ROW_H

    # markers: recovery start, converged, objective deadline, where a run stopped
    markers = [(report.recovery_start_at, "#3f7fd1", "4 3", "recovery start")]
    if report.recovery_end_at:
        markers.append((report.recovery_end_at, "#2e9d5b", "", f"converged ({fmt.duration(report.recovery_s)})"))
    if report.objective_s is not None:
        deadline = report.recovery_start_at + report.objective_s
        if deadline <= t1:
            markers.append((deadline, "#d64545", "6 3", f"objective ({fmt.duration(report.objective_s)})"))
    if report.partial and report.ended_at:
        markers.append((report.ended_at, "#e8913a", "2 2", f"stopped in {report.stopped_at or '?'}"))
    for i, (t, colour, dash, text) in enumerate(markers):
        mx = x(t)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line x1="{mx:.1f}" y1="{AXIS_H - 4}" x2="{mx:.1f}" y2="{grid_bottom}" stroke="{colour}" '
                   f'stroke-width="1.5"{dash_attr}/>')
        anchor = "end" if mx > WIDTH - 160 else "start"
        lx = mx - 4 if anchor == "end" else mx + 4
        out.append(f'<text x="{lx:.1f}" y="{grid_bottom + 14 + 13 * (i % 2)}" class="marker" fill="{colour}" '
                   f'text-anchor="{anchor}">{_e(text)}</text>')
    if report.objective_s is not None and report.recovery_start_at + report.objective_s > t1:
        out.append(f'<text x="{WIDTH - RIGHT_PAD}" y="14" class="marker" fill="#d64545" text-anchor="end">'
                   f'objective {_e(fmt.duration(report.objective_s))} ends '
                   f'{_e(fmt.duration(report.recovery_start_at + report.objective_s - t1))} past the right edge</text>')
    out.append("</svg>")
    return "\n".join(out)


LEGEND = [("ok", "phase ok"), ("failed", "failed"), ("interrupted", "interrupted"), ("skipped", "skipped"),
          ("ready", "object Ready"), ("pending-object", "object not Ready")]


def legend_html() -> str:
    """Colour keys for the timeline, as HTML."""
    items = [f'<span class="key"><i style="background:{COLOURS[k]}"></i>{_e(t)}</span>' for k, t in LEGEND]
    items.append('<span class="key"><i style="background:#fff;outline:2px solid #1b1f24"></i>critical path</span>')
    return '<div class="legend">' + "".join(items) + "</div>"
