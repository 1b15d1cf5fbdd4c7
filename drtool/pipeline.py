"""The rebuild pipeline: an ordered list of phases, each timed and journaled.

The run session (``drtool.session``) opens the run, holds the cluster lock and the
runner, and writes the partial report when the loop stops; the pipeline only runs
its phases in order. Before and after every phase the journal is rewritten, so a run that stops
anywhere (failure, SIGINT/SIGTERM, a killed process) can be resumed from the
first unfinished phase with ``--resume RUN_ID``, and always leaves a report
saying where it stopped. Nothing destructive starts unless preflight passed
and the backup was written and verified (or ``--skip-backup`` was given).
"""
from __future__ import annotations

import time

from drtool.errors import BadInput, Blocked, ExitCode, Interrupted, OverObjective, PreflightFailed
from drtool.inventory import Inventory
from drtool.phases import (backup, bootstrap, converge, gitops_check, install, join, kubeconfig, nodes_ready,
                           overlap, preflight, restore_secrets, teardown)
from drtool.phases.context import Context, Options, RunProgress
from drtool.phases.dry_run import dry_context, plan_phase
from drtool.phases.result import Phase, PhaseResult, ok
from drtool.run import Run
from drtool.session import RunnerFactory, SessionStyle, run_session, ssh_runner, write_report


class _PreflightPhase:
    """Adapter: the preflight checks as a pipeline phase (a failing check stops the run)."""

    NAME = "preflight"

    @staticmethod
    def run(ctx: Context) -> PhaseResult:
        result = preflight.run_preflight(ctx.inv, ctx.runner, ctx.environ)
        (ctx.run.dir / "preflight.json").write_text(__import__("json").dumps(result.to_dict(), indent=2))
        if not result.ok:
            raise PreflightFailed("preflight failed: " + "; ".join(f"{c.target}: {c.name}: {c.detail}" for c in result.failed()))
        warns = sum(1 for c in result.checks if c.state == "warn")
        # What Git alone cannot rebuild, found while nothing has been touched yet.
        gitops = gitops_check.run_in_preflight(ctx)
        return ok(f"{len(result.checks)} checks passed" + (f", {warns} warning(s)" if warns else "") + f"; {gitops}",
                  checks=len(result.checks), warnings=warns)


PHASES: tuple[Phase, ...] = (
    _PreflightPhase, backup, teardown, install, join, kubeconfig, nodes_ready, restore_secrets, bootstrap, converge,
)
PHASE_NAMES: tuple[str, ...] = tuple(p.NAME for p in PHASES)


def select_phases(start: str | None, stop: str | None) -> list:
    """The phases from ``start`` to ``stop`` inclusive; unknown names are bad input."""
    for flag, name in (("--from", start), ("--to", stop)):
        if name is not None and name not in PHASE_NAMES:
            from drtool.suggest import did_you_mean

            raise BadInput("command line", flag, f"unknown phase {name!r}{did_you_mean(name, PHASE_NAMES)}; "
                                                 f"phases: {', '.join(PHASE_NAMES)}")
    i = PHASE_NAMES.index(start) if start else 0
    j = PHASE_NAMES.index(stop) if stop else len(PHASE_NAMES) - 1
    if i > j:
        raise BadInput("command line", "--from", f"{start} comes after {stop}")
    return list(PHASES[i : j + 1])


class Pipeline:
    """Runs phases for one inventory; ``run()`` returns the exit code and always writes a report."""

    def __init__(self, inv: Inventory, options: Options, *, kind: str = "rebuild", start: str | None = None,
                 stop: str | None = None, resume: str | None = None, phases: list | None = None,
                 runner: RunnerFactory = ssh_runner):
        self.inv = inv
        self.options = options
        self.kind = kind
        self.resume = resume
        # A resumed run continues the whole pipeline; --from/--to slice a new one.
        self.phases = phases if phases is not None else select_phases(None if resume else start, None if resume else stop)
        self.start, self.stop_at = start, stop
        self.progress = RunProgress(options.quiet)
        self.runner = runner
        self.run_obj: Run | None = None

    # -- dry run ------------------------------------------------------------
    def plan(self) -> list[tuple[str, str, str]]:
        """(phase, target, action) for every step, secrets masked; touches nothing."""
        ctx = dry_context(self.inv, self.options)
        steps = []
        names = [p.NAME for p in self.phases]
        for phase in self.phases:
            # How the phase overlaps the others (drtool.phases.overlap), before what it sends.
            note = overlap.schedule_note(phase.NAME, names)
            if note:
                steps.append((phase.NAME, "schedule", note))
            for target, action in plan_phase(phase, ctx):
                steps.append((phase.NAME, target, action))
        return steps

    # -- real run -----------------------------------------------------------
    def _open_run(self) -> Run:
        if self.resume:
            run = Run.load(self.resume, self.inv.cluster.name)
            run.resumed()
            return run
        flags = {"skip_backup": self.options.skip_backup, "dry_run": False, "from": self.start, "to": self.stop_at,
                 "keep_waiting": self.options.keep_waiting, "merge_kubeconfig": self.options.merge_kubeconfig,
                 "discard_volume_data": self.options.discard_volume_data}
        # The recovery-time objective judges rebuilds, not a backup on its own.
        objective = self.inv.objective if self.kind in ("rebuild", "drill") else None
        return Run.create(self.kind, str(self.inv.path), self.inv.cluster.name, trigger=self.options.trigger,
                          objective_s=objective, flags=flags)

    def _todo(self, run: Run) -> list:
        if not self.resume:
            return self.phases
        done = {p["name"] for p in run.record["phases"] if p["outcome"] in ("ok", "noop", "skipped")}
        return [p for p in self.phases if p.NAME not in done]

    def run(self) -> int:
        def open_run() -> Run:
            self.run_obj = self._open_run()
            return self.run_obj

        style = SessionStyle(title=f"{self.kind} of cluster {self.inv.cluster.name}", label=self.kind)
        with run_session(self.inv, self.options, open_run, style, progress=self.progress, runner=self.runner) as session:
            self._run_overlapped(session, self._todo(session.run))
            session.at(None)
        return self._finish_ok(session.run)

    def _run_overlapped(self, session, todo: list) -> None:
        """Run ``todo``, each phase in its own thread as soon as what it needs (``overlap.AFTER``)
        ended well. After a failure nothing new starts, the phases still running end (each is
        bounded), and the first failure is raised (the session journals it and names the phase);
        SIGINT/SIGTERM stops every running phase at its next safe point."""
        import queue
        import threading

        names = [p.NAME for p in todo]
        deps = overlap.dependencies(names)
        ctx = session.ctx
        ctx.gates = gates = overlap.PhaseGates(names)
        pending = list(todo)
        running: dict[str, threading.Thread] = {}
        good: set[str] = set()
        errors: list[tuple[str, BaseException]] = []
        ended: queue.Queue[tuple[str, BaseException | None]] = queue.Queue()

        def work(phase, along: tuple[str, ...]) -> None:
            error: BaseException | None = None
            try:
                self._run_phase(ctx.for_phase(phase.NAME), phase, along)
            except BaseException as exc:  # handed to the pipeline's thread, raised there
                error = exc
            ended.put((phase.NAME, error))

        try:
            while pending or running:
                if not errors and not ctx.stop.is_set():
                    for phase in [p for p in pending if deps[p.NAME] <= good]:
                        pending.remove(phase)
                        session.at(phase.NAME)
                        along = tuple(running)
                        running[phase.NAME] = thread = threading.Thread(target=work, args=(phase, along),
                                                                        name=f"phase-{phase.NAME}", daemon=True)
                        thread.start()
                if not running:
                    if pending and not errors:   # stopped by a signal before the next phase started
                        session.at(pending[0].NAME)
                        ctx.phase_name = pending[0].NAME
                        ctx.check_stop()
                        raise RuntimeError(f"phases that can never start: {', '.join(p.NAME for p in pending)}")
                    break
                try:
                    name, error = ended.get(timeout=0.2)
                except queue.Empty:
                    continue
                running.pop(name).join()
                outcome = ctx.run.phase(name).get("outcome", "failed")
                gates.phase_ended(name, outcome)
                if error is None:
                    good.add(name)
                else:
                    errors.append((name, error))
        except BaseException:
            # A second Ctrl-C (KeyboardInterrupt) while phases run: they stop at their next safe
            # point, and are given a moment to journal that before the session reports.
            ctx.stop.set()
            until = time.monotonic() + 5.0
            for thread in list(running.values()):
                thread.join(max(0.0, until - time.monotonic()))
            raise
        if errors:
            # The phase that failed first on its own, not one that stopped because it waited on it.
            name, error = next(((n, e) for n, e in errors if not isinstance(e, Blocked)), errors[0])
            session.at(name)
            raise error

    def _run_phase(self, ctx: Context, phase, alongside: tuple[str, ...] = ()) -> None:
        ctx.phase_name = phase.NAME
        ctx.run.start_phase(phase.NAME)
        self.progress.phase_start(phase.NAME, alongside)
        t0 = time.monotonic()
        try:
            result = PhaseResult.of(phase.run(ctx))
        except BaseException as exc:
            outcome = "interrupted" if isinstance(exc, (Interrupted, KeyboardInterrupt)) else "failed"
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            ctx.run.end_phase(phase.NAME, outcome, message)
            self.progress.phase_end(phase.NAME, outcome, time.monotonic() - t0, message)
            raise
        ctx.run.end_phase(phase.NAME, result.outcome, result.message, dict(result.details))
        self.progress.phase_end(phase.NAME, result.outcome, time.monotonic() - t0, result.message)

    def _finish_ok(self, run: Run) -> int:
        from drtool.report.model import recovery

        rcv = recovery(run.typed)
        recovery_s, objective, over = rcv.seconds, run.record.get("objective_s"), rcv.over_objective
        run.finish("over-objective" if over else "succeeded")
        write_report(run)
        verdict = f"recovery {recovery_s:.1f}s" if recovery_s is not None else "done"
        if objective:
            verdict += f" (objective {objective:g}s{': MISSED' if over else ''})"
        self.progress.print(f"[bold green]✔ {self.kind} finished[/]: {verdict}; report {run.dir / 'report.md'}")
        if over:
            raise OverObjective(f"rebuilt, but recovery took {recovery_s:.1f}s, over the objective of {objective:g}s; report {run.dir / 'report.md'}")
        return int(ExitCode.OK)


