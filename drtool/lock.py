"""One destructive run per cluster at a time.

The lock is an ``flock`` on ``runs/.locks/<cluster>.lock``: the kernel drops it
when the holder dies, so a crashed run never blocks the next one. The file also
holds the holder's pid and run id, so a refused run can say who holds it, and a
left-over file from a dead process is reported as stale (and taken over).
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import TextIO

from drtool.errors import LockHeld


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ClusterLock:
    def __init__(self, directory: Path, cluster: str):
        self.path = directory / ".locks" / f"{cluster}.lock"
        self.cluster = cluster
        self._fh: TextIO | None = None
        self.stale: dict | None = None
        """The previous holder's record when it died without releasing."""

    def acquire(self, run_id: str) -> "ClusterLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = _parse(fh.read())
            fh.close()
            who = f"run {holder.get('run_id')} (pid {holder.get('pid')})" if holder else "another run"
            raise LockHeld(f"cluster {self.cluster} is locked by {who}; wait for it to finish") from None
        fh.seek(0)
        previous = _parse(fh.read())
        if previous and previous.get("pid") and not _alive(int(previous["pid"])):
            self.stale = previous
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "run_id": run_id, "since": time.time()}))
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is None:
            return
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.flush()
        fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
        self._fh.close()
        self._fh = None

    def __enter__(self) -> "ClusterLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _parse(text: str) -> dict:
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}
