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
    "dry_run": "print what the drill would send, phase by phase, post-checks included; change nothing",
}, iterable=["accept"])
@guarded
def drill(c, inventory=None, trigger=None, junit=None, textfile_dir=None, history_html=None, yes=True, quiet=False,
          accept=None, dry_run=False):
    """Run a DR drill: the full rebuild unattended, post-checks, verdict against the objective, outputs."""
    from drtool.drills.drill import drill_phases, publish, require_enabled, webhooks
    from drtool.drills.unattended import load_credentials
    from drtool.errors import DrtoolError, ExitCode
    from drtool.phases.context import Options
    from drtool.pipeline import Pipeline

    load_credentials()  # under systemd LoadCredential=: the tokens become variables
    inv = load(inventory, c)
    require_enabled(inv)  # before anything touches a node
    hooks = webhooks(inv)  # a webhook URL missing from the environment stops the drill here, not after the wipe
    options = Options(yes=True, quiet=quiet, trigger=_trigger(trigger), accept=tuple(accept or ()))
    pipeline = Pipeline(inv, options, kind="drill", phases=drill_phases())
    if dry_run:
        from drtool.secret import redact
        from drtool.tasks.rebuild import print_plan

        print(f"Plan for a drill of cluster {inv.cluster.name} (dry run: nothing is changed)")
        print_plan([(p, t, redact(a)) for p, t, a in pipeline.plan()])
        return
    error: DrtoolError | None = None
    try:
        pipeline.run()
    except DrtoolError as exc:
        error = exc
    run = pipeline.run_obj
    if run is None or not (run.dir / "report.json").exists():
        raise error or Exit("error: the drill left no report", code=int(ExitCode.FAILED))
    report, outputs = publish(inv, run.dir, junit, textfile_dir, history_html, hooks)
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
                      "html": "also write the HTML trend page to this file", "json": "print the table as JSON"})
@guarded
@read_only("html")
def history(c, inventory=None, last=10, html=None, json=False):
    """Show the last drills (verdict, recovery, objective) and per-phase durations against their median."""
    import json as jsonlib

    from drtool.drills.history import history_table, load_history, render_history_table
    from drtool.drills.html_history import write_history_html
    from drtool.run import runs_dir

    inv = load(inventory, c)
    reports = load_history(runs_dir(), inv.cluster.name, kind="drill", last=int(last))
    table = history_table(reports, inv.cluster.name, margin=inv.drill.regression_margin)
    if json:
        print(jsonlib.dumps(table.to_dict(), indent=2))
    elif not reports:
        print(f"no drills of cluster {inv.cluster.name} under {runs_dir()}")
        return
    else:
        con = console()
        con.print(render_history_table(table, width=con.width))
    if html:
        write_history_html(html, reports, inv.cluster.name, margin=inv.drill.regression_margin)
        print(f"wrote {html}")


def _install_crontab(crontab_with, line: str, cluster: str) -> None:
    """Put ``line`` into the user's crontab once, however often this runs. A crontab that
    cannot be read is never overwritten (that would drop the operator's other jobs)."""
    import shutil
    import subprocess

    from drtool.errors import DrtoolError

    exe = shutil.which("crontab")
    if exe is None:
        raise DrtoolError("crontab(1) not found: install cron, or add the printed line by hand")
    listed = subprocess.run([exe, "-l"], capture_output=True, text=True, timeout=30)
    if listed.returncode != 0 and "no crontab" not in listed.stderr.lower():
        raise DrtoolError(f"crontab -l failed ({listed.stderr.strip() or listed.returncode}); nothing changed")
    current = listed.stdout if listed.returncode == 0 else ""
    new = crontab_with(current, line, cluster)
    if new != current:
        subprocess.run([exe, "-"], input=new, text=True, check=True, timeout=30)


@inventory_task(help={"inventory": "inventory file", "on_calendar": "systemd OnCalendar expression, e.g. 'Sun *-*-* 03:00'",
            "cron": "write a crontab line with this schedule instead, e.g. '0 3 * * 0'",
            "randomized_delay": "RandomizedDelaySec (default 15m)",
            "window": "allowed start window HH:MM-HH:MM (default: drill.window, else 02:00-06:00)",
            "output": "directory to write the units into (default: print them)",
            "install": "install into /etc/systemd/system and enable the timer (or the crontab)",
            "env_file": "0600 file of KEY=VALUE lines with the tokens (EnvironmentFile=, or read by the cron line)",
            "credential": "NAME=FILE: a systemd credential (LoadCredential=) the drill reads as variable NAME; repeatable",
            "check": "only check that the scheduled drill's environment has what preflight needs (exit 3 if not)"},
      iterable=["credential"])
@guarded
def schedule(c, inventory=None, on_calendar=None, cron=None, randomized_delay="15m", window=None, output=None,
             install=False, env_file=None, credential=None, check=False):
    """Write a systemd service+timer (or a crontab line) that runs `inv drill` on a schedule."""
    import subprocess
    import sys
    from pathlib import Path

    from drtool.drills import schedule as sched
    from drtool.drills import unattended
    from drtool.drills.drill import require_enabled
    from drtool.errors import PreflightFailed

    inv = load(inventory, c)
    require_enabled(inv)
    env_path = unattended.check_env_file(env_file) if env_file else None
    if env_path is not None:
        unattended.read_env_file(env_path)  # a line systemd and sh would read differently is refused now
    credentials = unattended.parse_credentials(credential)
    if credentials and cron:
        raise bad_arg("--credential", "systemd credentials need --on-calendar; with --cron use --env-file")
    if check or install:
        rows = unattended.check_unattended(inv, env_path, credentials)
        failed = [r for r in rows if r[1] == "fail"]
        if check:
            for name, state, detail in rows:
                print(f"{state:4}  {name:16} {detail}")
        if failed:
            raise PreflightFailed(f"the scheduled drill would fail preflight: {failed[0][0]}: {failed[0][2]}"
                                  + (f" (and {len(failed) - 1} more; see --check)" if len(failed) > 1 else ""))
        if check:
            print("the scheduled drill's environment has what preflight needs")
            return
    if bool(on_calendar) == bool(cron):
        raise bad_arg("--on-calendar", "give exactly one of --on-calendar or --cron")
    provided = set(credentials) | set(unattended.read_env_file(env_path) if env_path else {})
    missing = [v for v in unattended.required_variables(inv) if v not in provided]

    def warn_missing() -> None:  # after every check passed, so an error stays the only line
        if missing and not install:
            print(f"note: the scheduled drill reads {', '.join(missing)}, which nothing here provides: "
                  "give --env-file or --credential (and try --check)", file=sys.stderr)

    workdir = Path.cwd().resolve()
    inventory_path = Path(inv.path).resolve()
    invoke_cmd = [str(Path(sys.executable).with_name("inv"))]  # the unit builders append "drill -i ..."
    if window:
        win = sched.parse_window(window, "command line", "--window")
    else:
        win = sched.parse_window(inv.drill.window or "02:00-06:00", str(inv.path), "drill.window")
    if cron:
        line = sched.cron_line(inventory_path, inv.cluster.name, cron, workdir, invoke_cmd, window=win,
                               environment_file=env_path)
        if install:
            _install_crontab(sched.crontab_with, line, inv.cluster.name)
            print("installed crontab line")
        warn_missing()
        print(line)
        return
    units = sched.systemd_units(inventory_path, inv.cluster.name, on_calendar, randomized_delay,
                                win, workdir, invoke_cmd, environment_file=env_path, credentials=credentials)
    warn_missing()
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
