"""report.html: one self-contained page (inline CSS and SVG, no script, nothing fetched).

It opens on a browser with no network, from a file or an artifact store. Everything the
cluster wrote (object names, reasons, messages, Events) is untrusted and goes through
``html.escape`` exactly once, at the point where it is placed in the page.
"""
from __future__ import annotations

from html import escape

from drtool.report import fmt
from drtool.report.model import Report
from drtool.report.timeline import COLOURS, legend_html, render_timeline
from drtool.secret import redact

SLOWEST = 10
MAX_TABLE_ROWS = 1000
"""Rows in the "all objects" and "state history" tables; report.json always has everything."""

VERDICT_COLOURS = {"pass": "#2e9d5b", "fail": "#d64545", "over-objective": "#e8913a", "incomplete": "#6b7280"}

CSS = """
:root { --fg:#1b1f24; --muted:#5b6470; --line:#e1e4e8; --bg:#f6f7f9; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
  font:14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1220px; margin: 0 auto; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; display:flex; align-items:center; gap:12px; flex-wrap:wrap; }
h2 { font-size: 17px; margin: 28px 0 10px; }
h3 { font-size: 15px; margin: 0 0 6px; }
.badge { color:#fff; border-radius: 6px; padding: 3px 10px; font-size: 14px; letter-spacing: .04em; }
.reason { color: var(--muted); margin: 4px 0 16px; }
.cards { display:grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; margin: 14px 0; }
.card { background:#fff; border:1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.card .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .05em; }
.card .v { font-size: 22px; font-weight: 600; margin-top: 2px; }
.card .s { color: var(--muted); font-size: 12px; }
.banner { border-radius: 8px; padding: 10px 14px; margin: 10px 0; border:1px solid; }
.banner.partial { background:#fff6e8; border-color:#f0c27b; }
.banner.error { background:#fdeeee; border-color:#eba3a3; }
.panel { background:#fff; border:1px solid var(--line); border-radius: 8px; padding: 14px; overflow-x:auto; }
table { border-collapse: collapse; width: 100%; background:#fff; }
th, td { text-align:left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; background:#fafbfc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
.facts td:first-child { color: var(--muted); width: 190px; }
.dot { display:inline-block; width:10px; height:10px; border-radius:50%; margin-right:6px; vertical-align:baseline; }
.bar { background:#eef0f3; border-radius:3px; height:8px; min-width:120px; }
.bar > span { display:block; height:8px; border-radius:3px; }
.failure { background:#fff; border:1px solid #eba3a3; border-left: 5px solid #d64545; border-radius: 8px;
  padding: 12px 14px; margin-bottom: 10px; }
.failure ul { margin: 6px 0 0; padding-left: 20px; }
.muted { color: var(--muted); }
svg.timeline { display:block; max-width:100%; height:auto; }
svg .tick { font-size: 11px; fill: #6b7280; }
svg .label { font-size: 12px; fill: #1b1f24; }
svg .section { font-size: 12px; font-weight: 600; fill: #1b1f24; }
svg .dur { font-size: 10.5px; fill: #6b7280; }
svg .marker { font-size: 11px; font-weight: 600; }
svg text { font-family: -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
.legend { display:flex; flex-wrap:wrap; gap: 14px; margin-top: 8px; color: var(--muted); font-size: 12px; }
.legend i { display:inline-block; width: 14px; height: 10px; border-radius: 2px; margin-right: 5px; }
details summary { cursor: pointer; color: #3f7fd1; margin: 8px 0; }
footer { color: var(--muted); font-size: 12px; margin-top: 30px; }
"""


def _e(x: object) -> str:
    return escape("" if x is None else str(x), quote=True)


def _table(header: list[tuple[str, str]], rows: list[list[str]], cls: str = "") -> str:
    """``header`` is (title, css class); cells in ``rows`` must already be escaped HTML."""
    head = "".join(f'<th class="{c}">{_e(h)}</th>' for h, c in header)
    body = "".join("<tr>" + "".join(f'<td class="{header[i][1]}">{v}</td>' for i, v in enumerate(r)) + "</tr>"
                   for r in rows)
    return f'<div class="panel"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _dot(colour: str) -> str:
    return f'<span class="dot" style="background:{colour}"></span>'


def _cards(r: Report) -> str:
    def card(k: str, v: str, s: str = "") -> str:
        return f'<div class="card"><div class="k">{_e(k)}</div><div class="v">{_e(v)}</div><div class="s">{_e(s)}</div></div>'
    start = f"from {r.recovery_start_phase} start" if r.recovery_start_phase else "from run start"
    cards = [card("Recovery time", fmt.duration(r.recovery_s), start + " to converged" if r.recovery_s is not None
                  else "not measured")]
    cards.append(card("Objective", fmt.duration(r.objective_s),
                      f"margin {fmt.signed_duration(r.objective_margin_s)}" if r.objective_margin_s is not None else ""))
    if r.converge:
        c = r.converge
        cards.append(card("Objects Ready", f"{c.objects_ready} / {c.objects_total}",
                          f"{c.objects_failed} failed" if c.objects_failed else f"waited {fmt.duration(c.duration_s)}"))
    cards.append(card("Run duration", fmt.duration(r.duration_s) if r.duration_s is not None else "running",
                      f"{sum(p.outcome == 'ok' for p in r.phases)} of {len(r.phases)} phases ok"))
    return '<div class="cards">' + "".join(cards) + "</div>"


def _facts(r: Report) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in r.versions.items() if v) or fmt.DASH
    flags = ", ".join(f"{k}={v}" for k, v in r.flags.items() if v not in (None, False, "")) or "none"
    rows = [("Run", f'<code>{_e(r.run_id)}</code> ({_e(r.kind)}, trigger {_e(r.trigger)})'),
            ("Cluster / inventory", f'{_e(r.cluster)} / <code>{_e(r.inventory)}</code>'),
            ("Started / ended", f"{_e(fmt.clock(r.started_at))} / {_e(fmt.clock(r.ended_at))}"),
            ("Recovery window", f"{_e(fmt.clock(r.recovery_start_at))} → "
                                f"{_e(fmt.clock(r.recovery_end_at) if r.recovery_end_at else 'not converged')}"),
            ("Versions", _e(versions)),
            ("Git revision", f"<code>{_e(r.git_revision)}</code>" if r.git_revision else fmt.DASH),
            ("Host", _e(r.host or fmt.DASH)), ("Flags", _e(flags))]
    body = "".join(f"<tr><td>{_e(k)}</td><td>{v}</td></tr>" for k, v in rows)
    return f'<div class="panel"><table class="facts"><tbody>{body}</tbody></table></div>'



def _phases(r: Report) -> str:
    if not r.phases:
        return '<p class="muted">No phase started.</p>'
    longest = max((p.duration_s or 0 for p in r.phases), default=0) or 1
    rows = []
    for p in r.phases:
        colour = COLOURS.get(p.outcome, COLOURS["pending"])
        width = 100 * (p.duration_s or 0) / longest
        dur = fmt.duration(p.duration_s) if p.duration_s is not None else fmt.unfinished(r.status, p.started_at)
        rows.append([f"<code>{_e(p.name)}</code>", _dot(colour) + _e(p.outcome), _e(fmt.offset(p.offset_s)), _e(dur),
                     f'<div class="bar"><span style="width:{width:.1f}%;background:{colour}"></span></div>',
                     _e(p.message)])
    out = _table([("Phase", ""), ("Outcome", ""), ("Start", "num"), ("Duration", "num"), ("", ""), ("Message", "")], rows)
    if r.overlaps:
        out += "<p>Overlapped phases: " + "; ".join(
            f"<code>{_e(o.phase)}</code> alongside <code>{_e(o.alongside)}</code> {_e(fmt.duration(o.seconds))}"
            for o in r.overlaps) + ".</p>"
    steps = [[f"<code>{_e(p.name)}</code>", _e(node), _e(s.step), _e(fmt.offset(s.offset_s)), _e(fmt.duration(s.duration_s)),
              _e(fmt.DASH if s.exit_code is None else s.exit_code)]
             for p in r.phases for node, ns in p.nodes.items() for s in ns]
    if steps:
        out += "<h3 style='margin-top:16px'>Steps per node</h3>" + _table(
            [("Phase", ""), ("Node", ""), ("Step", ""), ("Start", "num"), ("Duration", "num"), ("Exit", "num")], steps)
    return out


def _failures(r: Report) -> str:
    parts = []
    for f in r.failures:
        events = "".join(f"<li class='mono'>{_e(e)}</li>" for e in f.events)
        blocks = (f"<div><b>Blocks:</b> {_e(f.chain)}</div>" if f.chain else
                  f"<div><b>Blocks:</b> {', '.join(f'<code>{_e(b)}</code>' for b in f.blocks)}</div>" if f.blocks else "")
        parts.append(f'<div class="failure"><h3><code>{_e(f.object)}</code>: {_e(f.reason or "failed")}</h3>'
                     f"<div>{_e(f.message)}</div>{blocks}"
                     + (f"<div style='margin-top:6px'><b>Recent events</b><ul>{events}</ul></div>" if events else "")
                     + "</div>")
    if r.pending:
        parts.append("<div class='panel'><b>Still pending:</b> "
                     + ", ".join(f"<code>{_e(p)}</code>" for p in r.pending) + "</div>")
    return "<h2>Failures</h2>" + "".join(parts) if parts else ""


def _critical(r: Report) -> str:
    if not r.critical_path:
        return ""
    rows = [[_e(i), f"<code>{_e(s.id)}</code>", f"<code>{_e(s.waits_on)}</code>" if s.waits_on else fmt.DASH,
             _e(fmt.offset(s.ready_s)), _e(fmt.signed_duration(s.added_s))] for i, s in enumerate(r.critical_path, 1)]
    return ("<h2>Critical path</h2><p class='muted'>The chain of waits that decided when the cluster was Ready; "
            "times since recovery start.</p>"
            + _table([("#", "num"), ("Object", ""), ("Waits on", ""), ("Ready", "num"), ("Added", "num")], rows))


def _nudges(r: Report) -> str:
    if not r.nudges:
        return ""
    sent = [n for n in r.nudges if n.ok]
    failed = len(r.nudges) - len(sent)
    names = ", ".join(f"<code>{_e(n.id)}</code>" for n in sent[:5]) + (f" (+{len(sent) - 5} more)" if len(sent) > 5 else "")
    return (f"<p>Flux nudged {len(sent)} time(s) (<code>reconcile.fluxcd.io/requestedAt</code>, as soon as "
            f"dependencies were Ready){': ' + names if names else ''}"
            f"{f'; {failed} request(s) failed' if failed else ''}.</p>")


def _where_time_went(r: Report) -> str:
    if not r.critical_time:
        return ""
    then = {"ready": "was waited on", "created": "created the next"}
    rows = [[_e(fmt.offset(s.start_s)), _e(fmt.duration(s.duration_s)),
             _e(s.what) if s.what.startswith(("phase ", "between ", "after ")) else f"<code>{_e(s.what)}</code>",
             _e(fmt.CAUSE_LABELS.get(s.cause, s.cause)), _e(s.reason) if s.reason else fmt.DASH,
             _e(then.get(s.via, fmt.DASH))] for s in r.critical_time]
    return ("<h2>Where the time went</h2><p class='muted'>The recovery time along the chain that decided it, "
            f"earliest first: {_e(fmt.cause_totals(r.critical_time_by_cause))}.</p>"
            + _table([("Start", "num"), ("Took", "num"), ("What", ""), ("Spent on", ""), ("Reason", ""),
                      ("Then", "")], rows))


def _object_rows(objs) -> list[list[str]]:
    colour = {"ready": COLOURS["ready"], "failed": COLOURS["failed-object"], "pending": COLOURS["pending-object"]}
    return [[f"<code>{_e(o.id)}</code>", _dot(colour[o.outcome]) + _e(o.outcome), _e(fmt.offset(o.first_seen_s)),
             _e(fmt.offset(o.ready_s)), _e(fmt.duration(o.wait_s)), "yes" if o.critical else "",
             _e(f"{o.state} {o.reason}: {o.message}" if o.outcome != "ready" else o.reason)] for o in objs]


_OBJ_HEADER = [("Object", ""), ("Outcome", ""), ("Seen", "num"), ("Ready", "num"), ("Took", "num"),
               ("Critical", ""), ("Status", "")]


def _objects(r: Report) -> str:
    if not r.objects:
        return ""
    slow = sorted((o for o in r.objects if o.wait_s is not None), key=lambda o: -(o.wait_s or 0.0))[:SLOWEST]
    out = (f"<h2>Slowest objects</h2><p class='muted'>The {len(slow)} that took longest from first seen to Ready; "
           "times since recovery start.</p>" + _table(_OBJ_HEADER, _object_rows(slow)))
    history = [(o, h) for o in r.objects for h in o.history]
    history_rows = [[f"<code>{_e(o.id)}</code>", _e(fmt.offset(h.t_s)), _e(h.state), _e(h.reason), _e(h.message)]
                    for o, h in history[:MAX_TABLE_ROWS]]

    def cut(n: int) -> str:
        return f" (first {MAX_TABLE_ROWS}; report.json has all {n})" if n > MAX_TABLE_ROWS else ""
    out += (f"<details><summary>All {len(r.objects)} objects{cut(len(r.objects))}</summary>"
            + _table(_OBJ_HEADER, _object_rows(r.objects[:MAX_TABLE_ROWS])) + "</details>")
    if history_rows:
        out += (f"<details><summary>State history{cut(len(history))}</summary>"
                + _table([("Object", ""), ("At", "num"), ("State", ""), ("Reason", ""), ("Message", "")], history_rows)
                + "</details>")
    return out


def _checks(r: Report) -> str:
    if not r.post_checks:
        return ""
    rows = [[_e(c.name), _dot(COLOURS["ok"] if c.ok else COLOURS["failed"]) + ("ok" if c.ok else "<b>failed</b>"),
             _e(fmt.duration(c.duration_s)), _e(c.message)] for c in r.post_checks]
    return "<h2>Post-deploy checks</h2>" + _table([("Check", ""), ("Result", ""), ("Duration", "num"), ("Message", "")], rows)


def _gitops(r: Report) -> str:
    g = r.gitops_check
    if not g:
        return ""
    if g.get("skipped"):
        return f"<h2>GitOps check</h2><p>Skipped: {_e(g['skipped'])}.</p>"
    findings = g.get("findings") or []
    if not findings:
        return "<h2>GitOps check</h2><p>No findings.</p>"
    rows = [[("<b>blocker</b>" if f.get("severity") == "blocker" else "warning")
             + (" (accepted)" if f.get("accepted") else ""), f"<code>{_e(f.get('id'))}</code>",
             _e(f.get("kustomization")), _e(f.get("file")), _e(f.get("message")), _e(f.get("fix"))] for f in findings]
    return "<h2>GitOps check</h2>" + _table([("Severity", ""), ("Finding", ""), ("Kustomization", ""), ("File", ""),
                                            ("What", ""), ("Fix", "")], rows)


def render_html(report: Report) -> str:
    """The whole report.html page, redacted."""
    r = report
    verdict = fmt.VERDICT_TEXT.get(r.verdict, r.verdict.upper())
    colour = VERDICT_COLOURS.get(r.verdict, "#6b7280")
    banners = ""
    if r.partial:
        where = f"in <code>{_e(r.stopped_at)}</code>" if r.stopped_at else "before any phase"
        banners += (f'<div class="banner partial"><b>Partial report:</b> the run stopped {where} '
                    f"(status: {_e(r.status)}).</div>")
    if r.error:
        e = r.error
        banners += (f'<div class="banner error"><b>Error{" in " + _e(e.phase) if e.phase else ""}:</b> '
                    f"{_e(e.type)}: {_e(e.message)}"
                    + (f" (exit code {_e(e.exit_code)})" if e.exit_code is not None else "") + "</div>")
    svg = render_timeline(r)
    timeline = (f"<h2>Timeline</h2><div class='panel'>{svg}{legend_html()}</div>" if svg else "")
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>{_e(r.cluster or r.run_id)} {_e(r.kind)}: {_e(verdict)}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<h1>{_e(r.cluster or r.run_id)} <span class="muted" style="font-weight:400">{_e(r.kind)}</span>
<span class="badge" style="background:{colour}">{_e(verdict)}</span></h1>
<div class="reason">{_e(r.verdict_reason)}</div>
{banners}
{_cards(r)}
{_failures(r)}
{_facts(r)}
{timeline}
<h2>Phases</h2>
{_phases(r)}
{_gitops(r)}
{_nudges(r)}
{_where_time_went(r)}
{_critical(r)}
{_objects(r)}
{_checks(r)}
<footer>{_e(r.schema_)} · run {_e(r.run_id)} · generated {_e(fmt.clock(r.generated_at))}</footer>
</main>
</body>
</html>
"""
    return redact(page)
