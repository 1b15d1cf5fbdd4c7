"""K3s operations as pure command builders and output parsers.

Nothing here does I/O: each function returns the shell text a phase hands to
the runner (and ``--dry-run`` prints), so builders are table-tested without SSH.
Every inventory value is shell-quoted; the cluster token never appears here: it
reaches the installer on stdin (``read -r K3S_TOKEN``), so it is in no argv,
no process list and no log.
"""
from __future__ import annotations

import shlex

from drtool.inventory import IMAGE_SUFFIXES, Inventory, Node
from drtool.remote.runner import q

BIN = "/usr/local/bin"
INSTALL_SCRIPT = "/usr/local/share/drtool/k3s-install.sh"
KUBECONFIG = "/etc/rancher/k3s/k3s.yaml"
NODE_PASSWORD = "/etc/rancher/node/password"
UNIT_DIR = "/etc/systemd/system"
DEFAULT_DATA_DIR = "/var/lib/rancher/k3s"
# What the uninstall scripts delete (DOMAIN.md): protected paths must not live under these.
WIPED_DIRS = ("/etc/rancher/k3s", "/run/k3s", "/var/lib/kubelet", "/var/lib/rancher/k3s")


def server_dir(inv: Inventory) -> str:
    return f"{inv.k3s.data_dir}/server"


def exec_args(inv: Inventory, node: Node, *, first_server: Node | None, cluster_init: bool) -> list[str]:
    """The INSTALL_K3S_EXEC words for a node: role, inventory args, labels, taints, TLS SAN, HA flags."""
    if node.role == "server":
        words = ["server", *inv.k3s.server_args, "--tls-san", inv.cluster.api_host]
        if cluster_init:
            words.append("--cluster-init")
        elif first_server is not None:
            words += ["--server", f"https://{first_server.address}:6443"]
    else:
        words = ["agent", *inv.k3s.agent_args]
    if inv.k3s.data_dir != DEFAULT_DATA_DIR:
        words += ["--data-dir", inv.k3s.data_dir]
    words += ["--node-name", node.name]
    for key, value in sorted(node.labels.items()):
        words += ["--node-label", f"{key}={value}"]
    for taint in node.taints:
        words += ["--node-taint", taint]
    return words


def install_command(
    inv: Inventory,
    node: Node,
    *,
    server_url: str | None,
    first_server: Node | None = None,
    cluster_init: bool = False,
) -> str:
    """The install command; expects the token as the first line of stdin.

    ``server_url`` set makes it an agent join (K3S_URL); a joining HA server gets
    ``--server`` in its exec args instead.
    """
    env = {
        "INSTALL_K3S_VERSION": inv.k3s.version,
        "INSTALL_K3S_EXEC": shlex.join(exec_args(inv, node, first_server=first_server, cluster_init=cluster_init)),
        "K3S_KUBECONFIG_MODE": inv.k3s.kubeconfig_mode,
        # k3s-io/k3s install.sh (service_enable_and_start): when binary, unit and env file are
        # unchanged the script prints "No change detected so skipping service start" and a
        # stopped K3s stays stopped. drtool re-runs it after a dropped session and after
        # stopping K3s (restore), so it always asks for the restart.
        "INSTALL_K3S_FORCE_RESTART": "true",
    }
    if inv.k3s.channel:
        env["INSTALL_K3S_CHANNEL"] = inv.k3s.channel
    if server_url and node.role == "agent":
        env["K3S_URL"] = server_url
    if inv.k3s.install.method == "airgap":
        env["INSTALL_K3S_SKIP_DOWNLOAD"] = "true"
        fetch = ""
    else:
        fetch = f"mkdir -p {q(INSTALL_SCRIPT.rsplit('/', 1)[0])} && curl -sfL {q(inv.k3s.install.script_url)} -o {q(INSTALL_SCRIPT)} && "
    assignments = " ".join(f"{k}={q(v)}" for k, v in env.items())
    # The token is read from stdin into the environment: never in argv or a log.
    return (
        "IFS= read -r K3S_TOKEN && export K3S_TOKEN && "
        f"{fetch}env {assignments} sh {q(INSTALL_SCRIPT)}"
    )


def images_suffix(filename: str) -> str:
    """The image-archive suffix K3s recognises in ``filename`` (longest match), or "" when none."""
    lower = filename.lower()
    return max((s for s in IMAGE_SUFFIXES if lower.endswith(s)), key=len, default="")


def airgap_uploads(inv: Inventory) -> list[tuple[str, str, str]]:
    """(inventory attribute, remote path, mode) for an air-gapped install."""
    items = [("script", INSTALL_SCRIPT, "0755"), ("binary", f"{BIN}/k3s", "0755")]
    if inv.k3s.install.images is not None:
        # K3s picks the decompressor from the file name (k3s-io/k3s pkg/agent/containerd
        # containerd.go preloadFile; watcher.go + wharfie tarfile in v1.31): a .tar.zst renamed
        # to .tar is not imported at all, so the archive keeps its own suffix.
        suffix = images_suffix(inv.k3s.install.images.name)
        items.append(("images", f"{inv.k3s.data_dir}/agent/images/k3s-airgap-images{suffix}", "0644"))
    return items


def wiped_dirs(inv: Inventory) -> tuple[str, ...]:
    """What the uninstall scripts delete; the data dir is the inventory's (``K3S_DATA_DIR``)."""
    return (*WIPED_DIRS[:-1], inv.k3s.data_dir.rstrip("/") or "/")


# A directory that is (or holds) a mount point is emptied entry by entry and the mount points
# stay, as clean_mounted_directory in k3s-io/k3s install.sh (the uninstall it generates) does.
_MOUNT_FUNCS = r"""
holds_mount() { awk -v p="$1" '$2 == p || index($2, p "/") == 1 { f = 1 } END { exit !f }' /proc/mounts; }
drtool_clean() {
  if ! holds_mount "$1"; then rm -rf "$1"; return 0; fi
  for p in "$1"/* "$1"/.[!.]*; do
    [ -e "$p" ] || [ -L "$p" ] || continue
    if [ -d "$p" ] && holds_mount "$p"; then drtool_clean "$p"; else rm -rf "$p"; fi
  done
}
drtool_check() {
  [ -e "$1" ] || [ -L "$1" ] || return 0
  if [ -d "$1" ] && holds_mount "$1"; then
    for p in "$1"/* "$1"/.[!.]*; do { [ -e "$p" ] || [ -L "$p" ]; } && drtool_check "$p"; done
  else
    echo "drtool-left: $1"; left=1
  fi
}
"""


def teardown_script(inv: Inventory, node: Node) -> str:
    """Uninstall whatever K3s is on the node, then report what is left.

    Prints ``drtool-teardown: noop`` when nothing was installed. When both the
    server and agent units exist, the real uninstall scripts skip the data wipe:
    the unit of the other role is disabled and removed first so the wipe happens.
    The uninstall scripts read the data dir from ``K3S_DATA_DIR`` in their environment.

    ``/etc/rancher/node/password`` is kept, as the uninstall keeps it: a fresh datastore
    accepts any node password (a new ``<node>.node-password.k3s`` Secret), while a restored
    one accepts only the password its Secret was made from (k3s-io/k3s v1.31
    pkg/nodepassword), so deleting it gains nothing and breaks a restore.
    """
    data_dir = q(inv.k3s.data_dir)
    script = f"""
set -u
{_MOUNT_FUNCS.strip()}
export K3S_DATA_DIR={data_dir}
srv={UNIT_DIR}/k3s.service; agt={UNIT_DIR}/k3s-agent.service
if [ -f "$srv" ] && [ -f "$agt" ]; then
  echo "drtool-teardown: both units present, removing the stale one first"
  if [ -x {BIN}/k3s-uninstall.sh ]; then stale=k3s-agent; else stale=k3s; fi
  systemctl stop "$stale" 2>/dev/null; systemctl disable "$stale" 2>/dev/null
  rm -f "{UNIT_DIR}/$stale.service" "{UNIT_DIR}/$stale.service.env"
fi
if [ -x {BIN}/k3s-uninstall.sh ]; then
  echo "drtool-teardown: running k3s-uninstall.sh"; {BIN}/k3s-uninstall.sh
elif [ -x {BIN}/k3s-agent-uninstall.sh ]; then
  echo "drtool-teardown: running k3s-agent-uninstall.sh"; {BIN}/k3s-agent-uninstall.sh
elif [ -e {BIN}/k3s ] || [ -d {data_dir} ] || [ -d /etc/rancher/k3s ]; then
  echo "drtool-teardown: leftovers without an uninstall script"
  [ -x {BIN}/k3s-killall.sh ] && {BIN}/k3s-killall.sh
  for d in {' '.join(q(d) for d in wiped_dirs(inv))}; do drtool_clean "$d"; done
  rm -f {BIN}/k3s
else
  echo "drtool-teardown: noop"
fi
"""
    return script.strip() + "\n" + _verify_clean_command(inv)


def _verify_clean_command(inv: Inventory) -> str:
    """Prints ``drtool-left: <what>`` for each leftover; exits 3 when anything is left.

    Runs at the end of :func:`teardown_script`, whose ``drtool_check`` it uses.
    Mount points under the wiped dirs (and the directories leading to them) are not
    leftovers: the real uninstall keeps them.
    """
    dirs = " ".join(q(d) for d in wiped_dirs(inv))
    return (
        "left=0; "
        "for p in $(pgrep -f '(^|/)k3s (server|agent)' 2>/dev/null); do echo drtool-left: process $p; left=1; done; "
        + f"for d in {dirs}; do drtool_check \"$d\"; done; "
        f"[ -e {BIN}/k3s ] && {{ echo drtool-left: {BIN}/k3s; left=1; }}; "
        "[ $left = 0 ] || exit 3"
    )


def parse_teardown(output: str) -> tuple[bool, list[str]]:
    """(was it a no-op, leftovers)."""
    noop = "drtool-teardown: noop" in output
    left = [line.split("drtool-left:", 1)[1].strip() for line in output.splitlines() if "drtool-left:" in line]
    return noop, left


def protected_conflicts(inv: Inventory, node: Node) -> list[str]:
    """Protected paths that the uninstall would delete: refuse before wiping."""
    bad = []
    for p in node.protected_paths:
        norm = p.rstrip("/")
        if any(norm == d or norm.startswith(d + "/") for d in wiped_dirs(inv)):
            bad.append(p)
    return bad


def installed_units_command() -> str:
    return f"for u in k3s k3s-agent; do [ -f {UNIT_DIR}/$u.service ] && echo $u; done; true"


def start_marker_command(marker: str) -> str:
    """Touch ``marker`` on the node just before K3s is (re)started."""
    return f"mkdir -p {q(marker.rsplit('/', 1)[0])} && touch {q(marker)}"


def wait_file_command(path: str, newer_than: str | None = None) -> str:
    """Succeeds once ``path`` is non-empty (and written after ``newer_than`` was touched).

    A restarted or restored server still has the previous start's ``k3s.yaml`` (or one put
    back from a backup) until the new start rewrites it: only a newer file is this start's.
    """
    if newer_than is None:
        return f"test -s {q(path)}"
    return f"test -s {q(path)} && test {q(path)} -nt {q(newer_than)}"


def datastore_backup_command(inv: Inventory, dest: str) -> str:
    """Consistent copy of the SQLite datastore to ``dest`` (prints the method used).

    Prefers SQLite's online backup API (sqlite3 CLI, then python3), which is
    consistent while K3s runs; falls back to copying the db and its WAL.
    """
    db = f"{server_dir(inv)}/db/state.db"
    py = (
        "import sqlite3,sys; s=sqlite3.connect(sys.argv[1]); d=sqlite3.connect(sys.argv[2]); "
        "s.backup(d); d.close(); s.close()"
    )
    return (
        f"umask 077; db={q(db)}; out={q(dest)}; rm -f \"$out\"; "
        "if [ ! -f \"$db\" ]; then echo drtool-datastore: none; exit 0; fi; "
        "if command -v sqlite3 >/dev/null 2>&1 && sqlite3 \"$db\" \".backup '$out'\" 2>/dev/null; then echo drtool-datastore: sqlite3-backup; "
        f"elif command -v python3 >/dev/null 2>&1 && python3 -c {q(py)} \"$db\" \"$out\" 2>/dev/null; then echo drtool-datastore: python-backup; "
        "else cp \"$db\" \"$out\" && echo drtool-datastore: copy; fi"
    )


def etcd_snapshot_command(inv: Inventory, name: str) -> str:
    """Take an etcd snapshot and print its path (embedded etcd only)."""
    snaps = f"{server_dir(inv)}/db/snapshots"
    data_dir = f" --data-dir {q(inv.k3s.data_dir)}" if inv.k3s.data_dir != DEFAULT_DATA_DIR else ""
    return (
        f"k3s etcd-snapshot save{data_dir} --name {q(name)} >/dev/null && "
        f"ls -t {q(snaps)}/{q(name)}* 2>/dev/null | head -n 1"
    )


def volumes_command(inv: Inventory) -> str:
    """List local-path volume dirs with sizes (KiB): ``<kib>\\t<path>`` lines."""
    storage = f"{inv.k3s.data_dir}/storage"
    return f"[ -d {q(storage)} ] && du -sk {q(storage)}/* 2>/dev/null; true"


RESTORE_SUFFIX = ".drtool-before-restore"


def restore_prepare_command(inv: Inventory, *, datastore: str, peer: bool = False) -> str:
    """Refuse while K3s runs, then set aside what a restored datastore must replace.

    K3s keeps its bootstrap data (CAs, keys, credentials) in the datastore and refuses to
    start when ``server/tls`` or ``server/cred`` on disk are newer than the datastore's copy
    ("... newer than datastore and could cause a cluster outage", k3s-io/k3s v1.31
    pkg/cluster/bootstrap.go ReconcileBootstrapData). A restore from before a rebuild has
    an older CA, so those dirs go aside with the database (``sqlite``), together with the
    token files and ``k3s.yaml`` (fetched afresh from the restored cluster). For embedded
    etcd (``etcd``) ``--cluster-reset`` replaces the files from the snapshot itself; peer
    servers set aside their whole ``server/db`` and certificates and join again.
    """
    srv = server_dir(inv)
    paths = [f"{srv}/token", f"{srv}/node-token", KUBECONFIG]
    if datastore == "sqlite":
        paths += [f"{srv}/db/state.db", f"{srv}/db/state.db-wal", f"{srv}/db/state.db-shm", f"{srv}/tls", f"{srv}/cred"]
    elif peer:
        paths += [f"{srv}/db", f"{srv}/tls", f"{srv}/cred"]
    moves = " ".join(q(p) for p in paths)
    return (
        "if pgrep -f '(^|/)k3s (server|agent)' >/dev/null 2>&1; then echo 'k3s is still running: stop it first' >&2; exit 3; fi; "
        f"mkdir -p {q(srv + '/db')} && "
        f"for p in {moves}; do if [ -e \"$p\" ] || [ -L \"$p\" ]; then rm -rf \"$p{RESTORE_SUFFIX}\" && mv -f \"$p\" \"$p{RESTORE_SUFFIX}\"; fi; done"
    )


def cluster_reset_command(inv: Inventory, snapshot: str) -> str:
    """Restore an etcd snapshot on the first server (token on stdin); K3s exits when done.

    As docs.k3s.io "Backup and Restore" (embedded etcd) and k3s-io/k3s v1.31 pkg/etcd:
    ``k3s server --cluster-reset --cluster-reset-restore-path=<snapshot>`` with the token the
    snapshot was taken with, K3s stopped on every server; then start K3s again.
    """
    data_dir = f" --data-dir {q(inv.k3s.data_dir)}" if inv.k3s.data_dir != DEFAULT_DATA_DIR else ""
    return ("IFS= read -r K3S_TOKEN && export K3S_TOKEN && "
            f"{BIN}/k3s server --cluster-reset --cluster-reset-restore-path={q(snapshot)}{data_dir}")


CONFIG_DIR = "/etc/rancher/k3s"


def config_files_command() -> str:
    """Lists (relative to /etc/rancher/k3s) the operator's K3s config files the uninstall deletes.

    ``config.yaml`` and the drop-ins in ``config.yaml.d/`` (flags kept in files, read by
    K3s's configfilearg parser) and ``registries.yaml`` (registry mirrors, docs.k3s.io
    "Private Registry Configuration"); ``k3s.yaml`` is K3s's own output, not listed.
    """
    return (f"cd {CONFIG_DIR} 2>/dev/null || exit 0; "
            "for f in config.yaml registries.yaml config.yaml.d/*.yaml config.yaml.d/*.yml; do "
            "[ -f \"$f\" ] && echo \"$f\"; done; true")
