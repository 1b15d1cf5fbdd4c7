"""The lab datastore as a real SQLite database, in the table layout of K3s's kine.

A single K3s server without ``--cluster-init`` keeps its state in ``server/db/state.db``
through kine, whose SQLite driver creates one table ``kine`` (k3s-io/kine
``pkg/drivers/sqlite/sqlite.go``, the version vendored by K3s v1.31). Objects live under
``/registry/...`` keys and K3s's bootstrap data (CAs, keys, credentials) under
``/bootstrap/<token hash>``. Because the file is a real SQLite database, a backup taken
with SQLite's online backup API while the server writes is consistent, as on a real node.

The lab keeps one row per key (the newest value) instead of kine's revision log.
"""
from __future__ import annotations

import json
import os
import sqlite3
from typing import Any

# As kine's SQLite driver (columns and indexes; the lab uses name and value).
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kine (id INTEGER PRIMARY KEY AUTOINCREMENT, name INTEGER, created INTEGER, "
    "deleted INTEGER, create_revision INTEGER, prev_revision INTEGER, lease INTEGER, value BLOB, old_value BLOB)",
    "CREATE INDEX IF NOT EXISTS kine_name_index ON kine (name)",
    "CREATE INDEX IF NOT EXISTS kine_name_id_index ON kine (name,id)",
)
META_KEY = "/registry/lab.drtool.io/state"
BOOTSTRAP_PREFIX = "/bootstrap/"
_BUSY_TIMEOUT = 10.0


def is_sqlite_path(path: str) -> bool:
    return path.endswith(".db")


def _connect(path: str) -> sqlite3.Connection:
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    new = not os.path.exists(path)
    conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT)
    if new:
        os.chmod(path, 0o600)
    for statement in SCHEMA:
        conn.execute(statement)
    return conn


def _key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    group = obj.get("apiVersion", "v1").rpartition("/")[0] or "core"
    ns = meta.get("namespace") or "-"
    return f"/registry/{group}/{obj.get('kind', '')}/{ns}/{meta.get('name', '')}"


def write_state(path: str, state: dict[str, Any]) -> None:
    """Replace the stored objects with ``state["objects"]`` in one transaction (bootstrap rows kept)."""
    conn = _connect(path)
    try:
        with conn:
            conn.execute("DELETE FROM kine WHERE name LIKE '/registry/%'")
            rev = int(state.get("resourceVersion", 0))
            meta = {k: v for k, v in state.items() if k != "objects"}
            rows = [(META_KEY, rev, json.dumps(meta, separators=(",", ":")).encode())]
            for obj in state.get("objects", []):
                created = int((obj.get("metadata") or {}).get("resourceVersion") or rev or 0)
                rows.append((_key(obj), created, json.dumps(obj, separators=(",", ":")).encode()))
            conn.executemany("INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, value, "
                             "old_value) VALUES (?, 1, 0, ?, 0, 0, ?, NULL)", rows)
    finally:
        conn.close()


def read_state(path: str) -> dict[str, Any]:
    """The state ``write_state`` stored (empty when the database holds none)."""
    conn = _connect(path)
    try:
        meta: dict[str, Any] = {}
        objects = []
        for name, value in conn.execute("SELECT name, value FROM kine WHERE name LIKE '/registry/%' ORDER BY id"):
            data = json.loads(bytes(value).decode())
            if name == META_KEY:
                meta = data
            else:
                objects.append(data)
        return {**meta, "objects": objects}
    finally:
        conn.close()


def read_bootstrap(path: str) -> tuple[str, dict[str, Any]] | None:
    """``(key, data)`` of the bootstrap row, or None when the datastore has none yet."""
    if not os.path.exists(path):
        return None
    conn = _connect(path)
    try:
        row = conn.execute("SELECT name, value FROM kine WHERE name LIKE ? ORDER BY id DESC LIMIT 1",
                           (BOOTSTRAP_PREFIX + "%",)).fetchone()
        return (row[0], json.loads(bytes(row[1]).decode())) if row else None
    finally:
        conn.close()


def write_bootstrap(path: str, key: str, data: dict[str, Any]) -> None:
    conn = _connect(path)
    try:
        with conn:
            conn.execute("DELETE FROM kine WHERE name = ?", (key,))
            conn.execute("INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, value, "
                         "old_value) VALUES (?, 1, 0, 0, 0, 0, ?, NULL)",
                         (key, json.dumps(data, separators=(",", ":")).encode()))
    finally:
        conn.close()
