"""Where a K3s server keeps its state, and etcd snapshots of it.

A single server without ``--cluster-init`` uses SQLite at ``server/db/state.db``; with
embedded etcd the data lives under ``server/db/etcd/``. The lab stores the same JSON
document in both (the lab API store's persistence file); what matters to drtool is which
path holds it and that ``etcd-snapshot`` only works with etcd.

A snapshot holds the datastore plus the cluster CAs, bound to the token's hash: restoring
it (``k3s server --cluster-reset --cluster-reset-restore-path``) needs the original
token, as real K3s's encrypted bootstrap data does.
"""
from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from drtool.lab.k3s.rootfs import RootFS

SQLITE_FILE = "server/db/state.db"
ETCD_DIR = "server/db/etcd"
ETCD_FILE = "server/db/etcd/member/snap/db"
SNAPSHOT_DIR = "server/db/snapshots"
CA_FILES = ("server-ca.crt", "server-ca.key", "client-ca.crt", "client-ca.key")


class SnapshotError(Exception):
    """The message reads like the real binary's fatal error."""


def state_path(fs: RootFS, data_dir: str, etcd: bool) -> Path:
    return fs.path(data_dir) / (ETCD_FILE if etcd else SQLITE_FILE)


def token_hash(secret: str) -> str:
    return hashlib.sha256(f"k3s-lab-bootstrap:{secret}".encode()).hexdigest()


def _etcd_state(fs: RootFS, data_dir: str) -> Path:
    base = fs.path(data_dir)
    if (base / ETCD_DIR).is_dir():
        return base / ETCD_FILE
    if (base / SQLITE_FILE).exists():
        raise SnapshotError("see server log for details: etcd datastore disabled")
    raise SnapshotError(f"etcd database not found in {data_dir}/server")


def snapshot_dir(fs: RootFS, data_dir: str, override: str = "") -> Path:
    return fs.path(override) if override else fs.path(data_dir) / SNAPSHOT_DIR


@dataclass(frozen=True)
class SnapshotInfo:
    name: str
    location: str          # file:// URL as the node sees it
    size: int
    created: str


def save_snapshot(fs: RootFS, data_dir: str, node: str, secret: str, name: str = "on-demand",
                  override_dir: str = "", now: float | None = None) -> SnapshotInfo:
    """Write ``<name>-<node>-<unix time>`` into the snapshot dir; returns its description."""
    state = _etcd_state(fs, data_dir)
    try:
        data = json.loads(state.read_text(encoding="utf-8")) if state.exists() else {"objects": []}
    except ValueError as exc:
        raise SnapshotError(f"failed to read etcd database: {exc}") from exc
    tls = fs.path(data_dir) / "server/tls"
    data["k3sBootstrap"] = {
        "tokenHash": token_hash(secret),
        "files": {f: base64.b64encode((tls / f).read_bytes()).decode() for f in CA_FILES if (tls / f).exists()},
    }
    stamp = int(now if now is not None else time.time())
    directory = snapshot_dir(fs, data_dir, override_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{node}-{stamp}"
    tmp = path.with_name(path.name + ".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, separators=(",", ":"))
    os.replace(tmp, path)
    return _info(fs, path)


def _node_path(fs: RootFS, path: Path) -> str:
    if fs.relocated:
        return "/" + str(path.relative_to(fs.root))
    return str(path)


def _info(fs: RootFS, path: Path) -> SnapshotInfo:
    st = path.stat()
    created = _dt.datetime.fromtimestamp(st.st_mtime, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return SnapshotInfo(path.name, f"file://{_node_path(fs, path)}", st.st_size, created)


def list_snapshots(fs: RootFS, data_dir: str, override_dir: str = "") -> list[SnapshotInfo]:
    """Snapshots in the local snapshot dir, oldest first."""
    _etcd_state(fs, data_dir)
    directory = snapshot_dir(fs, data_dir, override_dir)
    if not directory.is_dir():
        return []
    files = [p for p in directory.iterdir() if p.is_file() and not p.name.endswith(".part")]
    return [_info(fs, p) for p in sorted(files, key=lambda p: (p.stat().st_mtime, p.name))]


def delete_snapshots(fs: RootFS, data_dir: str, names: list[str], override_dir: str = "") -> list[str]:
    """Delete the named snapshots; returns the names that were not found."""
    _etcd_state(fs, data_dir)
    directory = snapshot_dir(fs, data_dir, override_dir)
    missing = []
    for name in names:
        target = directory / os.path.basename(name)
        if target.is_file():
            target.unlink()
        else:
            missing.append(name)
    return missing


def prune_snapshots(fs: RootFS, data_dir: str, retention: int, name: str = "on-demand",
                    override_dir: str = "") -> list[str]:
    """Delete all but the newest ``retention`` snapshots whose name starts with ``name``."""
    mine = [s for s in list_snapshots(fs, data_dir, override_dir) if s.name.startswith(f"{name}-")]
    doomed = mine[: max(0, len(mine) - retention)]
    delete_snapshots(fs, data_dir, [s.name for s in doomed], override_dir)
    return [s.name for s in doomed]


def restore_snapshot(fs: RootFS, data_dir: str, snapshot: str, secret: str) -> None:
    """Replace the etcd datastore and the cluster CAs with the snapshot's (token must match)."""
    path = fs.path(snapshot)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SnapshotError(f"failed to restore etcd snapshot: open {snapshot}: {exc.strerror}") from exc
    except ValueError as exc:
        raise SnapshotError(f"failed to restore etcd snapshot {snapshot}: not a snapshot") from exc
    boot = data.pop("k3sBootstrap", None) or {}
    if boot.get("tokenHash") != token_hash(secret):
        raise SnapshotError("starting kubernetes: preparing server: bootstrap data already found and "
                            "encrypted with different token")
    base = fs.path(data_dir)
    state = base / ETCD_FILE
    state.parent.mkdir(parents=True, exist_ok=True)
    tmp = state.with_name(".restore.tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
    os.replace(tmp, state)
    tls = base / "server/tls"
    tls.mkdir(parents=True, exist_ok=True)
    for name, b64 in (boot.get("files") or {}).items():
        if name in CA_FILES:
            target = tls / name
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(base64.b64decode(b64))
    # "Cluster reset: replacing file on disk" (bootstrap.go): the restored etcd holds these CAs.
    save_bootstrap(fs, data_dir, True, secret)


# --- bootstrap data kept in the SQLite datastore ------------------------------------------
#
# k3s-io/k3s v1.31 pkg/cluster/storage.go and bootstrap.go: the cluster CAs and keys are
# saved in the datastore under /bootstrap/<hash of the token>, encrypted with the token. On
# start (ReconcileBootstrapData) missing certificate dirs are written from the datastore; a
# file whose content differs and whose mtime is at least 3 s newer than the datastore's copy
# stops K3s; an older one is replaced from the datastore.

SYSTEM_TIME_SKEW = 3
BOOTSTRAP_DIR = "server/tls"


def bootstrap_key(secret: str) -> str:
    return "/bootstrap/" + token_hash(secret)[:12]


def _bootstrap_paths(fs: RootFS, data_dir: str) -> dict[str, Path]:
    tls = fs.path(data_dir) / BOOTSTRAP_DIR
    return {f"{data_dir}/{BOOTSTRAP_DIR}/{name}": tls / name for name in CA_FILES}


ETCD_BOOTSTRAP = "server/db/etcd/member/snap/bootstrap"


def _read_stored(fs: RootFS, data_dir: str, etcd: bool) -> tuple[str, dict] | None:
    """``(key, data)`` of the stored bootstrap data: a kine row in SQLite, a file in the lab's etcd."""
    from drtool.lab.api import kine

    if not etcd:
        return kine.read_bootstrap(str(state_path(fs, data_dir, False)))
    path = fs.path(data_dir) / ETCD_BOOTSTRAP
    if not path.exists():
        return None
    raw = json.loads(path.read_text(encoding="utf-8"))
    return raw["key"], raw["data"]


def _write_stored(fs: RootFS, data_dir: str, etcd: bool, key: str, data: dict) -> None:
    from drtool.lab.api import kine

    if not etcd:
        kine.write_bootstrap(str(state_path(fs, data_dir, False)), key, data)
        return
    path = fs.path(data_dir) / ETCD_BOOTSTRAP
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"key": key, "data": data}, fh)


def reconcile_bootstrap(fs: RootFS, data_dir: str, etcd: bool, secret: str) -> bool:
    """Bring the CA files on disk in line with the datastore's; returns whether it held any.

    Raises SnapshotError with K3s's own fatal message when the token does not open the
    stored data or a file on disk is newer than the datastore's copy.
    """
    row = _read_stored(fs, data_dir, etcd)
    if row is None:
        return False
    key, data = row
    if not secret or key != bootstrap_key(secret):
        raise SnapshotError("starting kubernetes: preparing server: bootstrap data already found and "
                            "encrypted with different token")
    files = data.get("files") or {}
    paths = _bootstrap_paths(fs, data_dir)
    tls = fs.path(data_dir) / BOOTSTRAP_DIR
    if tls.is_dir() and any(tls.iterdir()):
        newer_on_disk = []
        for node_path, disk in paths.items():
            stored = files.get(disk.name)
            if stored is None or not disk.exists():
                continue
            if disk.read_bytes() != base64.b64decode(stored["content"]):
                if int(disk.stat().st_mtime) - int(stored["timestamp"]) >= SYSTEM_TIME_SKEW:
                    newer_on_disk.append(node_path)
        if newer_on_disk:
            raise SnapshotError(", ".join(sorted(newer_on_disk)) + " newer than datastore and could cause a cluster "
                                "outage. Remove the file(s) from disk and restart to be recreated from datastore.")
    tls.mkdir(parents=True, exist_ok=True)
    for name, stored in files.items():
        if name in CA_FILES:
            target = tls / name
            content = base64.b64decode(stored["content"])
            if not target.exists() or target.read_bytes() != content:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(content)
    return True


def save_bootstrap(fs: RootFS, data_dir: str, etcd: bool, secret: str) -> None:
    """Store the CA files (content and mtime) in the datastore under the token's key."""
    files = {}
    for path in _bootstrap_paths(fs, data_dir).values():
        if path.exists():
            files[path.name] = {"content": base64.b64encode(path.read_bytes()).decode(),
                                "timestamp": int(path.stat().st_mtime)}
    _write_stored(fs, data_dir, etcd, bootstrap_key(secret), {"files": files})
