"""`inv drill*`: scheduled disaster-recovery drills with objectives, history and alerts."""
from __future__ import annotations

import os

from invoke import Exit

from drtool.tasks._cli import bad_arg, console, guarded, inventory_task, load, prune_runs, read_only


def _trigger(trigger: str | None) -> str:
    if trigger:
        if trigger not in ("manual", "timer", "cron", "ci"):
            raise bad_arg("--trigger", "expected manual, timer, cron or ci")
        return trigger
    return "ci" if os.environ.get("CI", "").lower() == "true" else "manual"


@inventory_task(default=True, help={
    "inventory": "inventory file (must have drill.enabled: true)",
    "trigger": "manual, timer, cron or ci (default: ci when CI=true, else manual)",
    "junit": "also write JUnit XML here (always written to runs/<id>/junit.xml)",
    "textfile_dir": "node_exporter textfile dir for drtool_drill.prom (default: drill.textfile_dir)",
    "history_html": "also write the HTML history page here",
    "yes": "accepted for symmetry with rebuild; a drill never asks",
    "quiet": "print only errors and the final line",
    "accept": "go on despite this GitOps-check blocker (finding id; repeatable); the report records it",
}, iterable=["accept"])
@guarded
def drill(c, inventory=None, trigger=None, junit=None, textfile_dir=None, history_html=None, yes=True, quiet=False,
          accept=None):
    """Run a DR drill: the full rebuild unattended, post-checks, verdict against the objective, outputs."""
    from drtool.drills.drill import drill_phases, publish, require_enabled
    from drtool.errors import DrtoolError, ExitCode
    from drtool.phases.context import Options
    from drtool.pipeline import Pipeline

    inv = load(inventory, c)
    require_enabled(inv)  # before anything touches a node
    options = Options(yes=True, quiet=quiet, trigger=_trigger(trigger), accept=tuple(accept or ()))
    pipeline = Pipeline(inv, options, kind="drill", phases=drill_phases())
    error: DrtoolError | None = None
    try:
        pipeline.run()
    except DrtoolError as exc:
        error = exc
    run = pipeline.run_obj
    if run is None or not (run.dir / "report.json").exists():
        raise error or Exit("error: the drill left no report", code=int(ExitCode.FAILED))
    report, outputs = publish(inv, run.dir, junit, textfile_dir, history_html)
    prune_runs(inv, run.record["run_id"], quiet)  # after the history and trends have used the old runs
    con = console(quiet)
    for r in outputs.regressions:
        con.print(f"[yellow]regression[/]: {r.describe()}")
    for n in outputs.notifications:
        con.print(f"notification {n.name} ({n.type}): {'sent' if n.ok else 'FAILED: ' + str(n.error)}")
    for e in outputs.errors:
        con.print(f"[yellow]output not written[/]: {e}")
    rec = report.get("recovery_s")
    con.print(f"drill verdict: [bold]{report.get('verdict')}[/] recovery {rec if rec is None else f'{rec:.1f}s'} objective {report.get('objective_s')}")
    if error is not None:
        raise error


@inventory_task(help={"inventory": "inventory file", "last": "how many drills to show (default 10)",
            "html": "also write the HTML trend page to this file"})
@guarded
@read_only("html")
def history(c, inventory=None, last=10, html=None):
    """Show the last drills (verdict, recovery, objective) and per-phase durations against their median."""
    from drtool.drills.history import history_table, load_history, render_history_table
    from drtool.drills.html_history import write_history_html
    from drtool.run import runs_dir

    inv = load(inventory, c)
    reports = load_history(runs_dir(), inv.cluster.name, kind="drill", last=int(last))
    if not reports:
        print(f"no drills of cluster {inv.cluster.name} under {runs_dir()}")
        return
    table = history_table(reports, inv.cluster.name, margin=inv.drill.regression_margin)
    console().print(render_history_table(table))
    if html:
        write_history_html(html, reports, inv.cluster.name, margin=inv.drill.regression_margin)
        print(f"wrote {html}")


@inventory_task(help={"inventory": "inventory file", "on_calendar": "systemd OnCalendar expression, e.g. 'Sun *-*-* 03:00'",
            "cron": "write a crontab line with this schedule instead, e.g. '0 3 * * 0'",
            "randomized_delay": "RandomizedDelaySec (default 15m)",
            "window": "allowed start window HH:MM-HH:MM (default: drill.window, else 02:00-06:00)",
            "output": "directory to write the units into (default: print them)",
            "install": "install into /etc/systemd/system and enable the timer (or the crontab)"})
@guarded
def schedule(c, inventory=None, on_calendar=None, cron=None, randomized_delay="15m", window=None, output=None, install=False):
    """Write a systemd service+timer (or a crontab line) that runs `inv drill` on a schedule."""
    import subprocess
    import sys
    from pathlib import Path

    from drtool.drills import schedule as sched
    from drtool.drills.drill import require_enabled

    inv = load(inventory, c)
    require_enabled(inv)
    if bool(on_calendar) == bool(cron):
        raise bad_arg("--on-calendar", "give exactly one of --on-calendar or --cron")
    workdir = Path.cwd().resolve()
    inventory_path = Path(inv.path).resolve()
    invoke_cmd = [str(Path(sys.executable).with_name("inv"))]  # the unit builders append "drill -i ..."
    win = window or inv.drill.window or "02:00-06:00"
    start, _, end = win.partition("-")
    sh, sm = map(int, start.split(":"))
    eh, em = map(int, end.split(":"))
    duration_min = ((eh * 60 + em) - (sh * 60 + sm)) % (24 * 60) or 24 * 60
    if cron:
        line = sched.cron_line(inventory_path, inv.cluster.name, cron, workdir, invoke_cmd)
        if install:
            current = subprocess.run(["crontab", "-l"], capture_output=True, text=True).stdout
            subprocess.run(["crontab", "-"], input=current + line + "\n", text=True, check=True)
            print("installed crontab line")
        print(line)
        return
    units = sched.systemd_units(inventory_path, inv.cluster.name, on_calendar, randomized_delay,
                                (start, duration_min * 60), workdir, invoke_cmd)
    if install:
        sched.install_units(units)
        timer = next(n for n in units if n.endswith(".timer"))
        subprocess.run(["systemctl", "daemon-reload"], check=True)
        subprocess.run(["systemctl", "enable", "--now", timer], check=True)
        print(f"installed and enabled {timer}")
    elif output:
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        for name, text in units.items():
            (out / name).write_text(text)
            print(f"wrote {out / name}")
    else:
        for name, text in units.items():
            print(f"# {name}\n{text}")
