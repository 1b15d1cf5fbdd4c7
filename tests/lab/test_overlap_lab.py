"""Overlapped phases on a 2-node lab (real sshd, sudo, install script, HTTPS API, flux CLI):
the agent is prepared while the server installs and still joins while Flux bootstraps; an agent
whose join fails during the bootstrap fails the run naming it, and ``--resume`` joins it again."""
from __future__ import annotations

import json
import signal
from contextlib import contextmanager

import pytest

from .faults_support import (assert_one_line_error, assert_partial_report, finish, read_until, rebuild, run_dir_of,
                             spawn_rebuild, spawned_outcome)
from .fulllab import start_full_lab, stop_full_lab_dir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

SYSTEMCTL = "/usr/local/bin/systemctl"


@pytest.fixture(scope="module")
def lab2():
    full = start_full_lab("127.0.217", nodes=2)
    yield full
    stop_full_lab_dir(full.lab)


@contextmanager
def agent_start_fails_after(full, seconds: float):
    """node2's ``systemctl restart k3s-agent`` (what the install script ends with) fails after
    ``seconds``, as systemd reports a unit whose start failed."""
    path = full.node_file("node2", SYSTEMCTL)
    real = path.with_name("systemctl.lab")
    path.rename(real)
    path.write_text(f"""#!/bin/sh
if [ "$1" = restart ] && [ "$2" = k3s-agent ]; then
    sleep {seconds}
    echo 'Job for k3s-agent.service failed because the control process exited with error code.' >&2
    exit 1
fi
exec {SYSTEMCTL}.lab "$@"
""")
    path.chmod(0o755)
    try:
        yield
    finally:
        real.replace(path)


def _phases(outcome) -> dict:
    return {p["name"]: p for p in outcome.journal()["phases"]}


def test_the_agent_is_prepared_while_the_server_installs_and_readiness_waits_for_it(lab2):
    out = rebuild(lab2, timeout=300)
    assert out.code == 0, out.tail()
    phases = _phases(out)
    join, install = phases["join_agents"], phases["install_servers"]
    assert join["started_at"] < install["ended_at"]          # one after the other before
    assert phases["bootstrap"]["started_at"] < join["ended_at"]   # the agent still joins meanwhile
    node2 = [s["step"] for s in join["nodes"]["node2"]]
    assert node2.index("upload") < node2.index("wait server api") < node2.index("join"), node2
    wait = next(s for s in join["nodes"]["node2"] if s["step"] == "wait server api")
    assert wait["ended_at"] >= install["started_at"]
    # Readiness is judged with every node in, convergence after bootstrap.
    assert phases["nodes_ready"]["started_at"] >= join["ended_at"]
    assert phases["converge"]["started_at"] >= max(phases["nodes_ready"]["ended_at"], phases["bootstrap"]["ended_at"])
    report = out.report()
    assert {"phase": "join_agents", "alongside": "install_servers"}.items() <= next(
        o for o in report["overlaps"] if o["phase"] == "join_agents").items()
    assert "Overlapped phases: `join_agents` alongside `install_servers`" in (out.run / "report.md").read_text()
    assert "▶ join_agents (alongside install_servers)" in out.output


def test_a_join_failing_during_the_bootstrap_fails_the_run_naming_the_node_and_resumes(lab2):
    with agent_start_fails_after(lab2, 4):
        out = rebuild(lab2, timeout=300)
    assert_one_line_error(out.output, out.code, 1, "agent join failed: node2", "exited 1")
    phases = _phases(out)
    join, boot = phases["join_agents"], phases["bootstrap"]
    assert join["outcome"] == "failed" and "node2" in join["message"]
    assert boot["started_at"] < join["ended_at"]             # the join was still running
    assert boot["outcome"] == "ok"                           # and the bootstrap was let finish
    assert "nodes_ready" not in phases and "converge" not in phases
    assert_partial_report(out, "join_agents")
    assert out.journal()["status"] == "failed"

    again = rebuild(lab2, "--resume", out.run.name, timeout=300)
    assert again.code == 0, again.tail()
    journal = json.loads((out.run / "journal.json").read_text())
    assert journal["status"] == "succeeded" and all(p["outcome"] == "ok" for p in journal["phases"])
    resumed = {p["name"]: p for p in journal["phases"]}
    assert resumed["join_agents"]["started_at"] > join["ended_at"]          # joined again
    assert resumed["bootstrap"]["started_at"] == boot["started_at"]         # not bootstrapped again
    assert "▶ join_agents" in again.output and "▶ bootstrap" not in again.output


def test_ctrl_c_while_the_agent_waits_for_the_server_exits_130_and_resume_joins_it(lab2):
    proc = spawn_rebuild(lab2)
    seen: list[str] = []
    try:
        run = run_dir_of(lab2, read_until(proc, "— run ", seen))
        read_until(proc, "▶ join_agents (alongside install_servers)", seen)
        proc.send_signal(signal.SIGINT)      # the server installs; the agent waits for its API
    finally:
        output = finish(proc, seen, timeout=120)
    assert_one_line_error(output, proc.returncode, 130, "--resume", run.name)
    outcome = spawned_outcome(proc, output, 0.0, run)
    phases = _phases(outcome)
    assert outcome.journal()["status"] == "interrupted"
    assert phases["join_agents"]["outcome"] == "interrupted", phases["join_agents"]
    assert "bootstrap" not in phases
    again = rebuild(lab2, "--resume", run.name, timeout=300)
    assert again.code == 0, again.tail()
    journal = json.loads((run / "journal.json").read_text())
    assert journal["status"] == "succeeded" and all(p["outcome"] == "ok" for p in journal["phases"])
    assert "▶ join_agents" in again.output
    node2 = [s["step"] for s in next(p for p in journal["phases"] if p["name"] == "join_agents")["nodes"]["node2"]]
    assert "join" in node2, node2                                   # the agent really joined this time
