"""`inv report*`: re-render a run's report, and compare two runs."""
from __future__ import annotations

import json

from invoke import task

from drtool.tasks._cli import bad_arg, default_runs_dir, guarded, load, read_only


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
            "inventory": "find runs/ through this inventory (default: $DRTOOL_INVENTORY)"})
@guarded
@read_only("output")
def compare(c, run_a, run_b, output=None, inventory=None):
    """Per-phase and per-object time deltas between two runs."""
    from drtool.report import build_report
    from drtool.report.compare import compare as cmp, render_compare_md

    _runs_of(c, inventory)

    reports = []
    for rid in (run_a, run_b):
        d = _run_dir(rid)
        rp = d / "report.json"
        reports.append(json.loads(rp.read_text()) if rp.exists() else build_report(json.loads((d / "journal.json").read_text())))
    text = render_compare_md(cmp(*reports))
    print(text)
    if output:
        from pathlib import Path

        Path(output).write_text(text)
