"""report.md: the run at a glance, readable in a minute and rendered by GitHub/GitLab.

Object names, reasons, messages and Events come from the cluster and are untrusted: they
are written as escaped table cells or list items, never inside code fences they could
close, and never as raw HTML.
"""
from __future__ import annotations

from drtool.report import fmt
from drtool.report.mermaid import gantt
from drtool.report.model import Report
from drtool.secret import redact

SLOWEST = 10


def cell(text: object) -> str:
    """Text safe inside a Markdown table cell (and as inline text)."""
    s = " ".join(str(text if text is not None else "").split())
    for a, b in (("\\", "\\\\"), ("|", "\\|"), ("<", "&lt;"), (">", "&gt;"), ("`", "'"),
                 ("*", "\\*"), ("_", "\\_"), ("[", "\\["), ("]", "\\]")):
        s = s.replace(a, b)
    return s


def code(text: object) -> str:
    """Inline code for ids and names; backticks can't close it early."""
    s = " ".join(str(text).split()).replace("`", "'").replace("|", "\\|")
    return f"`{s}`" if s else ""


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out + [""]


def _facts(r: Report) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in r.versions.items() if v) or fmt.DASH
    flags = ", ".join(f"{k}={v}" for k, v in r.flags.items() if v not in (None, False, "")) or "none"
    start_from = f"start of `{r.recovery_start_phase}`" if r.recovery_start_phase else "run start"
    until = fmt.clock(r.recovery_end_at) if r.recovery_end_at else "not converged"
    rows = [
        ["Run", f"{code(r.run_id)} ({cell(r.kind)}, trigger {cell(r.trigger)})"],
        ["Cluster / inventory", f"{cell(r.cluster)} / {code(r.inventory)}"],
        ["Started / ended", f"{fmt.clock(r.started_at)} / {fmt.clock(r.ended_at)} ({fmt.duration(r.duration_s)})"],
        ["Recovery time", f"{fmt.duration(r.recovery_s)} (from {start_from} at {fmt.clock(r.recovery_start_at)} "
                          f"until converged: {until})"],
        ["Objective", fmt.duration(r.objective_s) + (f", margin {fmt.signed_duration(r.objective_margin_s)}"
                                                     if r.objective_margin_s is not None else "")],
        ["Versions", cell(versions)],
        ["Git revision", code(r.git_revision) if r.git_revision else fmt.DASH],
        ["Host / flags", f"{cell(r.host) or fmt.DASH} / {cell(flags)}"],
    ]
    return _table(["", ""], rows)



def _phases(r: Report) -> list[str]:
    rows = [[code(p.name), cell(p.outcome), fmt.offset(p.offset_s),
             fmt.duration(p.duration_s) if p.duration_s is not None else fmt.unfinished(r.status, p.started_at),
             cell(p.message)] for p in r.phases]
    out = ["## Phases", ""]
    if not rows:
        return out + ["No phase started.", ""]
    out += _table(["Phase", "Outcome", "Start", "Duration", "Message"], rows)
    if r.overlaps:
        pairs = "; ".join(f"{code(o.phase)} alongside {code(o.alongside)} {fmt.duration(o.seconds)}" for o in r.overlaps)
        out += [f"Overlapped phases: {pairs}.", ""]
    steps = [[code(p.name), cell(node), cell(s.step), fmt.offset(s.offset_s), fmt.duration(s.duration_s),
              fmt.DASH if s.exit_code is None else str(s.exit_code)]
             for p in r.phases for node, node_steps in p.nodes.items() for s in node_steps]
    if steps:
        out += ["### Steps per node", ""] + _table(["Phase", "Node", "Step", "Start", "Duration", "Exit"], steps)
    return out


def _objects(r: Report) -> list[str]:
    if not r.objects:
        return []
    c = r.converge
    intro = (f"{c.objects_ready} of {c.objects_total} objects Ready" if c else f"{len(r.objects)} objects")
    slow = sorted((o for o in r.objects if o.wait_s is not None), key=lambda o: -(o.wait_s or 0.0))[:SLOWEST]
    out = ["## Slowest objects", "", f"{intro}; the {len(slow)} that took longest from first seen to Ready "
           "(times are since recovery start):", ""]
    out += _table(["Object", "Seen", "Ready", "Took", "Critical path"],
                  [[code(o.id), fmt.offset(o.first_seen_s), fmt.offset(o.ready_s), fmt.duration(o.wait_s),
                    "yes" if o.critical else ""] for o in slow])
    return out


def _nudges(r: Report) -> list[str]:
    """One line: how often drtool asked Flux to reconcile at once instead of waiting for a timer."""
    if not r.nudges:
        return []
    sent = [n for n in r.nudges if n.ok]
    failed = len(r.nudges) - len(sent)
    names = ", ".join(code(n.id) for n in sent[:5]) + (f" (+{len(sent) - 5} more)" if len(sent) > 5 else "")
    line = (f"Flux nudged {len(sent)} time(s) (`reconcile.fluxcd.io/requestedAt`, as soon as dependencies "
            f"were Ready){': ' + names if names else ''}")
    return [line + (f"; {failed} request(s) failed." if failed else "."), ""]


def _where_time_went(r: Report) -> list[str]:
    """The recovery time from start to end along the chain that decided it, cause by cause."""
    if not r.critical_time:
        return []
    out = ["## Where the time went", "",
           f"The recovery time along the chain that decided it, earliest first: "
           f"{fmt.cause_totals(r.critical_time_by_cause)}.", ""]
    return out + _table(["Start", "Took", "What", "Spent on", "Reason", "Then"],
                        [[fmt.offset(s.start_s), fmt.duration(s.duration_s),
                          s.what if s.what.startswith(("phase ", "between ", "after ")) else code(s.what),
                          fmt.CAUSE_LABELS.get(s.cause, s.cause), cell(s.reason) if s.reason else fmt.DASH,
                          {"ready": "was waited on", "created": "created the next"}.get(s.via, fmt.DASH)]
                         for s in r.critical_time])


def _critical(r: Report) -> list[str]:
    if not r.critical_path:
        return []
    out = ["## Critical path", "", "The chain of waits that decided when the cluster was Ready, earliest first.", ""]
    return out + _table(["#", "Object", "Waits on", "Ready", "Added"],
                        [[str(i), code(s.id), code(s.waits_on) if s.waits_on else fmt.DASH, fmt.offset(s.ready_s),
                          fmt.signed_duration(s.added_s)] for i, s in enumerate(r.critical_path, 1)])


def _failures(r: Report) -> list[str]:
    out: list[str] = []
    if r.failures:
        out += ["## Failures", ""]
        for f in r.failures:
            out.append(f"### {cell(f.object)}: {cell(f.reason) or 'failed'}")
            out += ["", cell(f.message) or "(no message)", ""]
            if f.chain:
                out += [f"Blocks: {cell(f.chain)}", ""]
            elif f.blocks:
                out += ["Blocks: " + ", ".join(code(b) for b in f.blocks), ""]
            if f.events:
                out += ["Recent events:", ""] + [f"- {cell(e)}" for e in f.events] + [""]
    if r.pending:
        more = f" (+{len(r.pending) - 30} more)" if len(r.pending) > 30 else ""
        out += ["## Still pending", "", ", ".join(code(p) for p in r.pending[:30]) + more, ""]
    return out


def _checks(r: Report) -> list[str]:
    if not r.post_checks:
        return []
    return ["## Post-deploy checks", ""] + _table(
        ["Check", "Result", "Duration", "Message"],
        [[cell(c.name), "ok" if c.ok else "**FAILED**", fmt.duration(c.duration_s), cell(c.message)]
         for c in r.post_checks])


def _gitops(r: Report) -> list[str]:
    g = r.gitops_check
    if not g:
        return []
    if g.get("skipped"):
        return ["## GitOps check", "", f"Skipped: {cell(g['skipped'])}.", ""]
    findings = g.get("findings") or []
    out = ["## GitOps check", ""]
    if not findings:
        out += ["No findings: Git alone rebuilds what the check looked at.", ""]
    else:
        out += _table(["Severity", "Finding", "Kustomization", "File", "What", "Fix"],
                      [[("**blocker**" if f.get("severity") == "blocker" else "warning")
                        + (" (accepted)" if f.get("accepted") else ""), code(f.get("id")),
                        cell(f.get("kustomization")), cell(f.get("file")), cell(f.get("message")), cell(f.get("fix"))]
                       for f in findings])
    if g.get("accepted"):
        out += ["Accepted with `--accept`: " + ", ".join(code(a) for a in g["accepted"]), ""]
    for note in g.get("notes") or []:
        out += [f"- {cell(note)}"]
    return out + ([""] if g.get("notes") else [])


def render_markdown(report: Report) -> str:
    """The whole report.md text, redacted."""
    r = report
    verdict = fmt.VERDICT_TEXT.get(r.verdict, r.verdict)
    out = [f"# {cell(r.kind.capitalize())} report: {cell(r.cluster or r.run_id)}: {verdict}", "",
           f"**{cell(fmt.headline(r))}**", "", f"{cell(r.verdict_reason)}", ""]
    if r.partial:
        where = f"in {code(r.stopped_at)}" if r.stopped_at else "before any phase"
        out += [f"> **Partial report:** the run stopped {where} (status: {cell(r.status)}).", ""]
    if r.error:
        e = r.error
        out += [f"> **Error{' in ' + code(e.phase) if e.phase else ''}:** {cell(e.type)}: {cell(e.message)}"
                + (f" (exit code {e.exit_code})" if e.exit_code is not None else ""), ""]
    out += _facts(r)
    if r.phases:
        out += ["## Timeline", "", "```mermaid", gantt(r), "```", ""]
    out += _phases(r) + _gitops(r) + _failures(r) + _nudges(r) + _where_time_went(r) + _critical(r) + _objects(r) + _checks(r)
    out += [f"<sub>{cell(r.schema_)}, generated {fmt.clock(r.generated_at)}</sub>", ""]
    return redact("\n".join(out))
