"""Every task's flags: `-h` stays help, and no two options of a task share a short flag."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from drtool.tasks import ns

INV = Path(sys.executable).parent / "inv"


def _tasks(coll, prefix=""):
    for name, t in coll.tasks.items():
        yield prefix + name, t
    for cname, sub in coll.collections.items():
        yield from _tasks(sub, prefix + cname + ".")


ALL = sorted(_tasks(ns), key=lambda x: x[0])


@pytest.mark.parametrize("name,task", ALL, ids=[n for n, _ in ALL])
def test_no_short_flag_shadows_help_or_clashes(name, task):
    shorts: dict[str, str] = {}
    for arg in task.get_arguments():
        for flag in arg.names:
            if len(flag) == 1:
                assert flag != "h", f"inv {name}: --{arg.name} takes -h, so `inv {name} -h` is not help"
                assert flag not in shorts, f"inv {name}: -{flag} is both --{shorts[flag]} and --{arg.name}"
                shorts[flag] = arg.name


def test_every_task_is_listed():
    assert {"drill.drill", "drill.history", "drill.schedule", "rebuild"} <= {n for n, _ in ALL}


@pytest.mark.parametrize("task", ["drill", "drill.history", "drill.schedule", "rebuild"])
def test_dash_h_shows_the_task_help(task):
    out = subprocess.run([str(INV), task, "-h"], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"Usage: inv[oke] [--core-opts] {task}"), out.stdout
    assert "--inventory" in out.stdout
