"""A run's directory and journal: ``runs/<run-id>/``.

The journal (``journal.json``) is the run record the report is built from and
what ``--resume`` reads: each phase's start, end and outcome, plus the small
state phases hand to later phases (where the token and kubeconfig are kept).
It is rewritten atomically (temp file + rename) before and after every phase,
so a run killed at any point leaves a readable journal.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from drtool import __version__
from drtool.errors import BadInput
from drtool.files import atomic_write
from drtool.secret import redact

SCHEMA = "drtool.run/v1"


_from_inventory: Path | None = None


def use_runs_dir(path: Path | None) -> None:
    """Make ``path`` (the loaded inventory's runs directory) where this process keeps runs."""
    global _from_inventory
    _from_inventory = path


def runs_dir() -> Path:
    """Where runs live: ``$DRTOOL_RUNS_DIR``, else the loaded inventory's (``runs_dir``, by
    default ``runs/`` beside the inventory file), else ``./runs``."""
    env = os.environ.get("DRTOOL_RUNS_DIR")
    if env:
        return Path(env)
    return _from_inventory if _from_inventory is not None else Path("runs")


def new_run_id(cluster: str, kind: str = "rebuild") -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    suffix = "" if kind == "rebuild" else f"-{kind}"
    return f"{stamp}-{cluster}{suffix}"


class Run:
    """One run directory and its journal."""

    def __init__(self, directory: Path, record: dict[str, Any]):
        self.dir = directory
        self.record = record
        self._lock = threading.Lock()

    @classmethod
    def create(cls, kind: str, inventory_path: str, cluster: str, *, trigger: str = "manual",
               objective_s: float | None = None, flags: dict | None = None, run_id: str | None = None) -> "Run":
        run_id = run_id or new_run_id(cluster, kind)
        directory = runs_dir() / run_id
        n = 1
        while directory.exists():  # two runs in the same second
            n += 1
            directory = runs_dir() / f"{run_id}.{n}"
        directory.mkdir(parents=True, mode=0o755)
        record = {
            "schema": SCHEMA, "run_id": directory.name, "kind": kind, "inventory": inventory_path,
            "cluster": cluster, "host": socket.gethostname(), "trigger": trigger,
            "versions": {"drtool": __version__, "k3s": None, "flux": None}, "git_revision": None,
            "flags": flags or {}, "started_at": time.time(), "ended_at": None, "status": "running",
            "stopped_at": None, "error": None, "objective_s": objective_s, "phases": [],
            "converge": None, "state": {},
        }
        run = cls(directory, record)
        run.save()
        return run

    @classmethod
    def load(cls, run_id: str) -> "Run":
        directory = runs_dir() / run_id
        path = directory / "journal.json"
        if not path.is_file():
            raise BadInput("command line", "--resume", f"no run {run_id!r} under {runs_dir()}")
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise BadInput(str(path), "", f"unreadable journal: {exc.msg}") from None
        if record.get("schema") != SCHEMA:
            raise BadInput(str(path), "schema", f"expected {SCHEMA}")
        return cls(directory, record)

    # -- journal ------------------------------------------------------------
    def save(self) -> None:
        with self._lock:
            text = redact(json.dumps(self.record, indent=2, default=str))
        atomic_write(self.dir / "journal.json", text)

    @property
    def state(self) -> dict[str, Any]:
        return self.record.setdefault("state", {})

    def phase(self, name: str) -> dict[str, Any]:
        for p in self.record["phases"]:
            if p["name"] == name:
                return p
        entry = {"name": name, "started_at": None, "ended_at": None, "outcome": "pending", "message": "", "nodes": {}}
        self.record["phases"].append(entry)
        return entry

    def node_step(self, phase: str, node: str, step: str, started: float, ended: float, exit_code: int | None) -> None:
        with self._lock:
            steps = self.phase(phase).setdefault("nodes", {}).setdefault(node, [])
            steps.append({"step": step, "started_at": started, "ended_at": ended, "exit_code": exit_code})

    def finish(self, status: str, *, stopped_at: str | None = None, error: dict | None = None) -> None:
        self.record.update(status=status, ended_at=time.time(), stopped_at=stopped_at, error=error)
        self.save()

    @property
    def backup_dir(self) -> Path:
        d = self.dir / "backup"
        d.mkdir(mode=0o700, exist_ok=True)
        os.chmod(d, 0o700)
        return d
