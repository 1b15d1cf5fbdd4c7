"""The inventory as a bare argument, a default from $DRTOOL_INVENTORY or Invoke's config file,
and runs/ found through the inventory instead of the current directory.

Before, ``inv rebuild inventory/home.yaml`` failed with "No idea what ...", every task needed
``-i``, and runs (backups holding tokens) landed in whatever directory ``inv`` ran from.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
LAB_INV = REPO / "inventory" / "lab.yaml"
FIRST_PHASE = ("--from", "teardown", "--to", "teardown")  # which inventory a dry run reads is the point here: one phase of its plan, a light one


def _inv(cwd: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DRTOOL_INVENTORY", "DRTOOL_RUNS_DIR", "GITHUB_TOKEN")}
    env.update(NO_COLOR="1", HOME=str(cwd), **env_extra)
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(REPO), *args], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)


@pytest.fixture
def home_inventory(tmp_path) -> Path:
    """A two-node inventory in its own folder whose nodes do not answer (nothing can change)."""
    data = yaml.safe_load(LAB_INV.read_text())
    data.pop("runs_dir", None)
    for i, node in enumerate(data["nodes"]):
        node["host"] = f"127.0.143.{250 + i}"  # nothing listens here: SSH is refused at once
        node["ssh_key"] = str(tmp_path / "no-key")
    folder = tmp_path / "inventory"
    folder.mkdir()
    path = folder / "home.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_inventory_as_a_bare_argument(tmp_path):
    res = _inv(REPO, "rebuild", "inventory/lab.yaml", "--dry-run", *FIRST_PHASE)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Plan for rebuilding cluster lab" in res.stdout
    # Flags may come before it.
    res = _inv(REPO, "preflight", "--json", "inventory/does-not-exist.yaml")
    assert res.returncode == 2 and "inventory/does-not-exist.yaml: file not found" in res.stderr
    # Left out, a following word that names a task is that task, not the inventory.
    res = _inv(REPO, "rebuild", "--dry-run", *FIRST_PHASE, "inventory.check", "inventory/lab.yaml",
               DRTOOL_INVENTORY=str(LAB_INV))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Plan for rebuilding cluster lab" in res.stdout and "inventory/lab.yaml: ok: cluster lab" in res.stdout


def test_default_inventory_from_the_environment(tmp_path):
    res = _inv(tmp_path, "rebuild", "--dry-run", *FIRST_PHASE, DRTOOL_INVENTORY=str(LAB_INV))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Plan for rebuilding cluster lab" in res.stdout


def test_default_inventory_from_invokes_config_file(tmp_path):
    (tmp_path / ".invoke.yaml").write_text(yaml.safe_dump({"drtool": {"inventory": str(LAB_INV)}}))
    res = _inv(tmp_path, "rebuild", "--dry-run", *FIRST_PHASE)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Plan for rebuilding cluster lab" in res.stdout


def test_no_inventory_at_all_says_how_to_give_one(tmp_path):
    res = _inv(tmp_path, "rebuild", "--dry-run")
    assert res.returncode == 2
    assert "give the inventory file as an argument or with -i, or set $DRTOOL_INVENTORY" in res.stderr


def test_runs_go_beside_the_inventory_not_the_current_directory(tmp_path, home_inventory):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res = _inv(elsewhere, "rebuild", str(home_inventory), "--yes")
    assert res.returncode == 3, res.stdout + res.stderr  # preflight: the nodes do not answer
    runs = home_inventory.parent / "runs"
    journals = list(runs.glob("*/journal.json"))
    assert len(journals) == 1, list(tmp_path.rglob("journal.json"))
    assert not (elsewhere / "runs").exists()
    run_id = journals[0].parent.name
    # A task without an inventory argument finds the run through the default inventory.
    res = _inv(elsewhere, "report", run_id, DRTOOL_INVENTORY=str(home_inventory))
    assert res.returncode == 0, res.stdout + res.stderr
    assert str(runs / run_id / "report.md") in res.stdout
    # ... and $DRTOOL_RUNS_DIR still wins.
    other = tmp_path / "other-runs"
    res = _inv(elsewhere, "rebuild", str(home_inventory), "--yes", DRTOOL_RUNS_DIR=str(other))
    assert res.returncode == 3 and len(list(other.glob("*/journal.json"))) == 1


def test_runs_dir_key_is_relative_to_the_inventory(tmp_path, home_inventory):
    data = yaml.safe_load(home_inventory.read_text())
    data["runs_dir"] = "../dr-runs"
    home_inventory.write_text(yaml.safe_dump(data))
    res = _inv(tmp_path, "rebuild", str(home_inventory), "--yes")
    assert res.returncode == 3, res.stdout + res.stderr
    journal = next((tmp_path / "dr-runs").glob("*/journal.json"))
    assert json.loads(journal.read_text())["inventory"] == str(home_inventory)
