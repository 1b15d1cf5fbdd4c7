"""Invoke's own ``--dry``/``-R`` is never a way to run a change for real.

Invoke's ``--dry`` only echoes ``c.run`` commands, which drtool does not use: before,
``inv --dry rebuild --yes`` went on to preflight, the backup and the wipe. Now a task
with a ``--dry-run`` runs that instead, read-only tasks run as they are, and every
other task refuses (exit 2) before touching anything.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from invoke import Config, Context, Exit

from drtool.tasks import ns

REPO = Path(__file__).resolve().parents[2]
LAB_INV = REPO / "inventory" / "lab.yaml"


def _inv(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_TOKEN", "DRTOOL_INVENTORY")}
    env.update(DRTOOL_RUNS_DIR=str(tmp_path / "runs"), NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(REPO), *args], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("flag", ["--dry", "-R"])
def test_dry_rebuild_prints_the_plan_and_touches_nothing(tmp_path, flag):
    res = _inv(tmp_path, flag, "rebuild", "-i", str(LAB_INV), "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "dry run: nothing is changed" in res.stdout
    assert "== teardown" in res.stdout
    assert not (tmp_path / "runs").exists()  # no run, no journal, no lock


def test_dry_runbook_run_is_its_dry_run(tmp_path):
    res = _inv(tmp_path, "--dry", "runbook.run", "flux-rebootstrap", "-i", str(LAB_INV), "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "dry run: nothing is changed" in res.stdout
    assert not (tmp_path / "runs").exists()


def test_dry_drill_prints_the_drills_plan_post_checks_included(tmp_path):
    res = _inv(tmp_path, "--dry", "drill", "-i", str(LAB_INV))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Plan for a drill of cluster lab (dry run: nothing is changed)" in res.stdout
    assert "== protect_snapshot" in res.stdout and "== post_checks" in res.stdout
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args", [["drill.schedule", "-i", str(LAB_INV), "--install"], ["lab.down"],
                                  ["report.compare", "a", "b", "--output", "x.md"]])
def test_dry_refuses_tasks_that_change_things(tmp_path, args):
    res = _inv(tmp_path, "--dry", *args)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "--dry: refusing to run" in res.stderr and "nothing was done" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "x.md").exists()


# Tasks that may run under --dry as they are: they only read. Every other task either
# maps --dry to its --dry-run or refuses, so a new task is refused until it says otherwise.
READ_ONLY_TASKS = {"preflight", "status", "inventory.check", "inventory.import-ansible", "report.compare",
                   "drill.history", "runbook.list", "runbook.show", "runbook.render", "runbook.validate",
                   "lab.status", "lab.critical-path", "gitops.check"}
DRY_RUN_TASKS = {"rebuild", "runbook.run", "backup", "drill.drill"}


def _tasks():
    for name in ns.task_names:
        yield name, ns[name]


def test_every_task_is_classified_for_dry():
    import inspect

    from drtool.tasks._cli import READ_ONLY

    seen_read_only, seen_dry_run = set(), set()
    for name, task in _tasks():
        body = inspect.unwrap(task.body)
        if "dry_run" in inspect.signature(body).parameters:
            seen_dry_run.add(name)
        elif getattr(body, READ_ONLY, None) is not None:
            seen_read_only.add(name)
    assert seen_dry_run == DRY_RUN_TASKS
    assert seen_read_only == READ_ONLY_TASKS


def test_unclassified_task_refuses_before_its_body_runs():
    """Calling a destructive task with run.dry set never reaches its body."""
    c = Context(Config(overrides={"run": {"dry": True}}))
    for name in ("drill.schedule", "lab.up", "lab.down", "report", "bench"):
        with pytest.raises(Exit) as err:
            ns[name](c)
        assert err.value.code == 2, name
        assert "--dry: refusing" in str(err.value.message), name
