"""Exit codes a user sees: interrupts in parallel phases, bugs, and one recovery-time formula."""
from __future__ import annotations

import json

import pytest
from invoke import Exit

from drtool.errors import ExitCode, Interrupted, OverObjective
from drtool.phases.context import Options
from drtool.pipeline import Pipeline
from drtool.tasks._cli import guarded





class ParallelJoin:
    """A phase that joins nodes in parallel, and one node's worker sees the stop request."""

    NAME = "join_agents"

    @staticmethod
    def run(ctx):
        def one(node):
            if node.name == "node2":
                ctx.stop.set()
                ctx.check_stop()
            return "joined"

        ctx.runner.fan_out(ctx.inv.nodes, one).raise_on_failure("agent join")
        return "joined"


def test_interrupt_inside_a_parallel_phase_exits_130_with_the_resume_hint(inv, capsys):
    pipeline = Pipeline(inv, Options(quiet=True), phases=[ParallelJoin])
    with pytest.raises(Exit) as info:
        guarded(pipeline.run)()
    rid = pipeline.run_obj.record["run_id"]
    assert info.value.code == 130
    assert f"resume with --resume {rid}" in info.value.message
    journal = json.loads((pipeline.run_obj.dir / "journal.json").read_text())
    assert journal["status"] == "interrupted" and journal["stopped_at"] == "join_agents"
    assert journal["phases"][0]["outcome"] == "interrupted"
    assert json.loads((pipeline.run_obj.dir / "report.json").read_text())["partial"] is True


def test_a_bug_exits_with_its_own_code_not_the_phase_failure_code():
    @guarded
    def task():
        raise KeyError("oops")

    with pytest.raises(Exit) as info:
        task()
    assert info.value.code == ExitCode.INTERNAL == 70
    assert info.value.code != ExitCode.FAILED
    assert info.value.message.startswith("error: internal error: 'oops' (traceback in ")


class Teardown:
    NAME = "teardown"

    @staticmethod
    def run(ctx):
        return "wiped"


class Converge:
    """Records everything Ready 0.9 s after the wipe began; the phase itself ends at once."""

    NAME = "converge"

    @staticmethod
    def run(ctx):
        start = ctx.run.phase("teardown")["started_at"]
        ctx.run.record["converge"] = {"converged": True, "outcome": "converged", "started": start, "ended": start + 0.9,
                                      "objects": [], "critical_path": [], "failures": [], "pending": []}
        return "converged"


def test_exit_code_and_report_verdict_come_from_one_recovery_time(inv):
    # Recovery is 0.9 s by the converge result, against an objective of 0.5 s. The phases themselves
    # end within milliseconds: a second formula (end of the last phase) would call it a pass.
    pipeline = Pipeline(inv.model_copy(update={"objective": 0.5}), Options(quiet=True), phases=[Teardown, Converge])
    with pytest.raises(OverObjective) as info:
        pipeline.run()
    assert info.value.exit_code == ExitCode.OVER_OBJECTIVE
    report = json.loads((pipeline.run_obj.dir / "report.json").read_text())
    assert report["verdict"] == "over-objective", report["verdict_reason"]
    assert report["recovery_s"] == pytest.approx(0.9)
    assert "recovery took 0.9s" in str(info.value)


def test_within_the_objective_both_say_pass(inv):
    pipeline = Pipeline(inv.model_copy(update={"objective": 5.0}), Options(quiet=True), phases=[Teardown, Converge])
    assert pipeline.run() == 0
    assert json.loads((pipeline.run_obj.dir / "report.json").read_text())["verdict"] == "pass"


def test_interrupted_is_130():
    assert Interrupted.exit_code == 130


def test_a_reader_that_goes_away_stops_the_task_quietly_with_141(tmp_path):
    """`inv ... --json | head`: the closed pipe is not a bug (no "internal error", no traceback)."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from invoke import Exit\n"
        "from drtool.tasks._cli import guarded\n"
        "@guarded\n"
        "def task():\n"
        "    for _ in range(20000):\n"
        "        print('{\"object\": \"' + 'x' * 60 + '\"}')\n"
        "try:\n"
        "    task()\n"
        "except Exit as exc:\n"
        "    if exc.message: print(exc.message, file=sys.stderr)\n"
        "    sys.exit(exc.code)\n"
    )
    env = {**__import__("os").environ, "DRTOOL_DEBUG_LOG": str(tmp_path / "debug.log")}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(10) == b'{"object":'
    proc.stdout.close()  # the reader goes away, as `head` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == ExitCode.BROKEN_PIPE == 141
    assert "internal error" not in err and "Traceback" not in err and "BrokenPipe" not in err, err
    assert not (tmp_path / "debug.log").exists()
