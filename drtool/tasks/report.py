"""`inv report*`: re-render a run's report, and compare two runs."""
from __future__ import annotations

import json
import json as jsonlib  # the --json flag shadows the module name inside compare


from drtool.tasks._cli import bad_arg, default_runs_dir, guarded, load, read_only, task


def _run_dir(run_id: str):
    from drtool.run import runs_dir

    d = runs_dir() / run_id
    if not (d / "journal.json").is_file():
        raise bad_arg("RUN_ID", f"no run {run_id!r} under {runs_dir()}")
    return d


def _runs_of(c, inventory: str | None) -> None:
    """Find runs through the inventory (given, or the default one), else $DRTOOL_RUNS_DIR or ./runs."""
    if inventory:
        load(inventory, c)
    else:
        default_runs_dir(c)


@task(default=True, help={"run_id": "a run directory name under runs/",
                          "inventory": "find runs/ through this inventory (default: $DRTOOL_INVENTORY)"})
@guarded
def render(c, run_id, inventory=None):
    """Re-render report.json, report.md and report.html of a run from its journal."""
    from drtool.report import write_reports

    _runs_of(c, inventory)
    d = _run_dir(run_id)
    paths = write_reports(d, json.loads((d / "journal.json").read_text()))
    for p in paths.values():
        print(p)


@task(help={"run_a": "older run id", "run_b": "newer run id", "output": "write the Markdown here too",
            "inventory": "find runs/ through this inventory (default: $DRTOOL_INVENTORY)",
            "json": "print the comparison as JSON (schema drtool.report-compare/v1)"})
@guarded
@read_only("output")
def compare(c, run_a, run_b, output=None, inventory=None, json=False):
    """Per-phase and per-object time deltas between two runs."""
    from drtool.report import build_report
    from drtool.report.compare import compare as cmp, render_compare_md

    _runs_of(c, inventory)

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
