"""Backup: keep what the wipe would destroy, before anything is destroyed.

From each server: the K3s token, a consistent datastore copy (SQLite backup API,
or an etcd snapshot with embedded etcd) and the kubeconfig; from the old cluster,
when it still answers, the Flux secrets that are not in Git; from every node, the
list of local-path volumes (archived when the inventory asks). Everything goes
to ``runs/<id>/backup/`` (0700 dir, 0600 files) with a SHA-256 manifest that is
read back and verified. Any failure here stops the run before the wipe.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from drtool.errors import PermanentError
from drtool.files import write_private
from drtool.inventory import Node
from drtool.phases import image_cache
from drtool.phases.context import Context
from drtool.phases.result import PhaseResult, ok, skipped
from drtool.remote import image_cache as remote_images
from drtool.remote import k3s
from drtool.remote.runner import q

NAME = "backup"
FLUX_SECRETS = ("sops-age", "sops-gpg", "flux-system")
CONFIG_BACKUP = "etc-rancher-k3s"   # backup/<node>/etc-rancher-k3s/<file>: /etc/rancher/k3s/<file>
SEALED_SECRETS_KEY_LABEL = "sealedsecrets.bitnami.com/sealed-secrets-key"
SEALED_SECRETS_FILE = "sealed-secrets-keys.json"


def _node_temp(ctx: Context, what: str, suffix: str) -> str:
    """A temp path on the node unique to this run (/var/tmp may be shared by runs of other
    clusters: the run id names the cluster and the second it started)."""
    return f"/var/tmp/drtool-{what}-{ctx.run.record['run_id']}{suffix}"


def _fetch_binary(ctx: Context, node: Node, remote: str, local: Path, step: str) -> None:
    """Copy a root-only remote file here: base64 over the SSH channel (no temp copies left on the node)."""
    import base64

    res = ctx.runner.run(node, f"base64 {q(remote)}", sudo=True, step=step)
    write_private(local, base64.b64decode(res.stdout))


def _backup_node(ctx: Context, node: Node, dest: Path) -> dict:
    inv, runner = ctx.inv, ctx.runner
    info: dict = {"node": node.name, "role": node.role, "files": [], "volumes": []}
    units = runner.run(node, k3s.installed_units_command(), sudo=True, step="backup").stdout.split()
    info["installed"] = units
    if node.role == "server" and "k3s" in units:
        srv = k3s.server_dir(inv)
        with ctx.step(node, "token"):
            token = runner.read_secret(node, f"{srv}/token", label="old-k3s-token", step="backup")
            if token is not None:
                write_private(dest / node.name / "token", token.reveal() + "\n")
                info["files"].append("token")
        with ctx.step(node, "datastore"):
            etcd = runner.run(node, f"test -d {q(srv)}/db/etcd", sudo=True, check=False, step="backup").ok
            if etcd:
                name = f"drtool-{ctx.run.record['run_id']}"
                snap = runner.run(node, k3s.etcd_snapshot_command(inv, name), sudo=True, step="backup").stdout.strip()
                if not snap:
                    raise PermanentError(f"{node.name}: etcd snapshot produced no file")
                _fetch_binary(ctx, node, snap, dest / node.name / "etcd-snapshot", "backup")
                info["files"].append("etcd-snapshot")
                info["datastore"] = "etcd-snapshot"
            else:
                tmp = _node_temp(ctx, "state", ".db")
                method = runner.run(node, k3s.datastore_backup_command(inv, tmp), sudo=True, step="backup").stdout
                if "drtool-datastore: none" not in method:
                    try:
                        _fetch_binary(ctx, node, tmp, dest / node.name / "state.db", "backup")
                    finally:
                        runner.run(node, f"rm -f {q(tmp)}", sudo=True, check=False, step="backup")
                    info["files"].append("state.db")
                info["datastore"] = method.strip().split(": ")[-1] if method.strip() else "none"
        with ctx.step(node, "kubeconfig"):
            kc = runner.run(node, f"cat {q(k3s.KUBECONFIG)}", sudo=True, check=False, step="backup")
            if kc.ok:
                write_private(dest / node.name / "k3s.yaml", kc.stdout.encode())
                info["files"].append("k3s.yaml")
    with ctx.step(node, "k3s config"):
        # The uninstall deletes /etc/rancher/k3s whole: flags kept in config files and registry
        # mirrors go with it. Kept 0600 (they may hold tokens or registry credentials).
        listing = runner.run(node, k3s.config_files_command(), sudo=True, check=False, step="backup").stdout
        info["k3s_config_files"] = []
        for rel in (line.strip() for line in listing.splitlines()):
            if rel and ".." not in rel.split("/") and not rel.startswith("/"):
                _fetch_binary(ctx, node, f"{k3s.CONFIG_DIR}/{rel}", dest / node.name / CONFIG_BACKUP / rel, "backup")
                info["k3s_config_files"].append(rel)
    with ctx.step(node, "node password"):
        # What a restored datastore's node-password Secret was made from (restore-datastore puts it back).
        password = runner.read_secret(node, k3s.NODE_PASSWORD, label="node-password", step="backup")
        if password is not None:
            write_private(dest / node.name / "node-password", password.reveal() + "\n")
            info["files"].append("node-password")
    vols = runner.run(node, k3s.volumes_command(inv), sudo=True, step="backup").stdout
    for line in vols.splitlines():
        size, _, path = line.partition("\t")
        if path:
            info["volumes"].append({"path": path, "kib": int(size) if size.isdigit() else None})
    if inv.backup.archive_volumes and info["volumes"]:
        with ctx.step(node, "volumes"):
            tmp = _node_temp(ctx, "volumes", ".tgz")
            runner.run(node, f"umask 077; tar -czf {q(tmp)} -C {q(inv.k3s.data_dir)} storage", sudo=True, step="backup")
            try:
                _fetch_binary(ctx, node, tmp, dest / node.name / "volumes.tgz", "backup")
            finally:
                runner.run(node, f"rm -f {q(tmp)}", sudo=True, check=False, step="backup")
            info["files"].append("volumes.tgz")
    return info


OLD_CLUSTER_TIMEOUT = (3.0, 10.0)
"""(connect, read) seconds per request to the old cluster: it may be half dead, and one short
attempt is all the backup gives it."""


def _from_old_cluster(ctx: Context, dest: Path, servers_info: list[dict]) -> list[str]:
    """While the old cluster answers (one short attempt): save its Flux secrets and sealed-secrets
    keys, and note which images its pods use (for the image cache); returns what was saved.

    Through ``ctx.api_client`` with the old cluster's own kubeconfig (pointed at the server's
    address), so a dry run records these reads like every other request."""
    import yaml

    from drtool.kube.client import KubeTransport, NotFound, api_client_for_config

    for info in servers_info:
        kc_file = dest / info["node"] / "k3s.yaml"
        if not kc_file.exists():
            continue
        node = ctx.inv.node(info["node"])
        cfg = yaml.safe_load(kc_file.read_text())
        for cluster in cfg.get("clusters", []):
            server = cluster.get("cluster", {}).get("server", "")
            cluster["cluster"]["server"] = server.replace("127.0.0.1", node.address).replace("localhost", node.address)
        try:
            client = api_client_for_config(cfg, ctx.api_client)
        except Exception as exc:  # noqa: BLE001 - an unreadable kubeconfig: nothing to save, never fatal
            ctx.progress.print(f"    old cluster's kubeconfig could not be used ({type(exc).__name__}); continuing")
            return []
        api = KubeTransport(client, timeout=OLD_CLUSTER_TIMEOUT)
        try:
            saved = []
            for name in FLUX_SECRETS:
                try:
                    secret = api.get_json(f"/api/v1/namespaces/flux-system/secrets/{name}")
                except NotFound:
                    continue
                write_private(dest / "flux-secrets" / f"{name}.json", json.dumps(_clean(secret)).encode())
                saved.append(name)
            keys = _sealed_secrets_keys(api, dest)
            if keys:
                saved.append(f"sealed-secrets keys ({keys})")
            _images_in_use(ctx, api)
            return saved
        except Exception as exc:  # noqa: BLE001 - the old cluster may be half dead: that is exactly why we rebuild
            ctx.progress.print(f"    old cluster did not answer for Flux secrets ({type(exc).__name__}); continuing")
            return []
        finally:
            client.close()
    return []


def _images_in_use(ctx: Context, api) -> None:
    """Which images each node's pods use, so the image cache keeps those and not old leftovers."""
    try:
        pods = api.get_json("/api/v1/pods", category="list")
        ctx.state[image_cache.IN_USE] = remote_images.images_in_use(pods)
    except Exception as exc:  # noqa: BLE001 - the cache then keeps every tagged image; never fatal
        ctx.progress.print(f"    old cluster did not list its pods ({type(exc).__name__}); every tagged image is kept")


def _clean(obj: dict) -> dict:
    """An object as the API returned it, without what the API server sets (restore creates it anew)."""
    for k in ("resourceVersion", "uid", "creationTimestamp", "managedFields", "ownerReferences"):
        obj.get("metadata", {}).pop(k, None)
    return obj


def _sealed_secrets_keys(api, dest: Path) -> int:
    """Save the sealed-secrets controller's key pairs, when the controller has made any.

    They are what decrypts every SealedSecret in Git, and they live only in the cluster:
    Secrets labelled ``sealedsecrets.bitnami.com/sealed-secrets-key`` (bitnami-labs/sealed-secrets
    pkg/controller/keys.go SealedSecretsKeyLabel; "active" or "compromised") in the controller's
    namespace (kube-system by default, any namespace with the Helm chart), so every namespace is
    searched. A new controller that finds them at start uses them instead of generating new ones
    (pkg/controller/main.go initKeyRegistry), which is why restore_secrets puts them back first.
    """
    found = api.get_json("/api/v1/secrets", {"labelSelector": SEALED_SECRETS_KEY_LABEL}, category="list")
    items = [_clean(s) for s in found.get("items") or []]
    if items:
        write_private(dest / "flux-secrets" / SEALED_SECRETS_FILE,
                      json.dumps({"apiVersion": "v1", "kind": "List", "items": items}).encode())
    return len(items)


def write_manifest(dest: Path) -> Path:
    """SHA-256 of every backup file, then read back and verified."""
    entries = {}
    for path in sorted(dest.rglob("*")):
        if path.is_file() and path.name != "manifest.json" and not path.name.startswith("."):
            entries[str(path.relative_to(dest))] = {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "bytes": path.stat().st_size}
    manifest = dest / "manifest.json"
    write_private(manifest, json.dumps({"created_at": time.time(), "files": entries}, indent=2).encode())
    verify_manifest(dest)
    return manifest


def verify_manifest(dest: Path) -> int:
    """Check every file against the manifest; returns the count, raises on mismatch."""
    data = json.loads((dest / "manifest.json").read_text())
    for rel, meta in data["files"].items():
        digest = hashlib.sha256((dest / rel).read_bytes()).hexdigest()
        if digest != meta["sha256"]:
            raise PermanentError(f"backup verification failed: {rel} does not match its SHA-256")
    return len(data["files"])


def run(ctx: Context) -> PhaseResult:
    if ctx.options.skip_backup:
        ctx.run.record["flags"]["skip_backup"] = True
        return skipped("skipped (--skip-backup): nothing was saved before the wipe")
    try:
        dest = ctx.run.backup_dir
        probe = dest / ".write-test"
        write_private(probe, b"ok")
        probe.unlink()
    except OSError as exc:
        raise PermanentError(f"backup directory {ctx.run.dir / 'backup'} is not writable: {exc.strerror}") from None
    results = ctx.runner.fan_out(ctx.inv.nodes, lambda n: _backup_node(ctx, n, dest)).raise_on_failure("backup")
    infos = list(results.values())
    servers = [i for i in infos if i["role"] == "server"]
    saved = _from_old_cluster(ctx, dest, servers)
    images_note = image_cache.export(ctx)   # last: the wipe follows, the cache never stops it
    write_private(dest / "nodes.json", json.dumps(infos, indent=2).encode())
    manifest = write_manifest(dest)
    ctx.state["backup_manifest"] = str(manifest)
    # Teardown refuses to wipe volumes with data unless they are archived here.
    ctx.state["volumes_archived"] = [i["node"] for i in infos if "volumes.tgz" in i["files"]]
    count = verify_manifest(dest)
    vols = sum(len(i["volumes"]) for i in infos)
    configs = "; ".join(f"{i['node']}: {', '.join(i['k3s_config_files'])}" for i in infos if i.get("k3s_config_files"))
    return ok(f"{count} files verified; flux secrets: {', '.join(saved) or 'none'}; {_volumes_summary(infos)}; "
              f"K3s config files: {configs or 'none'}{images_note}",
              files=count, flux_secrets=list(saved), volumes=vols,
              k3s_config_files={i["node"]: i["k3s_config_files"] for i in infos if i.get("k3s_config_files")})



def _volumes_summary(infos: list[dict]) -> str:
    """Each local-path volume with its size, and whether it was archived (the report shows this)."""
    from drtool.remote.volumes import human_size

    listed = [(i["node"], v, "volumes.tgz" in i["files"]) for i in infos for v in i["volumes"]]
    if not listed:
        return "no local-path volumes"
    return f"{len(listed)} local-path volume(s): " + "; ".join(
        f"{node}:{v['path']} ({human_size(v['kib'])}, {'archived' if archived else 'not archived'})"
        for node, v, archived in listed)
