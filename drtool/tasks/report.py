"""`inv report*`: re-render a run's report, and compare two runs."""
from __future__ import annotations

import json
import json as jsonlib  # the --json flag shadows the module name inside compare


from drtool.tasks._cli import bad_arg, guarded, task


def _run_dir(run_id: str):
    from drtool.run import runs_dir

    d = runs_dir() / run_id
    if not (d / "journal.json").is_file():
        raise bad_arg("RUN_ID", f"no run {run_id!r} under {runs_dir()}")
    return d


@task(default=True, help={"run_id": "a run directory name under runs/"})
@guarded
def render(c, run_id):
    """Re-render report.json, report.md and report.html of a run from its journal."""
    from drtool.report import write_reports

    d = _run_dir(run_id)
    paths = write_reports(d, json.loads((d / "journal.json").read_text()))
    for p in paths.values():
        print(p)


@task(help={"run_a": "older run id", "run_b": "newer run id", "output": "write the Markdown here too",
            "json": "print the comparison as JSON (schema drtool.report-compare/v1)"})
@guarded
def compare(c, run_a, run_b, output=None, json=False):
    """Per-phase and per-object time deltas between two runs."""
    from drtool.report import build_report
    from drtool.report.compare import compare as cmp, render_compare_md

    reports = []
    for rid in (run_a, run_b):
        d = _run_dir(rid)
        rp = d / "report.json"
        reports.append(jsonlib.loads(rp.read_text()) if rp.exists() else build_report(jsonlib.loads((d / "journal.json").read_text())))
    comparison = cmp(*reports)
    text = render_compare_md(comparison)
    print(jsonlib.dumps(comparison, indent=2) if json else text)
    if output:
        from pathlib import Path

        Path(output).write_text(text)
