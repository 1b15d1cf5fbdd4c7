"""Rendered runbooks and dry-run plans: exact per-node commands with an inventory, groups without."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drtool.errors import BadInput
from drtool.inventory import load_inventory
from drtool.runbooks.executor import RunbookExecutor, RunOptions
from drtool.runbooks.model import load_runbook
from drtool.runbooks.render import render_markdown
from drtool.runbooks.validate import lint_files

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def inv(tmp_path):
    data = yaml.safe_load((REPO / "inventory" / "lab.yaml").read_text())
    for node in data["nodes"]:
        node["ssh_key"] = str(tmp_path / "key")
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_inventory(path)


def test_render_without_inventory_names_groups_and_required_params():
    text = render_markdown(load_runbook(REPO / "runbooks" / "agent-replace.yaml"))
    assert text.startswith("# Runbook: agent-replace\n")
    assert "--param agent=…" in text and "| `agent` | agent | (required) | `<agent>` |" in text
    assert "### 4. Uninstall K3s on <agent>" in text
    assert "# on <agent> (as root)" in text and "k3s-agent-uninstall.sh" in text


def test_render_with_inventory_shows_exact_commands_per_node(inv):
    text = render_markdown(load_runbook(REPO / "runbooks" / "agent-replace.yaml"), inv, {"agent": "node2"})
    assert "# on node2\nsudo -n -- sh -c 'if [ -x /usr/local/bin/k3s-agent-uninstall.sh ]" in text
    # The join-agent action's own commands: the node-token read, then the install, its token on stdin.
    assert "base64 /var/lib/rancher/k3s/server/node-token" in text
    assert "--node-taint heavy=true:NoSchedule" in text and "   # stdin: ***" in text
    full = render_markdown(load_runbook(REPO / "runbooks" / "full-rebuild.yaml"), inv)
    assert "> Check the backup listed above" in full and "lab goes down now" in full


def test_dry_run_plan_resolves_targets_and_refuses_unknown_nodes(inv):
    book = load_runbook(REPO / "runbooks" / "agent-replace.yaml")
    plan = RunbookExecutor(inv, book, RunOptions(params={"agent": "node2"})).plan()
    targets = {s.id: [t for t, _ in lines] for s, _, lines in plan}
    # delete-node goes to the API server (the kubeconfig step before it fetched the run's kubeconfig).
    assert targets["wipe"] == ["node2"] and targets["delete-node"] == [f"api {inv.cluster.api_endpoint.split('//')[1]}"]
    # A typed parameter is checked before any step resolves it.
    with pytest.raises(BadInput, match=r"command line: --param agent: unknown node 'node7'"):
        RunbookExecutor(inv, book, RunOptions(params={"agent": "node7"})).plan()
    with pytest.raises(BadInput, match="--from: no step 'nope'"):
        RunbookExecutor(inv, book, RunOptions(params={"agent": "node2"}, start="nope"))


def test_validate_reports_unknown_nodes_with_an_inventory(inv, tmp_path):
    path = tmp_path / "odd.yaml"
    path.write_text(yaml.safe_dump({"name": "odd", "description": "d", "steps": [
        {"id": "a", "title": "A", "remote": {"on": ["node9"], "command": "true"}},
        {"id": "b", "title": "B", "phase": "teardown"}]}))
    problems = [str(p) for p in lint_files([path], inv)]
    assert f"{path}: steps[0] (id a).remote.on: error: unknown node 'node9'" in problems[-1] or \
        any("unknown node 'node9'" in p for p in problems)
    assert any("destructive phase teardown without a manual confirmation" in p for p in problems)
