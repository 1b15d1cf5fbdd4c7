"""The rebuild pipeline: an ordered list of phases, each timed and journaled.

Before and after every phase the journal is rewritten, so a run that stops
anywhere (failure, SIGINT/SIGTERM, a killed process) can be resumed from the
first unfinished phase with ``--resume RUN_ID``, and always leaves a report
saying where it stopped. Nothing destructive starts unless preflight passed
and the backup was written and verified (or ``--skip-backup`` was given).
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from contextlib import contextmanager
from types import ModuleType
from typing import Iterator

from drtool.errors import BadInput, DrtoolError, ExitCode, Interrupted, OverObjective, PreflightFailed
from drtool.inventory import Inventory
from drtool.lock import ClusterLock
from drtool.phases import (backup, bootstrap, converge, install, join, kubeconfig, nodes_ready, preflight,
                           restore_secrets, teardown)
from drtool.phases.context import Context, Options, Progress
from drtool.remote.runner import CommandLog, Runner
from drtool.run import Run, runs_dir


class _PreflightPhase:
    """Adapter: the preflight checks as a pipeline phase (a failing check stops the run)."""

    NAME = "preflight"

    @staticmethod
    def run(ctx: Context) -> str:
        result = preflight.run_preflight(ctx.inv, ctx.runner)
        (ctx.run.dir / "preflight.json").write_text(__import__("json").dumps(result.to_dict(), indent=2))
        if not result.ok:
            raise PreflightFailed("preflight failed: " + "; ".join(f"{c.target}: {c.name}: {c.detail}" for c in result.failed()))
        warns = sum(1 for c in result.checks if c.state == "warn")
        return f"{len(result.checks)} checks passed" + (f", {warns} warning(s)" if warns else "")

    @staticmethod
    def plan(ctx: Context) -> list[tuple[str, str]]:
        return [(n.name, "ssh connect (strict host key), sudo -n true, OS/arch/disk/clock/protected-path facts") for n in ctx.inv.nodes] + \
               [("local", "flux CLI version, token variables set, secret files readable, airgap artifacts present, "
                            "git: repository, branch and path exist and flux-system matches the inventory's bootstrap options")]


PHASES: tuple[ModuleType | type, ...] = (
    _PreflightPhase, backup, teardown, install, join, kubeconfig, nodes_ready, restore_secrets, bootstrap, converge,
)
PHASE_NAMES: tuple[str, ...] = tuple(p.NAME for p in PHASES)
DESTRUCTIVE_FROM = "teardown"


def select_phases(start: str | None, stop: str | None) -> list:
    """The phases from ``start`` to ``stop`` inclusive; unknown names are bad input."""
    for flag, name in (("--from", start), ("--to", stop)):
        if name is not None and name not in PHASE_NAMES:
            raise BadInput("command line", flag, f"unknown phase {name!r}; phases: {', '.join(PHASE_NAMES)}")
    i = PHASE_NAMES.index(start) if start else 0
    j = PHASE_NAMES.index(stop) if stop else len(PHASE_NAMES) - 1
    if i > j:
        raise BadInput("command line", "--from", f"{start} comes after {stop}")
    return list(PHASES[i : j + 1])


@contextmanager
def signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop``; phases stop at the next safe point. A second SIGINT raises at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        print(f"\n{signal.Signals(signum).name}: stopping at the next safe point (again to abort now)", file=sys.stderr)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def write_report(run: Run) -> None:
    """Render report.json/md/html from the journal; never raises (a report must not mask the run's error)."""
    try:
        from drtool.report import write_reports

        write_reports(run.dir, run.record)
    except Exception as exc:  # the journal is still there and the report can be re-rendered
        (run.dir / "report-error.txt").write_text(f"report rendering failed: {type(exc).__name__}: {exc}\n")


class Pipeline:
    """Runs phases for one inventory; ``run()`` returns the exit code and always writes a report."""

    def __init__(self, inv: Inventory, options: Options, *, kind: str = "rebuild", start: str | None = None,
                 stop: str | None = None, resume: str | None = None, phases: list | None = None):
        self.inv = inv
        self.options = options
        self.kind = kind
        self.resume = resume
        # A resumed run continues the whole pipeline; --from/--to slice a new one.
        self.phases = phases if phases is not None else select_phases(None if resume else start, None if resume else stop)
        self.start, self.stop_at = start, stop
        self.progress = Progress(options.quiet)
        self.stop_event = threading.Event()
        self.run_obj: Run | None = None

    # -- dry run ------------------------------------------------------------
    def plan(self) -> list[tuple[str, str, str]]:
        """(phase, target, action) for every step, secrets masked; touches nothing."""
        runner = Runner(self.inv, dry_run=True)
        fake_run = Run(runs_dir() / "<run-id>", {"run_id": "<run-id>", "state": {}, "phases": [], "flags": {}, "versions": {}})
        ctx = Context(self.inv, runner, fake_run, self.options, self.progress)
        steps = []
        for phase in self.phases:
            for target, action in phase.plan(ctx):
                steps.append((phase.NAME, target, action))
        return steps

    # -- real run -----------------------------------------------------------
    def _open_run(self) -> Run:
        if self.resume:
            run = Run.load(self.resume)
            if run.record.get("cluster") != self.inv.cluster.name:
                raise BadInput("command line", "--resume", f"run {self.resume} is for cluster {run.record.get('cluster')}, not {self.inv.cluster.name}")
            run.record["flags"]["resumed"] = True
            run.record.update(status="running", ended_at=None, stopped_at=None, error=None)
            return run
        flags = {"skip_backup": self.options.skip_backup, "dry_run": False, "from": self.start, "to": self.stop_at,
                 "keep_waiting": self.options.keep_waiting, "merge_kubeconfig": self.options.merge_kubeconfig}
        return Run.create(self.kind, str(self.inv.path), self.inv.cluster.name, trigger=self.options.trigger,
                          objective_s=self.inv.objective, flags=flags)

    def _todo(self, run: Run) -> list:
        if not self.resume:
            return self.phases
        done = {p["name"] for p in run.record["phases"] if p["outcome"] in ("ok", "noop", "skipped")}
        return [p for p in self.phases if p.NAME not in done]

    def run(self) -> int:
        run = self._open_run()
        self.run_obj = run
        lock = ClusterLock(runs_dir(), self.inv.cluster.name)
        try:
            lock.acquire(run.record["run_id"])
        except DrtoolError as exc:
            run.finish("failed", stopped_at="lock", error={"phase": "lock", "type": type(exc).__name__, "message": str(exc), "exit_code": int(exc.exit_code)})
            write_report(run)
            raise
        if lock.stale:
            self.progress.print(f"[yellow]stale lock from run {lock.stale.get('run_id')} (pid {lock.stale.get('pid')}, no longer running) taken over[/]")
        runner = Runner(self.inv, CommandLog(run.dir / "commands.log"), accept_new_host_keys=self.options.accept_new_host_keys)
        ctx = Context(self.inv, runner, run, self.options, self.progress, stop=self.stop_event)
        self.progress.print(f"[bold]{self.kind} of cluster {self.inv.cluster.name}[/] — run {run.record['run_id']} ({run.dir})")
        current = None
        try:
            with signals(self.stop_event):
                for phase in self._todo(run):
                    current = phase.NAME
                    ctx.check_stop()
                    self._run_phase(ctx, phase)
                current = None
        except KeyboardInterrupt:
            self._finish_error(run, current, Interrupted(f"aborted during {current}"), status="interrupted")
            raise Interrupted(f"aborted during {current}; resume with --resume {run.record['run_id']}") from None
        except DrtoolError as exc:
            status = "interrupted" if isinstance(exc, Interrupted) else "failed"
            self._finish_error(run, current, exc, status=status)
            if isinstance(exc, Interrupted):
                raise Interrupted(f"{exc}; resume with --resume {run.record['run_id']}") from None
            raise
        finally:
            runner.close()
            lock.release()
        return self._finish_ok(run)

    def _run_phase(self, ctx: Context, phase) -> None:
        entry = ctx.run.phase(phase.NAME)
        entry.update(started_at=time.time(), ended_at=None, outcome="running", message="")
        entry["nodes"] = {}
        ctx.phase_name = phase.NAME
        ctx.run.save()
        self.progress.phase_start(phase.NAME)
        t0 = time.monotonic()
        try:
            message = phase.run(ctx) or ""
        except BaseException as exc:
            interrupted = isinstance(exc, (Interrupted, KeyboardInterrupt))
            entry.update(ended_at=time.time(), outcome="interrupted" if interrupted else "failed",
                         message=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            ctx.run.save()
            self.progress.phase_end(phase.NAME, entry["outcome"], time.monotonic() - t0, entry["message"])
            raise
        outcome = "skipped" if message.startswith("skipped") else "noop" if message.startswith("nothing") else "ok"
        entry.update(ended_at=time.time(), outcome=outcome, message=message)
        ctx.run.save()
        self.progress.phase_end(phase.NAME, outcome, time.monotonic() - t0, message)

    def _finish_ok(self, run: Run) -> int:
        recovery = recovery_seconds(run.record)
        objective = run.record.get("objective_s")
        over = objective is not None and recovery is not None and recovery > objective and self.kind != "runbook"
        run.finish("over-objective" if over else "succeeded")
        write_report(run)
        verdict = f"recovery {recovery:.1f}s" if recovery is not None else "done"
        if objective:
            verdict += f" (objective {objective:g}s{': MISSED' if over else ''})"
        self.progress.print(f"[bold green]✔ {self.kind} finished[/]: {verdict}; report {run.dir / 'report.md'}")
        if over:
            raise OverObjective(f"rebuilt, but recovery took {recovery:.1f}s, over the objective of {objective:g}s; report {run.dir / 'report.md'}")
        return int(ExitCode.OK)

    def _finish_error(self, run: Run, phase: str | None, exc: DrtoolError, *, status: str) -> None:
        run.finish(status, stopped_at=phase, error={"phase": phase, "type": type(exc).__name__,
                                                     "message": str(exc), "exit_code": int(exc.exit_code)})
        write_report(run)
        self.progress.print(f"[bold red]✘ {self.kind} {status} in {phase}[/]; partial report {run.dir / 'report.md'}")


def recovery_seconds(record: dict) -> float | None:
    """From the start of the wipe (or of the run when there was none) to the end of the last phase."""
    phases = [p for p in record.get("phases", []) if p.get("started_at")]
    if not phases:
        return None
    start = next((p["started_at"] for p in phases if p["name"] == DESTRUCTIVE_FROM), phases[0]["started_at"])
    end = max((p.get("ended_at") or 0) for p in phases)
    return max(0.0, end - start) if end else None
