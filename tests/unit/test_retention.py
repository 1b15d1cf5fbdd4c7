"""``backup.keep_runs`` bounds runs/: the oldest runs of a cluster go, the last good backup stays."""
from __future__ import annotations

import json
from pathlib import Path

from drtool.retention import prune_runs


def _run(d: Path, run_id: str, started: float, cluster: str = "lab", status: str = "succeeded",
         backup_ok: bool = False) -> None:
    (d / run_id).mkdir(parents=True)
    phases = [{"name": "backup", "outcome": "ok" if backup_ok else "failed"}]
    (d / run_id / "journal.json").write_text(json.dumps({"cluster": cluster, "started_at": started,
                                                          "status": status, "phases": phases}))
    if backup_ok:
        (d / run_id / "backup").mkdir()
        (d / run_id / "backup" / "manifest.json").write_text("{}")


def test_keeps_the_newest_runs_of_the_cluster(tmp_path):
    for i in range(6):
        _run(tmp_path, f"r{i}", 100 + i)
    _run(tmp_path, "other", 1, cluster="prod")
    removed = prune_runs(tmp_path, "lab", keep=3)
    assert removed == ["r0", "r1", "r2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "r3", "r4", "r5"]
    assert prune_runs(tmp_path, "lab", keep=3) == []


def test_last_good_backup_running_and_protected_runs_stay(tmp_path):
    _run(tmp_path, "good-backup", 100, backup_ok=True)
    _run(tmp_path, "still-running", 101, status="running")
    _run(tmp_path, "protected", 102)
    _run(tmp_path, "old", 103)
    for i in range(3):
        _run(tmp_path, f"failed{i}", 200 + i)
    removed = prune_runs(tmp_path, "lab", keep=2, protect=("protected",))
    assert removed == ["old", "failed0"]
    assert {p.name for p in tmp_path.iterdir()} == {"good-backup", "still-running", "protected", "failed1", "failed2"}


def test_unreadable_journals_are_left_alone(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "journal.json").write_text("{not json")
    for i in range(3):
        _run(tmp_path, f"r{i}", i)
    assert prune_runs(tmp_path, "lab", keep=1) == ["r0", "r1"]
    assert (tmp_path / "broken").exists()
