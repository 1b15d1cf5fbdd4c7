"""One run session: what a rebuild, a drill and a runbook run share around their loop.

``run_session`` opens (or resumes) the run, takes the cluster lock, starts one Runner and
the phases' Context, turns SIGINT/SIGTERM into a stop request, and when the loop inside
stops on an error it finishes the run with that status, writes the partial report and
raises an error that tells the operator how to resume. The pipeline and the runbook
executor only iterate over their phases or steps, telling the session where they are
(``session.at(name)``); they finish a run that got to its end themselves, because only
they know its verdict.
"""
from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

from drtool.errors import DrtoolError, Interrupted
from drtool.inventory import Inventory
from drtool.lock import ClusterLock
from drtool.phases.context import Context, Options, RunProgress
from drtool.remote.runner import CommandLog, Runner
from drtool.run import Run, runs_dir
from drtool.secret import redact

#: Builds the session's runner for a run (a recording runner in tests and dry runs).
RunnerFactory = Callable[[Inventory, Run, Options], Runner]


def ssh_runner(inv: Inventory, run: Run, options: Options) -> Runner:
    """The real runner: SSH, every command in ``runs/<id>/commands.log``."""
    return Runner(inv, CommandLog(run.dir / "commands.log"), accept_new_host_keys=options.accept_new_host_keys)


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


def error_record(where: str | None, exc: BaseException) -> dict:
    """The journal's ``error`` entry for an error that stopped a run."""
    return {"phase": where, "type": type(exc).__name__, "message": redact(str(exc)),
            "exit_code": int(getattr(exc, "exit_code", 1))}


@dataclass
class SessionStyle:
    """How a kind of run names itself in progress lines and errors."""

    title: str
    """The header, e.g. ``rebuild of cluster lab``."""
    label: str
    """Who stopped, e.g. ``rebuild`` or ``runbook agent-replace``."""
    unit: str = ""
    """What ``at()`` names: "" for phases, "step " for runbook steps."""
    report: Callable[[Run], None] = write_report
    report_name: str = "report.md"
    wrap_error: Callable[[str | None, DrtoolError, "Session"], DrtoolError] | None = None
    """Turns the error that stopped the loop into the one raised (default: resume hint on interrupts)."""


@dataclass
class Session:
    run: Run
    ctx: Context
    style: SessionStyle
    current: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.run.record["run_id"]

    @property
    def report_path(self):
        return self.run.dir / self.style.report_name

    def at(self, name: str | None) -> None:
        """Where the loop is now (a phase or step name), or None after the last one."""
        self.current = name

    def resume_hint(self) -> str:
        return f"resume with --resume {self.run_id}"


def _stop(session: Session, exc: DrtoolError, status: str) -> None:
    run, style = session.run, session.style
    run.finish(status, stopped_at=session.current, error=error_record(session.current, exc))
    style.report(run)
    where = "in" if not style.unit else "at " + style.unit.strip()
    session.ctx.progress.print(f"[bold red]✘ {style.label} {status} {where} {session.current}[/]; "
                               f"partial report {session.report_path}")


@contextmanager
def run_session(inv: Inventory, options: Options, open_run: Callable[[], Run], style: SessionStyle, *,
                progress: RunProgress | None = None, runner: RunnerFactory = ssh_runner) -> Iterator[Session]:
    """The run opened by ``open_run``, locked, with a runner and a Context, until the loop inside ends.

    On ``KeyboardInterrupt`` or a ``DrtoolError`` escaping the loop: the run is finished as
    ``interrupted`` (or the error's ``run_status``) or ``failed``, its partial report written,
    and an error carrying the resume hint is raised. The runner is closed and the lock released
    in every case.
    """
    run = open_run()
    progress = progress or RunProgress(options.quiet)
    lock = ClusterLock(runs_dir(), inv.cluster.name)
    try:
        lock.acquire(run.record["run_id"])
    except DrtoolError as exc:
        run.finish("failed", stopped_at="lock", error=error_record("lock", exc))
        style.report(run)
        raise
    try:
        if lock.stale:
            progress.print(f"[yellow]stale lock from run {lock.stale.get('run_id')} "
                           f"(pid {lock.stale.get('pid')}, no longer running) taken over[/]")
        ctx = Context(inv, runner(inv, run, options), run, options, progress)
        session = Session(run, ctx, style)
        progress.print(f"[bold]{style.title}[/] — run {session.run_id} ({run.dir})")
        try:
            with signals(ctx.stop):
                yield session
        except KeyboardInterrupt:
            aborted = Interrupted(f"aborted during {style.unit}{session.current}")
            _stop(session, aborted, "interrupted")
            raise Interrupted(f"{aborted}; {session.resume_hint()}") from None
        except DrtoolError as exc:
            status = getattr(exc, "run_status", None) or ("interrupted" if isinstance(exc, Interrupted) else "failed")
            _stop(session, exc, status)
            if style.wrap_error is not None:
                raise style.wrap_error(session.current, exc, session) from None
            if isinstance(exc, Interrupted):
                raise Interrupted(f"{exc}; {session.resume_hint()}") from None
            raise
        finally:
            ctx.runner.close()
    finally:
        lock.release()
