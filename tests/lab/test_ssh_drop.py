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


def _rebuild(lab):
    res = lab.inv("rebuild", "-i", str(lab.inventory), "--yes", timeout=240)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    return lab.runs_list()[-1]


# Each case drops the session once: server install (node1), agent join (node2),
# and the server's k3s-uninstall.sh during teardown (node1).
@pytest.mark.parametrize("node,during,step", [
    ("node2", "join", "join"),
    ("node1", "install", "install"),
    ("node1", "uninstall", "teardown"),
])
def test_dropped_session_is_retried_and_the_rebuild_succeeds(lab, node, during, step):
    if during == "uninstall" and not lab.node_file(node, "/usr/local/bin/k3s-uninstall.sh").exists():
        update_lab_json(lab.lab, scenario="")
        _rebuild(lab)  # teardown only runs the uninstall script on an installed node
    # In the lab dir: nodes see it (their /tmp is their own).
    scenario = lab.lab.root / f"drop-{node}-{during}.yaml"
    scenario.write_text(f"name: drop\nssh_drop: {{node: {node}, during: {during}}}\n")
    update_lab_json(lab.lab, scenario=str(scenario))
    run = _rebuild(lab)
    entries = [e for e in _log(run) if e.get("node") == node and e.get("step") == step]
    # The first attempt lost its connection, the one retry ran on a new connection and succeeded.
    assert [e.get("error") or e.get("retry") or e.get("exit_code") for e in entries] == [
        "connection lost", "connection lost, running again", 0], entries
    assert (lab.lab.root / "state" / f"ssh-drop-{node}-{during}").exists()
    journal = json.loads((run / "journal.json").read_text())
    assert journal["status"] == "succeeded"
