"""drtool against the lab where real K3s differs from a naive reading: rebuilds with a data dir of
the inventory's own, mount points under it, config files, restores and node passwords."""
from __future__ import annotations

import json
import shlex
import sqlite3
import subprocess
import sys

import pytest

from .fulllab import REPO, start_full_lab, stop_full_lab_dir

pytestmark = pytest.mark.slow

DATA_DIR = "/var/lib/k3s-data"


@pytest.fixture(scope="module")
def lab():
    def custom(data):
        data["k3s"]["data_dir"] = DATA_DIR
    full = start_full_lab("127.0.150", nodes=2, mutate=custom)
    yield full
    stop_full_lab_dir(full.lab)


def node_sh(lab, node: str, command: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """A root shell command on a lab node, over its real sshd."""
    return subprocess.run(["ssh", "-F", str(lab.lab.ssh_config_path), "-o", "BatchMode=yes", node,
                           "sudo -n sh -c " + shlex.quote(command)],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def rebuild(lab, *extra: str):
    res = lab.inv("rebuild", "-i", str(lab.inventory), "--yes", *extra, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    return lab.runs_list()[-1]


def standing_cluster(lab):
    """The run dir of the rebuild that made the cluster running now, if the module's last run was
    a successful rebuild; else a new rebuild's. Tests that only need "a cluster built with
    DATA_DIR" share it instead of paying a rebuild each, and still pass alone or in any order."""
    runs = lab.runs_list()
    if runs and (runs[-1] / "journal.json").is_file() and (runs[-1] / "kubeconfig").is_file():
        journal = json.loads((runs[-1] / "journal.json").read_text())
        if journal.get("kind") == "rebuild" and journal.get("status") == "succeeded":
            return runs[-1]
    return rebuild(lab)


def test_the_inventory_data_dir_is_used_for_install_backup_and_wipe(lab):
    standing_cluster(lab)
    for node in ("node1", "node2"):
        assert not lab.node_file(node, "/var/lib/rancher/k3s").exists(), node
    assert lab.node_file("node1", f"{DATA_DIR}/server/db/state.db").exists()
    assert lab.node_file("node1", f"{DATA_DIR}/server/token").exists()
    # Something K3s never wrote: the second rebuild's uninstall must wipe it with the data dir.
    stale = lab.node_file("node1", f"{DATA_DIR}/server/stale-marker")
    stale.write_text("old")
    run = rebuild(lab)
    assert not stale.exists()
    assert (run / "backup" / "node1" / "token").exists() and (run / "backup" / "node1" / "state.db").exists()
    # state.db is a real SQLite database: the backup went through SQLite's online backup API.
    node1 = next(n for n in json.loads((run / "backup" / "nodes.json").read_text()) if n["node"] == "node1")
    assert node1["datastore"] in ("sqlite3-backup", "python-backup"), node1
    with sqlite3.connect(run / "backup" / "node1" / "state.db") as conn:
        assert conn.execute("SELECT count(*) FROM kine WHERE name LIKE '/registry/%'").fetchone()[0] > 10
    commands = (run / "commands.log").read_text()
    assert f"K3S_DATA_DIR={DATA_DIR}" in commands and f"--data-dir {DATA_DIR}" in commands


def test_mount_points_under_the_data_dir_are_not_leftovers(lab):
    if not lab.node_file("node2", f"{DATA_DIR}/agent").exists():
        rebuild(lab)
    mounted = node_sh(lab, "node2", f"mkdir -p {DATA_DIR}/storage && mount -t tmpfs lab-volumes {DATA_DIR}/storage && "
                                    f"echo data > {DATA_DIR}/storage/pvc-1")
    assert mounted.returncode == 0, mounted.stderr
    try:
        run = rebuild(lab)
        journal = json.loads((run / "journal.json").read_text())
        assert journal["status"] == "succeeded"
        # As the real uninstall: the mount point stays, what was in it is gone.
        left = node_sh(lab, "node2", f"grep -c ' {DATA_DIR}/storage ' /proc/mounts; ls -A {DATA_DIR}/storage")
        assert left.stdout.split()[0] == "1" and "pvc-1" not in left.stdout
    finally:
        node_sh(lab, "node2", f"umount {DATA_DIR}/storage")


def test_only_a_kubeconfig_written_after_the_start_marker_counts(lab):
    from drtool.remote import k3s

    if not lab.node_file("node1", k3s.KUBECONFIG).exists():
        rebuild(lab)
    marker = "/run/drtool/start-test"
    wait = k3s.wait_file_command(k3s.KUBECONFIG, marker)
    assert node_sh(lab, "node1", k3s.start_marker_command(marker)).returncode == 0
    # The previous start's file (or one put back from a backup) is not this start's.
    assert node_sh(lab, "node1", wait).returncode != 0
    assert node_sh(lab, "node1", "systemctl restart k3s").returncode == 0
    assert node_sh(lab, "node1", wait).returncode == 0


PROGRAM = ("from invoke import Program, Collection; from drtool.tasks import runbook; "
           "Program(namespace=Collection.from_module(runbook), binary='inv').run()")


def _core(run_dir):
    from kubernetes import client, config
    return client.CoreV1Api(config.new_client_from_config(str(run_dir / "kubeconfig")))


def test_restore_a_backup_taken_before_a_full_rebuild(lab):
    first = standing_cluster(lab)                            # cluster generation A
    _core(first).create_namespaced_config_map("default", {"metadata": {"name": "generation-a"}, "data": {"k": "v"}})
    old_ca = lab.node_file("node1", f"{DATA_DIR}/server/tls/server-ca.crt").read_bytes()
    second = rebuild(lab)                                    # generation B: its backup holds A's datastore
    assert (second / "backup" / "node2" / "node-password").exists()
    assert lab.node_file("node1", f"{DATA_DIR}/server/tls/server-ca.crt").read_bytes() != old_ca
    assert "generation-a" not in [c.metadata.name for c in _core(second).list_namespaced_config_map("default").items]

    res = subprocess.run([sys.executable, "-c", PROGRAM, "run", "restore-datastore", "-i", str(lab.inventory), "--yes",
                          "--approve", "confirm", "--param", f"run={second.name}"], cwd=REPO, capture_output=True,
                         text=True, env=lab.env(), timeout=300, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    restored = lab.runs_list()[-1]
    # Generation A is back: its CA (from the datastore's bootstrap data), its objects, both nodes.
    assert lab.node_file("node1", f"{DATA_DIR}/server/tls/server-ca.crt").read_bytes() == old_ca
    assert lab.node_file("node1", f"{DATA_DIR}/server/tls.drtool-before-restore").is_dir()
    api = _core(restored)
    assert "generation-a" in [c.metadata.name for c in api.list_namespaced_config_map("default").items]
    ready = {n.metadata.name for n in api.list_node().items
             if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])}
    assert ready == {"node1", "node2"}


def test_k3s_config_files_survive_the_rebuild(lab):
    if not lab.node_file("node2", "/usr/local/bin/k3s").exists():
        rebuild(lab)
    conf = "node-label:\n  - from-config=yes\n"
    registries = "mirrors:\n  docker.io:\n    endpoint: [\"https://registry.lab.example:5000\"]\n"
    wrote = node_sh(lab, "node2", f"mkdir -p /etc/rancher/k3s/config.yaml.d && printf %s {shlex.quote(conf)} > "
                                  "/etc/rancher/k3s/config.yaml && echo 'kubelet-arg+: [max-pods=120]' > "
                                  "/etc/rancher/k3s/config.yaml.d/10-kubelet.yaml && "
                                  f"printf %s {shlex.quote(registries)} > /etc/rancher/k3s/registries.yaml")
    assert wrote.returncode == 0, wrote.stderr
    run = rebuild(lab)
    backup = run / "backup" / "node2" / "etc-rancher-k3s"
    assert (backup / "config.yaml").read_text() == conf
    assert (backup / "registries.yaml").stat().st_mode & 0o777 == 0o600
    assert (backup / "config.yaml.d" / "10-kubelet.yaml").exists()
    # Put back before the install: the agent registered with the label its config file gives.
    assert lab.node_file("node2", "/etc/rancher/k3s/registries.yaml").read_text() == registries
    node2 = _core(run).read_node("node2")
    assert node2.metadata.labels.get("from-config") == "yes"
    journal = json.loads((run / "journal.json").read_text())
    messages = {p["name"]: p.get("message", "") for p in journal["phases"]}
    assert "node2: config.yaml, registries.yaml, config.yaml.d/10-kubelet.yaml" in messages["backup"]
    assert "K3s config files put back: node2" in messages["join_agents"]
    report = (run / "report.md").read_text()
    assert "registries.yaml" in report


def test_preflight_refuses_an_enforcing_rpm_node_without_k3s_selinux(lab):
    # The lab's nodes are Debian: node2 is made to look like an enforcing RHEL-family node.
    fakes = {"/etc/redhat-release": "Rocky Linux release 9.4 (Blue Onyx)\n",
             "/usr/local/bin/getenforce": "#!/bin/sh\necho Enforcing\n"}
    for path, text in fakes.items():
        f = lab.node_file("node2", path)
        f.write_text(text)
        f.chmod(0o755)
    rpm = lab.node_file("node2", "/usr/local/bin/rpm")
    try:
        res = lab.inv("preflight", "-i", str(lab.inventory), "--json")
        assert res.returncode == 3, res.stdout[-2000:] + res.stderr
        check = next(c for c in json.loads(res.stdout)["checks"] if c["target"] == "node2" and c["name"] == "selinux")
        assert check["state"] == "fail" and "k3s-selinux" in check["detail"], check
        # Once the policy package is there (rpm -q answers yes), preflight lets it through.
        rpm.write_text('#!/bin/sh\n[ "$*" = "-q --quiet k3s-selinux" ]\n')
        rpm.chmod(0o755)
        res = lab.inv("preflight", "-i", str(lab.inventory), "--json")
        check = next(c for c in json.loads(res.stdout)["checks"] if c["target"] == "node2" and c["name"] == "selinux")
        assert check["state"] == "pass", check
    finally:
        for path in (*fakes, "/usr/local/bin/rpm"):
            lab.node_file("node2", path).unlink(missing_ok=True)
