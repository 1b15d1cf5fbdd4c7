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
from typing import TYPE_CHECKING, Any

from drtool import __version__
from drtool.errors import BadInput
from drtool.files import atomic_write
from drtool.secret import redact

if TYPE_CHECKING:
    from pydantic import BaseModel

    from drtool.report.record import RunRecord

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
    """One run directory and its journal.

    ``record`` is the journal as JSON-shaped data; every write passes it through the typed
    ``RunRecord`` model (``drtool.report.record``), the same model the report reads it with.
    """

    def __init__(self, directory: Path, record: dict[str, Any]):
        self.dir = directory
        self.record = record
        # Overlapped phases journal from several threads: every change and every save holds it.
        self._lock = threading.RLock()

    @classmethod
    def create(cls, kind: str, inventory_path: str, cluster: str, *, trigger: str = "manual",
               objective_s: float | None = None, flags: dict | None = None, run_id: str | None = None) -> "Run":
        from drtool.report.record import RunRecord

        run_id = run_id or new_run_id(cluster, kind)
        directory = runs_dir() / run_id
        n = 1
        while directory.exists():  # two runs in the same second
            n += 1
            directory = runs_dir() / f"{run_id}.{n}"
        directory.mkdir(parents=True, mode=0o755)
        record = RunRecord(
            run_id=directory.name, kind=kind, inventory=inventory_path, cluster=cluster, host=socket.gethostname(),
            trigger=trigger, versions={"drtool": __version__, "k3s": None, "flux": None}, flags=flags or {},
            started_at=time.time(), objective_s=objective_s,
        )
        run = cls(directory, _dump(record))
        run.save()
        return run

    @classmethod
    def placeholder(cls, directory: Path | None = None) -> "Run":
        """A run that is not journaled under ``runs/``: what dry runs and plans hand to phases."""
        from drtool.report.record import RunRecord

        return cls(directory or runs_dir() / "<run-id>",
                   _dump(RunRecord(run_id="<run-id>", started_at=time.time(), flags={"dry_run": True})))

    @classmethod
    def load(cls, run_id: str, cluster: str | None = None) -> "Run":
        """The journaled run ``run_id`` (``--resume``); with ``cluster``, refused when it was
        a run for another cluster."""
        from drtool.report.record import parse_record

        directory = runs_dir() / run_id
        path = directory / "journal.json"
        if not path.is_file():
            raise BadInput("command line", "--resume", f"no run {run_id!r} under {runs_dir()}")
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise BadInput(str(path), "", f"unreadable journal: {exc.msg}") from None
        if not isinstance(record, dict) or record.get("schema") != SCHEMA:
            raise BadInput(str(path), "schema", f"expected {SCHEMA}")
        if cluster is not None and record.get("cluster") != cluster:
            raise BadInput("command line", "--resume", f"run {run_id} is for cluster {record.get('cluster')}, not {cluster}")
        return cls(directory, _dump(parse_record(record, str(path))))

    # -- journal ------------------------------------------------------------
    @property
    def typed(self) -> "RunRecord":
        """The record as the typed model (what the report and the verdict read)."""
        from drtool.report.record import RunRecord

        with self._lock:
            return RunRecord.model_validate(self.record)

    def save(self) -> None:
        """Write the journal atomically, through the typed model (a wrongly typed field fails here)."""
        from drtool.report.record import RunRecord

        with self._lock:
            # The in-memory dict stays the same object: phases hold references into it.
            text = redact(json.dumps(_dump(RunRecord.model_validate(self.record)), indent=2, default=str))
            atomic_write(self.dir / "journal.json", text)   # in order: the last save is the newest

    @property
    def state(self) -> dict[str, Any]:
        return self.record.setdefault("state", {})

    def phase(self, name: str) -> dict[str, Any]:
        from drtool.report.record import PhaseRecord

        with self._lock:
            for p in self.record["phases"]:
                if p["name"] == name:
                    return p
            entry = _dump(PhaseRecord(name=name))
            self.record["phases"].append(entry)
            return entry

    def start_phase(self, name: str) -> None:
        """The phase (or runbook step) is running from now; journaled at once."""
        with self._lock:
            self.phase(name).update(started_at=time.time(), ended_at=None, outcome="running", message="", nodes={},
                                    details={})
            self.save()

    def end_phase(self, name: str, outcome: str, message: str, details: dict[str, Any] | None = None) -> None:
        """The phase ended with ``outcome``; journaled at once."""
        with self._lock:
            self.phase(name).update(ended_at=time.time(), outcome=outcome, message=redact(message),
                                    details=dict(details or {}))
            self.save()

    def node_step(self, phase: str, node: str, step: str, started: float, ended: float, exit_code: int | None) -> None:
        from drtool.report.record import NodeStep

        entry = _dump(NodeStep(step=step, started_at=started, ended_at=ended, exit_code=exit_code))
        with self._lock:
            self.phase(phase).setdefault("nodes", {}).setdefault(node, []).append(entry)

    def resumed(self) -> None:
        """A stopped run continues: running again, its end and error cleared."""
        self.record["flags"]["resumed"] = True
        self.record.update(status="running", ended_at=None, stopped_at=None, error=None)

    def finish(self, status: str, *, stopped_at: str | None = None, error: dict | None = None) -> None:
        from drtool.report.record import RunError

        self.record.update(status=status, ended_at=time.time(), stopped_at=stopped_at,
                           error=_dump(RunError.model_validate(error)) if error is not None else None)
        self.save()

    @property
    def backup_dir(self) -> Path:
        d = self.dir / "backup"
        d.mkdir(mode=0o700, exist_ok=True)
        os.chmod(d, 0o700)
        return d


def _dump(model: "BaseModel") -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True)
