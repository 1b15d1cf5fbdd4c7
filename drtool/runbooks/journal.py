"""A runbook run's journal section and its report.

The run record (``drtool.run.Run``, ``runs/<run-id>/journal.json``) gets a
``runbook`` section: the runbook's name and file, the parameters, and per step
its status (pending, running, ok, failed, skipped), times, attempts, a redacted
output tail and the SHA-256 of its definition. ``--resume`` continues at the
first unfinished step, and refuses when a step's definition changed since: the
journal would otherwise claim work was done by a step that no longer exists.
"""
from __future__ import annotations

import json
import time
from typing import Any

from drtool.errors import BadInput
from drtool.run import Run, atomic_write
from drtool.runbooks.model import Runbook, Step
from drtool.secret import redact

FINISHED = ("ok", "skipped")
OUTPUT_LINES = 20


def start(run: Run, book: Runbook, params: dict[str, str], selected: set[str]) -> None:
    """Write the runbook section: every step pending, or skipped when not selected."""
    from drtool.report.record import RunbookSection, StepRecord

    section = RunbookSection(
        name=book.name, file=str(book.path), description=book.description, params=dict(params),
        steps=[StepRecord(id=s.id, title=s.title, kind=s.kind, sha256=s.digest(),
                          status="pending" if s.id in selected else "skipped",
                          message="" if s.id in selected else "not selected (--from/--only)")
               for s in book.steps])
    run.record["runbook"] = section.model_dump(mode="json")
    run.save()


def entry(run: Run, step_id: str) -> dict[str, Any]:
    for e in run.record["runbook"]["steps"]:
        if e["id"] == step_id:
            return e
    raise KeyError(step_id)


def update(run: Run, step_id: str, **fields: Any) -> None:
    """Change a step's entry and rewrite the journal (atomically) at once."""
    e = entry(run, step_id)
    if "output" in fields:
        fields["output"] = tail(fields["output"])
    if "message" in fields:
        fields["message"] = redact(str(fields["message"]))
    e.update(fields)
    run.save()


def tail(text: str, lines: int = OUTPUT_LINES) -> str:
    return redact("\n".join((text or "").rstrip().splitlines()[-lines:]))


def check_resume(run: Run, book: Runbook) -> list[Step]:
    """The steps still to do in a journaled run; BadInput when the runbook changed since."""
    section = run.record.get("runbook")
    rid = run.record.get("run_id")
    if run.record.get("kind") != "runbook" or not section:
        raise BadInput("command line", "--resume", f"run {rid} is not a runbook run")
    if section["name"] != book.name:
        raise BadInput("command line", "--resume", f"run {rid} ran runbook {section['name']}, not {book.name}")
    journaled = {e["id"]: e for e in section["steps"]}
    for i, step in enumerate(book.steps):
        old = journaled.get(step.id)
        if old is None:
            raise BadInput(str(book.path), book.where(i), f"step added since run {rid}; start a new run instead of resuming")
        if old["sha256"] != step.digest():
            raise BadInput(str(book.path), book.where(i),
                           f"step changed since run {rid} (definition hash differs); start a new run instead of resuming")
    removed = [sid for sid in journaled if sid not in {s.id for s in book.steps}]
    if removed:
        raise BadInput(str(book.path), "steps", f"step {removed[0]} was removed since run {rid}; start a new run instead of resuming")
    if [e["id"] for e in section["steps"]] != [s.id for s in book.steps]:
        raise BadInput(str(book.path), "steps", f"steps were reordered since run {rid}; start a new run instead of resuming")
    return [s for s in book.steps if journaled[s.id]["status"] not in FINISHED]


def report_data(run: Run) -> dict[str, Any]:
    """The runbook report: the run's identity and each step's status and timing."""
    rec, section = run.record, run.record["runbook"]
    steps = []
    for e in section["steps"]:
        duration = (e["ended_at"] - e["started_at"]) if e.get("started_at") and e.get("ended_at") else None
        steps.append({**e, "duration_s": round(duration, 3) if duration is not None else None})
    ended = rec.get("ended_at") or time.time()
    return {
        "schema": "drtool.runbook-report/v1", "run_id": rec["run_id"], "runbook": section["name"],
        "description": section["description"], "file": section["file"], "cluster": rec["cluster"],
        "inventory": rec["inventory"], "params": section["params"], "status": rec["status"],
        "started_at": rec["started_at"], "ended_at": rec.get("ended_at"),
        "duration_s": round(ended - rec["started_at"], 3), "error": rec.get("error"), "steps": steps,
    }


def _when(t: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t)) if t else "-"


def report_markdown(data: dict[str, Any]) -> str:
    lines = [f"# Runbook {data['runbook']}: {data['status']}", "", data["description"].strip(), "",
             f"- Run: `{data['run_id']}` on cluster `{data['cluster']}` (inventory `{data['inventory']}`)",
             f"- Started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(data['started_at']))}, "
             f"took {data['duration_s']:.1f}s"]
    if data["params"]:
        lines.append("- Parameters: " + ", ".join(f"`{k}={v}`" for k, v in data["params"].items()))
    if data.get("error"):
        lines.append(f"- Stopped at `{data['error'].get('phase')}`: {data['error'].get('message', '').splitlines()[0]}")
    lines += ["", "| # | step | kind | status | started | took | attempts | message |", "|---|---|---|---|---|---|---|---|"]
    for i, s in enumerate(data["steps"], 1):
        took = f"{s['duration_s']:.1f}s" if s["duration_s"] is not None else "-"
        msg = (s.get("message") or "").splitlines()[0].replace("|", "\\|") if s.get("message") else ""
        lines.append(f"| {i} | `{s['id']}` {s['title']} | {s['kind']} | {s['status']} | {_when(s['started_at'])} | "
                     f"{took} | {s['attempts']} | {msg} |")
    failed = [s for s in data["steps"] if s["status"] == "failed" and s.get("output")]
    for s in failed:
        lines += ["", f"## Output of failed step `{s['id']}`", "", "```", s["output"], "```"]
    return redact("\n".join(lines) + "\n")


def write_report(run: Run) -> None:
    """runbook-report.json and runbook-report.md, plus the usual report from the run record."""
    from drtool.session import write_report as write_run_report

    data = report_data(run)
    atomic_write(run.dir / "runbook-report.json", redact(json.dumps(data, indent=2, default=str)))
    atomic_write(run.dir / "runbook-report.md", report_markdown(data))
    write_run_report(run)
