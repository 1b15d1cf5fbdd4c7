"""Every validation error at once, unknown keys named, and "did you mean" for keys, phases and nodes.

Before, only the first problem was shown, and a typo ``roel:`` came out as "role: required
field is missing" without a word about the unknown key.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from drtool.errors import BadInput
from drtool.inventory import load_inventory, parse_inventory
from drtool.pipeline import select_phases
from drtool.runbooks.model import parse_runbook

REPO = Path(__file__).resolve().parents[2]
LAB_INV = REPO / "inventory" / "lab.yaml"

TYPOS = """\
cluster: {name: home, api_endpoint: "https://10.0.0.1:6443"}
nodes:
  - {name: node1, roel: server}
  - {name: node2, role: agnet, lables: {a: b}}
k3s: {version: v1.31.4+k3s1, dta_dir: /x}
flux: {version: v2.4.0, provider: github, owner: me, repository: r, path: clusters/home}
timeouts: {converge: 10x}
"""


def _inv(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DRTOOL_INVENTORY"}
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(REPO), *args], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)


def test_inventory_check_reports_every_problem_at_once(tmp_path):
    f = tmp_path / "home.yaml"
    f.write_text(TYPOS)
    res = _inv("inventory.check", str(f))
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines == [
        f"error: {f}: nodes[0].roel: unknown key 'roel' (did you mean 'role'?)",
        f"error: {f}: nodes[0].role: required field is missing",
        f"error: {f}: nodes[1].lables: unknown key 'lables' (did you mean 'labels'?)",
        f"error: {f}: nodes[1].role: expected server or agent (did you mean 'agent'?)",
        f"error: {f}: k3s.dta_dir: unknown key 'dta_dir' (did you mean 'data_dir'?)",
        f"error: {f}: timeouts.converge: expected a duration such as 90, '90s', '1.5m' or '1h30m'",
    ]


def test_bad_input_keeps_the_first_problem_as_its_field():
    data = yaml.safe_load(TYPOS)
    with pytest.raises(BadInput) as err:
        parse_inventory(data, "home.yaml")
    assert err.value.field == "nodes[0].roel"
    assert len(err.value.problems) == 6


def test_unknown_key_without_a_near_miss_says_so():
    data = yaml.safe_load(LAB_INV.read_text())
    data["flux"]["zzz"] = 1
    with pytest.raises(BadInput, match=r"flux.zzz: unknown key 'zzz' \(check the spelling\)$"):
        parse_inventory(data, "x.yaml")
    data["flux"] = {**yaml.safe_load(LAB_INV.read_text())["flux"], "tokn_env": "X"}
    with pytest.raises(BadInput, match=r"flux.tokn_env: unknown key 'tokn_env' \(did you mean 'token_env'\?\)"):
        parse_inventory(data, "x.yaml")


def test_phase_names_suggest_the_closest():
    with pytest.raises(BadInput, match=r"--from: unknown phase 'bootstap' \(did you mean 'bootstrap'\?\)"):
        select_phases("bootstap", None)
    res = _inv("rebuild", "-i", str(LAB_INV), "--from", "teardwon", "--dry-run")
    assert res.returncode == 2 and "did you mean 'teardown'?" in res.stderr, res.stderr


def test_runbook_reports_every_problem_with_suggestions():
    book = {"name": "x", "description": "d", "parameters": {"agent": {"tpye": "agent"}},
            "steps": [{"id": "a", "title": "A", "phase": "teardwon"},
                      {"id": "b", "title": "B", "remote": {"on": "all", "comand": "true"}}]}
    with pytest.raises(BadInput) as err:
        parse_runbook(book, "x.yaml")
    text = str(err.value)
    assert "x.yaml: parameters.agent.tpye: unknown key 'tpye' (did you mean 'type'?)" in text
    assert "x.yaml: steps[0] (id a).phase: unknown phase 'teardwon' (did you mean 'teardown'?)" in text
    assert "x.yaml: steps[1] (id b).remote.comand: unknown key 'comand' (did you mean 'command'?)" in text


def test_runbook_unknown_node_suggests_the_closest(tmp_path):
    from drtool.runbooks.executor import RunbookExecutor, RunOptions

    book = parse_runbook({"name": "x", "description": "d", "steps": [
        {"id": "a", "title": "A", "remote": {"on": ["nod2"], "command": "true"}}]}, "x.yaml")
    with pytest.raises(BadInput, match=r"unknown node 'nod2' \(did you mean 'node2'\?\)"):
        RunbookExecutor(load_inventory(LAB_INV), book, RunOptions()).plan()


def test_runbook_step_ids_suggest_the_closest():
    from drtool.runbooks.executor import RunbookExecutor, RunOptions
    from drtool.runbooks.model import load_runbook

    book = load_runbook(REPO / "runbooks" / "agent-replace.yaml")
    with pytest.raises(BadInput, match=r"--from: no step 'rejion' in runbook agent-replace \(did you mean 'rejoin'\?\)"):
        RunbookExecutor(load_inventory(LAB_INV), book, RunOptions(params={"agent": "node2"}, start="rejion"))
