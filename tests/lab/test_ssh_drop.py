"""Scenario ssh_drop: a node ends drtool's SSH session mid-command; the rebuild reconnects and goes on."""
from __future__ import annotations

import json

import pytest

from drtool.lab.setup import update_lab_json

from .fulllab import start_full_lab, stop_full_lab_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab():
    full = start_full_lab("127.0.196", nodes=2, scenario="ssh-drop")
    yield full
    stop_full_lab_dir(full.lab)


def _log(run) -> list[dict]:
    return [json.loads(line) for line in (run / "commands.log").read_text().splitlines()]


@pytest.mark.parametrize("node,during,step", [("node2", "join", "join"), ("node1", "install", "install")])
def test_dropped_session_is_retried_and_the_rebuild_succeeds(lab, node, during, step):
    # In the lab dir: nodes see it (their /tmp is their own).
    scenario = lab.lab.root / f"drop-{node}-{during}.yaml"
    scenario.write_text(f"name: drop\nssh_drop: {{node: {node}, during: {during}}}\n")
    update_lab_json(lab.lab, scenario=str(scenario))
    res = lab.inv("rebuild", "-i", str(lab.inventory), "--yes", timeout=240)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    run = lab.runs_list()[-1]
    entries = [e for e in _log(run) if e.get("node") == node and e.get("step") == step]
    # The first attempt lost its connection, the retry ran on a new one and succeeded.
    assert any(e.get("error") == "connection lost" or "lost" in str(e.get("error", "")) for e in entries), entries
    assert any("running again" in str(e.get("retry", "")) for e in entries), entries
    assert entries[-1].get("exit_code") == 0, entries
    assert (lab.lab.root / "state" / f"ssh-drop-{node}-{during}").exists()
