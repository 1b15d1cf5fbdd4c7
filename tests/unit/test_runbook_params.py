"""Typed runbook parameters: ``node``, ``agent``, ``server``, ``run`` are checked before anything runs.

Before, ``agent-replace --param agent=node1`` (the server) planned to delete the server's
Node and reinstall it, and ``--dry-run`` showed titles with ``{{ agent }}`` unfilled.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from drtool.errors import BadInput
from drtool.inventory import load_inventory
from drtool.runbooks.executor import RunbookExecutor, RunOptions
from drtool.runbooks.model import load_runbook
from drtool.runbooks.params import resolve_params

REPO = Path(__file__).resolve().parents[2]
LAB_INV = REPO / "inventory" / "lab.yaml"


@pytest.fixture
def inv():
    return load_inventory(LAB_INV)


def _inv(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DRTOOL_INVENTORY", "DRTOOL_RUNBOOKS_DIR")}
    env.update(DRTOOL_RUNS_DIR=str(tmp_path / "runs"), NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(REPO), *args], cwd=REPO,
                          capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)


def test_agent_replace_refuses_the_server(tmp_path):
    for extra in (["--dry-run"], ["--yes"]):
        res = _inv(tmp_path, "runbook.run", "agent-replace", "-i", str(LAB_INV), "--param", "agent=node1", *extra)
        assert res.returncode == 2, res.stdout + res.stderr
        assert "--param agent: node1 is a server; runbook agent-replace needs an agent here (agents: node2 (agent))" \
            in res.stderr
        assert "delete nodes node1" not in res.stdout and "Traceback" not in res.stderr
        assert not (tmp_path / "runs").exists()


def test_unknown_node_suggests_the_closest(inv):
    book = load_runbook(REPO / "runbooks" / "agent-replace.yaml")
    with pytest.raises(BadInput, match=r"unknown node 'nod2' \(did you mean 'node2'\?\); inventory .* has node1 \(server\), node2 \(agent\)"):
        resolve_params(book, inv, {"agent": "nod2"})
    with pytest.raises(BadInput, match=r"unknown parameter 'agnet' for runbook agent-replace \(did you mean 'agent'\?\)"):
        resolve_params(book, inv, {"agnet": "node2"})


def test_node_and_server_types(inv, tmp_path):
    path = tmp_path / "typed.yaml"
    path.write_text(yaml.safe_dump({"name": "typed", "description": "d", "parameters": {
        "target": {"type": "node"}, "srv": {"type": "server", "default": "node2"}},
        "steps": [{"id": "a", "title": "on {{ target }} and {{ srv }}", "remote": {"on": ["{{ target }}"], "command": "true"}}]}))
    book = load_runbook(path)
    # A default that does not fit its type names the runbook's field.
    with pytest.raises(BadInput, match=rf"{path}: parameters.srv.default: node2 is an agent; runbook typed needs a server"):
        resolve_params(book, inv, {"target": "node2"})
    assert resolve_params(book, inv, {"target": "node2", "srv": "node1"})["target"] == "node2"
    bad = yaml.safe_load(path.read_text())
    bad["parameters"]["target"]["type"] = "host"
    with pytest.raises(BadInput, match=r"parameters.target.type: expected string, node, agent, server or run"):
        from drtool.runbooks.model import parse_runbook
        parse_runbook(bad, "x.yaml")


def test_run_parameter_must_name_a_run(tmp_path, monkeypatch):
    monkeypatch.setenv("DRTOOL_RUNS_DIR", str(tmp_path / "runs"))
    book = load_runbook(REPO / "runbooks" / "restore-datastore.yaml")
    with pytest.raises(BadInput, match=r"--param run: no run '20261201-030000-lab' under"):
        resolve_params(book, None, {"run": "20261201-030000-lab"})
    with pytest.raises(BadInput, match=r"--param run: '../etc' is not a run id"):
        resolve_params(book, None, {"run": "../etc"})
    (tmp_path / "runs" / "20261201-030000-lab").mkdir(parents=True)
    (tmp_path / "runs" / "20261201-030000-lab" / "journal.json").write_text(json.dumps({}))
    with pytest.raises(BadInput, match=r"did you mean '20261201-030000-lab'"):
        resolve_params(book, None, {"run": "20261201-030001-lab"})
    assert resolve_params(book, None, {"run": "20261201-030000-lab"})["run"] == "20261201-030000-lab"


def test_validate_param_checks_values_against_the_inventory(tmp_path):
    bad = _inv(tmp_path, "runbook.validate", "--name", "agent-replace", "-i", str(LAB_INV), "--param", "agent=node1")
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "--param agent: error: node1 is a server; runbook agent-replace needs an agent" in bad.stdout
    good = _inv(tmp_path, "runbook.validate", "--name", "agent-replace", "-i", str(LAB_INV), "--param", "agent=node2")
    assert good.returncode == 0, good.stdout + good.stderr
    unknown = _inv(tmp_path, "runbook.validate", "-i", str(LAB_INV), "--param", "agnet=node2")
    assert unknown.returncode == 2 and "no runbook here has a parameter 'agnet'" in unknown.stdout


def test_validate_with_inventory_passes_for_shipped_runbooks(tmp_path):
    """Required node parameters without a value are checked with a node of their role."""
    res = _inv(tmp_path, "runbook.validate", "-i", str(LAB_INV))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 error(s)" in res.stdout


def test_dry_run_shows_titles_with_parameters_filled_in(tmp_path, inv):
    res = _inv(tmp_path, "runbook.run", "agent-replace", "-i", str(LAB_INV), "--param", "agent=node2", "--dry-run")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "== 3. delete-node (action): Delete the Node object of node2" in res.stdout
    assert "== 4. wipe (remote): Uninstall K3s on node2" in res.stdout
    assert "{{" not in res.stdout
    plan = RunbookExecutor(inv, load_runbook(REPO / "runbooks" / "agent-replace.yaml"),
                           RunOptions(params={"agent": "node2"})).plan()
    assert [title for _, title, _ in plan][2] == "Delete the Node object of node2"
