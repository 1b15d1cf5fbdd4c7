"""Run a runbook step by step: journaled, resumable, interruptible, optionally interactive.

One run holds the cluster lock, one Runner (one SSH connection per node) and
one run record, like the rebuild pipeline: phase steps call the phase module
with a Context built the same way, so their journal entries land in the same
record and the usual report renders from it. Each step is timed, retried as
its definition says, and written to the journal before and after it runs, so
a run that stops anywhere resumes at the first unfinished step.

Interactive mode (``--step``) asks before each step (run/skip/quit) and after
a failure (retry/skip/quit) with plain ``input()``. A ``manual`` step waits for
the operator to confirm; without a terminal, or with ``--yes`` and no
``--approve STEP``, it fails at once instead of hanging.
"""
from __future__ import annotations

import re
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, Mapping

from drtool.errors import BadInput, DrtoolError, ExitCode, Interrupted, NodesFailed, Refused
from drtool.inventory import Inventory
from drtool.phases.result import PhaseResult
from drtool.runbooks import journal
from drtool.runbooks.model import ConvergeCheck, Runbook, Step
from drtool.runbooks.params import resolve_params, resolve_targets, substitute, substitute_args
from drtool.runbooks.converge_check import converge_text, run_converge_check
from drtool.runbooks.plan import check_step, dry_context, phase_module, plan_step
from drtool.secret import redact

if TYPE_CHECKING:
    from drtool.session import RunnerFactory, Session

MAX_BAD_ANSWERS = 5


@dataclass(frozen=True)
class RunOptions:
    """How to run a runbook; mirrors the ``inv runbook.run`` flags."""

    params: Mapping[str, str] = field(default_factory=dict)
    step_mode: bool = False
    """Ask before each step and after each failure."""
    start: str | None = None
    """``--from``: the first step to run."""
    only: tuple[str, ...] = ()
    yes: bool = False
    approve: tuple[str, ...] = ()
    """Manual steps approved in advance (needed with ``--yes``)."""
    resume: str | None = None
    quiet: bool = False
    accept_new_host_keys: bool = False
    keep_waiting: bool = False
    trigger: str = "manual"


class Terminal:
    """Where questions go: ``input()`` on a TTY (a pseudo-terminal counts)."""

    def __init__(self, ask: Callable[[str], str] = input, is_tty: Callable[[], bool] | None = None,
                 say: Callable[[str], None] | None = None):
        self._ask = ask
        self.is_tty = is_tty or (lambda: bool(sys.stdin) and sys.stdin.isatty())
        self.say = say or (lambda text: print(text, flush=True))

    def choose(self, question: str, choices: Mapping[str, str]) -> str:
        """Ask until the answer is one of ``choices`` (first letter or whole word); EOF means quit."""
        keys = "/".join(f"[{k}]{w[1:]}" for k, w in choices.items())
        for _ in range(MAX_BAD_ANSWERS):
            try:
                answer = self._ask(f"{question} {keys}: ").strip().lower()
            except EOFError:
                return "q"
            for key, word in choices.items():
                if answer in (key, word):
                    return key
            self.say(f"please answer one of: {', '.join(choices.values())}")
        return "q"


class StepFailed(DrtoolError):
    """A step stopped the run; keeps the exit code of the step's own error."""

    def __init__(self, message: str, exit_code: ExitCode):
        super().__init__(message)
        self.exit_code = exit_code


class Quit(Interrupted):
    """The operator chose quit: the run stops (status ``stopped``) and can be resumed."""

    run_status = "stopped"


class RunbookExecutor:
    """Runs (or plans) one runbook against one inventory."""

    def __init__(self, inv: Inventory, book: Runbook, options: RunOptions = RunOptions(),
                 terminal: Terminal | None = None, runner: "RunnerFactory | None" = None):
        from drtool.session import ssh_runner

        self.inv, self.book, self.options = inv, book, options
        self.runner = runner or ssh_runner
        self.terminal = terminal or Terminal()
        self.source = str(book.path)
        self._check_selection()

    # -- selection ------------------------------------------------------------
    def _check_selection(self) -> None:
        ids = [s.id for s in self.book.steps]
        o = self.options
        if o.resume and (o.start or o.only):
            raise BadInput("command line", "--resume", "cannot be combined with --from or --only")
        if o.start and o.only:
            raise BadInput("command line", "--from", "cannot be combined with --only")
        for flag, names in (("--from", [o.start] if o.start else []), ("--only", list(o.only)),
                            ("--approve", list(o.approve))):
            for name in names:
                if name not in ids:
                    from drtool.suggest import did_you_mean

                    raise BadInput("command line", flag, f"no step {name!r} in runbook {self.book.name}"
                                                         f"{did_you_mean(name, ids)} (steps: {', '.join(ids)})")
        for name in o.approve:
            if self.book.step(name).kind != "manual":
                raise BadInput("command line", "--approve", f"step {name!r} is not a manual step")

    def selected(self) -> list[Step]:
        o = self.options
        if o.only:
            return [s for s in self.book.steps if s.id in o.only]
        if o.start:
            return list(self.book.steps[self.book.index(o.start):])
        return list(self.book.steps)

    # -- dry run ----------------------------------------------------------------
    def plan(self) -> list[tuple[Step, str, list[tuple[str, str]]]]:
        """Each selected step with its title (parameters filled in) and (target, what) lines,
        resolved and redacted; changes nothing."""
        params = resolve_params(self.book, self.inv, self.options.params)
        ctx = dry_context(self.inv, keep_waiting=self.options.keep_waiting, book=self.book)
        out = []
        for step in self.selected():
            i = self.book.index(step.id)
            lines = [(t, redact(a)) for t, a in plan_step(self.book, i, params, ctx)]
            if step.kind == "manual":
                note = ("pre-approved (--approve)" if step.id in self.options.approve
                        else "fails: --yes without --approve" if self.options.yes else "asks the operator")
                lines.append(("operator", note))
            out.append((step, substitute(step.title, params, shell=False), lines))
        return out

    # -- real run ----------------------------------------------------------------
    def run(self) -> int:
        """Run the selected (or unfinished) steps; returns 0 or raises a DrtoolError with its exit code."""
        from drtool.phases.context import Options
        from drtool.session import SessionStyle, error_record, run_session

        if self.options.step_mode and not self.terminal.is_tty():
            raise BadInput("command line", "--step", "needs a terminal to ask on")
        o = self.options
        options = Options(yes=o.yes, quiet=o.quiet, keep_waiting=o.keep_waiting,
                          accept_new_host_keys=o.accept_new_host_keys, trigger=o.trigger)
        opened: dict = {}

        def open_run():
            run, opened["todo"], opened["params"] = self._open()
            return run

        style = SessionStyle(title=f"runbook {self.book.name} on cluster {self.inv.cluster.name}",
                             label=f"runbook {self.book.name}", unit="step ", report=journal.write_report,
                             report_name="runbook-report.md", wrap_error=self._stopped_error)
        failed: list[str] = []
        with run_session(self.inv, options, open_run, style, runner=self.runner) as session:
            self.ctx, self.params, self.progress = session.ctx, opened["params"], session.ctx.progress
            for step in opened["todo"]:
                session.at(step.id)
                self.ctx.check_stop()
                if not self._one(step):
                    failed.append(step.id)
            session.at(None)
        run = session.run
        if failed:
            exc = DrtoolError(f"steps failed (on_failure: continue): {', '.join(failed)}")
            run.finish("failed", stopped_at=None, error=error_record(None, exc))
            journal.write_report(run)
            raise DrtoolError(f"runbook {self.book.name} finished with failed steps {', '.join(failed)}; "
                              f"report {run.dir / 'runbook-report.md'}")
        run.finish("succeeded")
        journal.write_report(run)
        self.progress.print(f"[bold green]✔ runbook {self.book.name} finished[/]; report {run.dir / 'runbook-report.md'}")
        return int(ExitCode.OK)

    @staticmethod
    def _stopped_error(step_id: str | None, exc: DrtoolError, session: "Session") -> DrtoolError:
        """What the operator sees when a step stopped the run: how to resume, and the report."""
        if isinstance(exc, Quit):
            return Interrupted(f"stopped at step {step_id}; {session.resume_hint()}")
        if isinstance(exc, BadInput):
            return exc
        return StepFailed(f"step {step_id} failed: {exc}\n{session.resume_hint()}; report {session.report_path}",
                          exc.exit_code)

    def _open(self):
        from drtool.run import Run

        o = self.options
        if o.resume:
            run = Run.load(o.resume, self.inv.cluster.name)
            todo = journal.check_resume(run, self.book)
            saved = run.record["runbook"]["params"]
            for k, v in o.params.items():
                if saved.get(k) != v:
                    raise BadInput("command line", "--param", f"{k} was {saved.get(k)!r} in run {o.resume}; parameters cannot change on resume")
            params = dict(saved)
            run.resumed()
            run.save()
            return run, todo, params
        params = resolve_params(self.book, self.inv, o.params)
        # Resolve every target now: an unknown node must fail before the first step runs.
        ctx = dry_context(self.inv)
        for i in range(len(self.book.steps)):
            check_step(self.book, i, params, ctx)
        todo = self.selected()
        flags = {"from": o.start, "only": list(o.only), "step_mode": o.step_mode, "yes": o.yes,
                 "approve": list(o.approve), "keep_waiting": o.keep_waiting}
        run = Run.create("runbook", str(self.inv.path), self.inv.cluster.name, trigger=o.trigger, flags=flags)
        journal.start(run, self.book, params, {s.id for s in todo})
        return run, todo, params

    # -- one step ----------------------------------------------------------------
    def _one(self, step: Step) -> bool:
        """Run one step (asking first in --step mode); False when it failed and the runbook continues."""
        run, i = self.ctx.run, self.book.index(step.id)
        title = substitute(step.title, self.params, shell=False)
        self.progress.print(f"[bold]▶ {i + 1}/{len(self.book.steps)} {step.id}[/]: {title}")
        if step.doc and not self.options.quiet:
            self.terminal.say(_indent(substitute(step.doc, self.params, shell=False)))
        if self.options.step_mode:
            for target, what in plan_step(self.book, i, self.params, dry_context(self.inv, book=self.book)):
                self.terminal.say(f"    [{target}] {redact(what)}")
            answer = self.terminal.choose(f"Step {step.id}:", {"r": "run", "s": "skip", "q": "quit"})
            if answer == "s":
                journal.update(run, step.id, status="skipped", message="skipped by the operator")
                self.progress.print(f"[yellow]• {step.id} skipped[/]")
                return True
            if answer == "q":
                raise Quit(f"stopped by the operator at step {step.id}")
        while True:
            error = self._attempts(step)
            if error is None:
                return True
            if self.options.step_mode and not isinstance(error, Interrupted):
                answer = self.terminal.choose(f"Step {step.id} failed.", {"r": "retry", "s": "skip", "q": "quit"})
                if answer == "r":
                    continue
                if answer == "s":
                    journal.update(run, step.id, status="skipped",
                                   message=f"skipped after failure: {str(error).splitlines()[0]}")
                    return True
                raise Quit(f"stopped by the operator at step {step.id}")
            if step.on_failure == "continue" and not isinstance(error, Interrupted):
                self.progress.print(f"[yellow]  {step.id} failed; continuing (on_failure: continue)[/]")
                return False
            raise error

    def _attempts(self, step: Step) -> DrtoolError | None:
        """Run a step with its retries; the journal says running, then ok or failed. Returns the error."""
        run, ctx = self.ctx.run, self.ctx
        e = journal.entry(run, step.id)
        started = time.time()
        journal.update(run, step.id, status="running", started_at=started, ended_at=None, message="")
        ctx.phase_name = step.phase or step.id
        run.start_phase(ctx.phase_name)
        attempts = 1 + step.retries if step.kind != "manual" else 1
        self._phase_result: PhaseResult | None = None
        error: DrtoolError | None = None
        message, output = "", ""
        for n in range(1, attempts + 1):
            e["attempts"] = e.get("attempts", 0) + 1
            try:
                message, output = self._execute(step)
                error = None
                break
            except KeyboardInterrupt:
                error = Interrupted(f"aborted during step {step.id}")
                break
            except DrtoolError as exc:
                error = exc
                output = getattr(exc, "tail", "") or str(exc)
                if isinstance(exc, (Interrupted, Refused, BadInput)) or n == attempts:
                    break
                self.progress.print(f"    [yellow]{step.id} failed (attempt {n}/{attempts}): "
                                    f"{redact(str(exc).splitlines()[0])}; retrying in {step.retry_delay:g}s[/]")
                journal.update(run, step.id, message=str(exc).splitlines()[0], output=output)
                ctx.sleep(step.retry_delay)
        ended = time.time()
        details: dict = {}
        if error is None:
            # A phase step records the outcome its phase gave (noop, skipped); the step itself is done.
            outcome = self._phase_result.outcome if self._phase_result else "ok"
            details = dict(self._phase_result.details) if self._phase_result else {}
            journal.update(run, step.id, status="ok", ended_at=ended, message=message, output=output)
        else:
            outcome = "interrupted" if isinstance(error, Interrupted) else "failed"
            journal.update(run, step.id, status="failed", ended_at=ended,
                           message=str(error).splitlines()[0] if str(error) else type(error).__name__, output=output)
        run.end_phase(ctx.phase_name, outcome, journal.entry(run, step.id)["message"], details)
        colour = "green" if error is None else "red"
        text = journal.entry(run, step.id)["message"]
        self.progress.print(f"[{colour}]{'✔' if error is None else '✘'} {step.id}[/] {outcome} in {ended - started:.1f}s"
                            + (f" — {text}" if text else ""))
        return error

    def _execute(self, step: Step) -> tuple[str, str]:
        """Do the step once; (message, output). Long-running kinds are bounded by the step's timeout."""
        # The model guarantees exactly one action is set; dispatch on it (typed, not on the kind's name).
        if step.manual is not None:
            return self._manual(step, step.manual.instruction), ""
        if step.wait is not None:
            self.ctx.sleep(step.wait.seconds)
            return f"waited {step.wait.seconds:g}s", ""
        if step.remote is not None:
            return self._remote(step, step.remote.command, step.remote.on, step.remote.sudo)[:2]
        if step.local is not None:
            return self._local(step, step.local.command)
        if step.check is not None and step.check.command is not None:
            c, command = step.check, step.check.command
            if c.on is None:
                message, output = self._local(step, command, check=c.expect is None)
                outputs = {"local": output}
            else:
                message, output, outputs = self._remote(step, command, c.on, c.sudo, check=c.expect is None)
            # Every target's own output must match, so `^...$` anchors mean what they say.
            missed = [t for t, text in outputs.items() if c.expect is not None and not re.search(c.expect, text, re.MULTILINE)]
            if missed:
                raise DrtoolError(f"check failed on {', '.join(missed)}: output does not match /{c.expect}/\n"
                                  f"{journal.tail(output, 5)}")
            return ("check passed" + (f" (matched /{c.expect}/)" if c.expect else "")), output
        return self._with_timeout(step, lambda: self._internal(step)), ""

    def _internal(self, step: Step) -> str:
        if step.phase is not None:
            saved = self.ctx.options
            self.ctx.options = replace(saved, **step.args)
            try:
                self._phase_result = PhaseResult.of(phase_module(step.phase).run(self.ctx))
                return self._phase_result.message
            finally:
                self.ctx.options = saved
        if step.check is not None and step.check.converge is not None:
            return self._converge(step, step.check.converge)
        from drtool.runbooks.actions import ACTIONS

        assert step.action is not None  # the last kind left
        args = substitute_args(step.args, self.params)
        return ACTIONS[step.action].run(self.ctx, args, (self.source, self.book.where(self.book.index(step.id))))

    def _with_timeout(self, step: Step, fn: Callable[[], str]) -> str:
        """Stop ``fn`` at its next safe point when the step's timeout passes (phases poll ctx.stop)."""
        if not step.timeout:
            return fn()
        fired = threading.Event()

        def expire() -> None:
            fired.set()
            self.ctx.stop.set()

        timer = threading.Timer(step.timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            return fn()
        except Interrupted:
            if fired.is_set():
                raise DrtoolError(f"timed out after {step.timeout:g}s") from None
            raise
        finally:
            timer.cancel()
            if fired.is_set():
                self.ctx.stop.clear()

    # -- step kinds ----------------------------------------------------------------
    def _manual(self, step: Step, instruction: str) -> str:
        text = substitute(instruction, self.params, shell=False)
        if step.id in self.options.approve:
            self.terminal.say(_indent(text))
            return "approved in advance (--approve)"
        if self.options.yes:
            raise Refused(f"manual step {step.id} needs the operator: pass --approve {step.id} with --yes")
        if not self.terminal.is_tty():
            raise Refused(f"manual step {step.id} needs the operator and there is no terminal; "
                          f"pass --yes --approve {step.id} to approve it in advance")
        self.terminal.say("  ACTION REQUIRED:\n" + _indent(text))
        answer = self.terminal.choose("Done?", {"y": "yes", "n": "no"})
        if answer != "y":
            raise Refused(f"manual step {step.id} was not confirmed")
        return "confirmed by the operator"

    def _remote(self, step: Step, command: str, on, sudo: bool, check: bool = True) -> tuple[str, str, dict[str, str]]:
        """(message, combined output tail, each node's own output); raises when any node fails."""
        i = self.book.index(step.id)
        nodes = resolve_targets(self.inv, on, self.params, source=self.source, field=self.book.where(i, "on"))
        cmd = substitute(command, self.params, shell=True)

        def one(node):
            with self.ctx.step(node, step.id):
                return self.ctx.runner.run(node, cmd, sudo=sudo, timeout=step.timeout, check=check, step=step.id)

        results = self.ctx.runner.fan_out(nodes, one)
        output = "\n".join(
            f"[{name}] {line}" for name, r in results.items()
            for line in ((r.tail() if not isinstance(r, DrtoolError) else str(r)).splitlines() or [""]))
        try:
            done = results.raise_on_failure(f"step {step.id}")
        except NodesFailed as err:
            err.tail = journal.tail(output)  # type: ignore[attr-defined]
            raise
        return f"ok on {', '.join(results)}", output, {n: r.stdout + r.stderr for n, r in done.items()}

    def _local(self, step: Step, command: str, check: bool = True) -> tuple[str, str]:
        cmd = substitute(command, self.params, shell=True)
        env = dict(self.ctx.environ)
        env["DRTOOL_RUN_DIR"] = str(self.ctx.run.dir)
        if self.ctx.kubeconfig_path.exists():
            env["KUBECONFIG"] = str(self.ctx.kubeconfig_path)
        # Through the runner like every command: logged, redacted, bounded, recordable in tests.
        res = self.ctx.runner.local(cmd, env=env, timeout=step.timeout or self.inv.timeouts.command, step=step.id,
                                    check=False)
        output = res.stdout + res.stderr
        if check and res.exit_code != 0:
            err = DrtoolError(f"local: `{res.command}` exited {res.exit_code}\n{journal.tail(output, 10)}")
            err.tail = journal.tail(output)  # type: ignore[attr-defined]
            raise err
        return f"exit {res.exit_code}", output

    def _converge(self, step: Step, c: ConvergeCheck) -> str:
        self.progress.print(f"    {converge_text(c, self.inv)}")
        return run_converge_check(self.ctx, c)


def _indent(text: str) -> str:
    return "\n".join("    " + line if line else "" for line in text.strip().splitlines())

