"""Overlapped phases: what starts alongside what, and that a failure or an interrupt in an
overlapped phase still stops the run with the right exit code, journal and resume."""
from __future__ import annotations

import json
import threading
import time

import pytest
from invoke import Exit

from drtool.errors import PermanentError, RemoteError
from drtool.phases import overlap
from drtool.phases.context import Options
from drtool.phases.overlap import SERVER_API
from drtool.pipeline import PHASE_NAMES, Pipeline
from drtool.remote.recording import RecordingRunner
from drtool.tasks._cli import guarded





def test_each_phase_waits_only_for_what_it_needs():
    deps = overlap.dependencies(list(PHASE_NAMES))
    assert deps["join_agents"] == {"teardown"}               # not install_servers: it waits inside
    assert deps["bootstrap"] == {"restore_secrets"} and deps["restore_secrets"] == {"kubeconfig"}
    assert deps["nodes_ready"] == {"join_agents", "kubeconfig"}
    assert deps["converge"] == {"nodes_ready", "bootstrap"}
    along = overlap.alongside(list(PHASE_NAMES))
    assert set(along["join_agents"]) == {"install_servers", "kubeconfig", "restore_secrets", "bootstrap"}
    assert along["preflight"] == along["teardown"] == along["converge"] == []


def test_a_need_left_out_of_the_run_is_replaced_by_what_it_needs():
    # --from/--to slices and resumed runs: nothing destructive runs before preflight.
    assert overlap.dependencies(["preflight", "install_servers"])["install_servers"] == {"preflight"}
    assert overlap.dependencies(["install_servers", "join_agents"]) == {"install_servers": set(), "join_agents": set()}
    sliced = overlap.dependencies(["kubeconfig", "nodes_ready", "restore_secrets", "bootstrap"])
    assert sliced["nodes_ready"] == {"kubeconfig"} and sliced["bootstrap"] == {"restore_secrets"}
    # A phase drtool does not know is a barrier both ways.
    deps = overlap.dependencies(["backup", "mine", "teardown", "install_servers", "join_agents"])
    assert deps["mine"] == {"backup"} and deps["teardown"] == {"backup", "mine"}
    assert deps["join_agents"] == {"mine", "teardown"}


def test_the_dry_run_shows_the_overlap(inv):
    steps = Pipeline(inv, Options(dry_run=True, quiet=True)).plan()
    schedule = {p: a for p, t, a in steps if t == "schedule"}
    assert "runs alongside install_servers" in schedule["join_agents"]
    assert "once the first server's API answers" in schedule["join_agents"]
    assert schedule["bootstrap"].startswith("starts after restore_secrets") and "join_agents" in schedule["bootstrap"]
    assert "converge" not in schedule and "teardown" not in schedule
    # The schedule line comes first in its phase, before the commands.
    join = [t for p, t, a in steps if p == "join_agents"]
    assert join[0] == "schedule" and len(join) > 1


class World:
    """Fake phases under the real names, sharing events so a test can see what ran when."""

    def __init__(self, join_fails: bool = False, install_fails: bool = False, stop_in_join: bool = False):
        self.bootstrap_started = threading.Event()
        self.join_fails, self.install_fails, self.stop_in_join = join_fails, install_fails, stop_in_join
        self.ran: list[str] = []

    def phases(self) -> list:
        world = self

        def phase(name, fn):
            def run(ctx):
                world.ran.append(name)
                return fn(ctx) or f"{name} done"
            return type(name, (), {"NAME": name, "run": staticmethod(run)})

        def install(ctx):
            time.sleep(0.1)
            if world.install_fails:
                raise PermanentError("node1: install script exited 1")
            ctx.reached(SERVER_API)

        def join(ctx):
            def one(node):
                with ctx.step(node, "upload"):
                    pass
                ctx.wait_for(SERVER_API, node)
                # Still joining when bootstrap starts: the overlap this module is about.
                assert world.bootstrap_started.wait(5)
                if world.stop_in_join:
                    ctx.stop.set()
                    ctx.check_stop()
                if world.join_fails and node.name == "node2":
                    raise RemoteError("node2", "sh -s", 1, "Error: failed to retrieve agent configuration")
                time.sleep(0.2)
            ctx.runner.fan_out(ctx.inv.agents, one).raise_on_failure("agent join")

        def bootstrap(ctx):
            world.bootstrap_started.set()
            for _ in range(10):
                ctx.sleep(0.05)

        return [phase("teardown", lambda ctx: None), phase("install_servers", install),
                phase("join_agents", join), phase("kubeconfig", lambda ctx: None),
                phase("nodes_ready", lambda ctx: None), phase("restore_secrets", lambda ctx: None),
                phase("bootstrap", bootstrap), phase("converge", lambda ctx: None)]


def _pipeline(inv, world, resume=None):
    return Pipeline(inv, Options(quiet=True), phases=world.phases(), resume=resume,
                    runner=lambda i, r, o: RecordingRunner(i))


def _journal(pipeline) -> dict:
    return json.loads((pipeline.run_obj.dir / "journal.json").read_text())


def test_bootstrap_runs_while_the_agents_still_join_and_each_phase_keeps_its_own_steps(inv):
    world = World()
    pipeline = _pipeline(inv, world)
    assert pipeline.run() == 0
    phases = {p["name"]: p for p in _journal(pipeline)["phases"]}
    assert all(p["outcome"] == "ok" for p in phases.values())
    assert phases["join_agents"]["started_at"] < phases["install_servers"]["ended_at"]
    assert phases["bootstrap"]["started_at"] < phases["join_agents"]["ended_at"]
    assert phases["nodes_ready"]["started_at"] >= phases["join_agents"]["ended_at"]
    assert phases["converge"]["started_at"] >= max(phases["nodes_ready"]["ended_at"], phases["bootstrap"]["ended_at"])
    steps = {s["step"] for s in phases["join_agents"]["nodes"]["node2"]}
    assert steps == {"upload", "wait server api"} and not phases["bootstrap"]["nodes"]


def test_a_join_failing_during_bootstrap_fails_the_run_naming_the_node_and_resumes(inv):
    world = World(join_fails=True)
    pipeline = _pipeline(inv, world)
    with pytest.raises(Exit) as info:
        guarded(pipeline.run)()
    assert info.value.code == 1 and "agent join failed" in info.value.message and "node2" in info.value.message
    journal = _journal(pipeline)
    phases = {p["name"]: p for p in journal["phases"]}
    assert journal["status"] == "failed" and journal["stopped_at"] == "join_agents"
    assert phases["join_agents"]["outcome"] == "failed" and phases["bootstrap"]["outcome"] == "ok"
    assert "nodes_ready" not in phases and "converge" not in phases
    # Resumed: only what did not end well runs again, the join included.
    fixed = World()
    fixed.bootstrap_started.set()         # bootstrap is done: the join does not wait for it
    again = _pipeline(inv, fixed, resume=journal["run_id"])
    assert again.run() == 0
    assert fixed.ran == ["join_agents", "nodes_ready", "converge"]


def test_a_failed_install_stops_the_waiting_join_and_is_the_error_reported(inv):
    world = World(install_fails=True)
    pipeline = _pipeline(inv, world)
    with pytest.raises(Exit) as info:
        guarded(pipeline.run)()
    assert info.value.code == 1 and "install script exited 1" in info.value.message
    journal = _journal(pipeline)
    phases = {p["name"]: p for p in journal["phases"]}
    assert journal["stopped_at"] == "install_servers" and phases["install_servers"]["outcome"] == "failed"
    assert phases["join_agents"]["outcome"] == "interrupted"
    assert "install_servers failed before server api" in phases["join_agents"]["message"]


def test_an_interrupt_in_an_overlapped_join_exits_130_and_the_join_is_redone(inv):
    world = World(stop_in_join=True)
    pipeline = _pipeline(inv, world)
    with pytest.raises(Exit) as info:
        guarded(pipeline.run)()
    journal = _journal(pipeline)
    assert info.value.code == 130 and f"resume with --resume {journal['run_id']}" in info.value.message
    phases = {p["name"]: p for p in journal["phases"]}
    assert journal["status"] == "interrupted"
    assert phases["join_agents"]["outcome"] == "interrupted" and phases["bootstrap"]["outcome"] == "interrupted"
    fixed = World()
    fixed.bootstrap_started.set()
    again = _pipeline(inv, fixed, resume=journal["run_id"])
    assert again.run() == 0
    assert "join_agents" in fixed.ran and "bootstrap" in fixed.ran and "install_servers" not in fixed.ran

