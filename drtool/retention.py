"""Old runs rotate out: ``backup.keep_runs`` bounds how many run directories a cluster keeps.

Each run directory holds a journal, reports and often a backup with the cluster token, so
``runs/`` must not grow without bound under nightly backups and weekly drills. After a run,
the oldest runs of the same cluster beyond ``keep_runs`` are removed, except the newest run
holding a verified backup (a string of failed runs never costs the last good backup) and
any run still marked running.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path


def _runs_of(directory: Path, cluster: str) -> list[tuple[float, Path, dict]]:
    out = []
    for journal in directory.glob("*/journal.json"):
        try:
            record = json.loads(journal.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # not ours to judge: leave it
        if record.get("cluster") == cluster:
            out.append((float(record.get("started_at") or 0), journal.parent, record))
    return sorted(out, key=lambda r: (r[0], r[1].name))


def _has_backup(run_dir: Path, record: dict) -> bool:
    ok = any(p.get("name") == "backup" and p.get("outcome") == "ok" for p in record.get("phases", []))
    return ok and (run_dir / "backup" / "manifest.json").is_file()


def prune_runs(directory: Path, cluster: str, keep: int, protect: tuple[str, ...] = ()) -> list[str]:
    """Remove the oldest runs of ``cluster`` beyond the newest ``keep``; returns the removed run ids."""
    runs = _runs_of(directory, cluster)
    if len(runs) <= keep:
        return []
    last_backup = next((d.name for _, d, r in reversed(runs) if _has_backup(d, r)), None)
    keep_names = {d.name for _, d, _ in runs[-keep:]} | set(protect) | ({last_backup} if last_backup else set())
    removed = []
    for _, run_dir, record in runs[:-keep]:
        if run_dir.name in keep_names or record.get("status") == "running":
            continue
        shutil.rmtree(run_dir, ignore_errors=True)
        if not run_dir.exists():
            removed.append(run_dir.name)
    return removed
