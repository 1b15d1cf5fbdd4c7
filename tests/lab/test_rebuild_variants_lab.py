"""Rebuild variants on the lab: HA servers with embedded etcd (rebuilt, then restored from an etcd
snapshot), ssh_config aliases, slices, kubeconfig merge, and the double-unit uninstall case."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from .fulllab import REPO, start_full_lab, stop_full_lab_dir
from .test_k3s_facts_lab import PROGRAM, _core, rebuild, standing_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def lab3():
    def ha(data):
        # node1 and node2 are servers (embedded etcd, --cluster-init then --server); node3 is the agent.
        data["nodes"][1]["role"] = "server"
        data["nodes"][1].pop("taints", None)
        data["nodes"][2]["labels"] = {"hardware": "heavy"}
        data["nodes"][2]["taints"] = ["heavy=true:NoSchedule"]
        data["converge"]["unschedulable_grace"] = "10s"
    full = start_full_lab("127.0.111", nodes=3, mutate=ha)
    yield full
    stop_full_lab_dir(full.lab)


def test_ha_rebuild_twice_with_etcd_snapshot_backup(lab3):
    for attempt in (1, 2):
        res = lab3.inv("rebuild", "-i", str(lab3.inventory), "--yes", timeout=300)
        assert res.returncode == 0, f"attempt {attempt}\n{res.stdout[-3000:]}\n{res.stderr[-2000:]}"
    run = lab3.runs_list()[-1]
    journal = json.loads((run / "journal.json").read_text())
    install = next(p for p in journal["phases"] if p["name"] == "install_servers")
    assert "HA, embedded etcd" in install["message"]
    # The second run backed up the first run's etcd cluster with a snapshot, not a file copy.
    nodes = json.loads((run / "backup" / "nodes.json").read_text())
    node1 = next(n for n in nodes if n["node"] == "node1")
    assert node1.get("datastore") == "etcd-snapshot", node1
    assert (run / "backup" / "node1" / "etcd-snapshot").stat().st_size > 0
    commands = (run / "commands.log").read_text()
    assert "--cluster-init" in commands and "--server https://" in commands


def test_etcd_snapshot_restore_with_cluster_reset(lab3):
    """Restoring an HA cluster (embedded etcd) from a snapshot taken before a full rebuild.

    Generation A is the cluster standing (the HA rebuild above, or a new one when this runs alone)."""
    first = standing_cluster(lab3)                            # generation A, two servers with etcd
    _core(first).create_namespaced_config_map("default", {"metadata": {"name": "generation-a"}})
    second = rebuild(lab3)                                    # generation B; its backup: A's snapshot
    assert (second / "backup" / "node1" / "etcd-snapshot").exists()
    res = subprocess.run([sys.executable, "-c", PROGRAM, "run", "restore-datastore", "-i", str(lab3.inventory),
                          "--yes", "--approve", "confirm", "--param", f"run={second.name}"], cwd=REPO,
                         capture_output=True, text=True, env=lab3.env(), timeout=400, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    restored = lab3.runs_list()[-1]
    commands = (restored / "commands.log").read_text()
    assert "--cluster-reset --cluster-reset-restore-path=" in commands
    api = _core(restored)
    assert "generation-a" in [c.metadata.name for c in api.list_namespaced_config_map("default").items]
    ready = {n.metadata.name for n in api.list_node().items
             if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])}
    assert ready == {"node1", "node2", "node3"}


def test_slice_from_bootstrap_fetches_kubeconfig_and_merges(lab3, tmp_path):
    # An operator's kubeconfig that still holds the OLD cluster's CA and credentials, and another cluster.
    old = {"apiVersion": "v1", "kind": "Config", "current-context": "work",
           "clusters": [{"name": "lab", "cluster": {"server": "https://stale:6443", "certificate-authority-data": "T0xEQ0E="}},
                        {"name": "work", "cluster": {"server": "https://work:6443"}}],
           "users": [{"name": "lab", "user": {"token": "old-credential-value"}}, {"name": "work", "user": {}}],
           "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "lab"}},
                        {"name": "work", "context": {"cluster": "work", "user": "work"}}]}
    kc = tmp_path / "config"
    kc.write_text(yaml.safe_dump(old))
    res = lab3.inv("rebuild", "-i", str(lab3.inventory), "--yes", "--from", "kubeconfig", "--to", "kubeconfig",
                   "--merge-kubeconfig", env=lab3.env(KUBECONFIG=str(kc)))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    merged = yaml.safe_load(kc.read_text())
    assert [c["name"] for c in merged["clusters"]] == ["work", "lab"]
    assert "T0xEQ0E=" not in kc.read_text() and "old-credential-value" not in kc.read_text()
    assert merged["current-context"] == "lab"
    assert oct(kc.stat().st_mode & 0o777) == "0o600"
    # A new run sliced at bootstrap has no kubeconfig of its own yet: it fetches one.
    res = lab3.inv("rebuild", "-i", str(lab3.inventory), "--yes", "--from", "bootstrap", timeout=240)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    run = lab3.runs_list()[-1]
    journal = json.loads((run / "journal.json").read_text())
    assert [p["name"] for p in journal["phases"]] == ["bootstrap", "converge"]
    assert (run / "kubeconfig").exists()


def test_double_unit_node_is_wiped_completely(lab3):
    """Both k3s.service and k3s-agent.service on one node: the real uninstall would skip the data wipe."""
    node = lab3.lab.node("node3")
    root = lab3.lab.node_root("node3")
    unit_dir = root / "etc" / "systemd" / "system"
    assert (unit_dir / "k3s-agent.service").exists()
    # A stale server unit left by an earlier role, and data that must go.
    (unit_dir / "k3s.service").write_text((unit_dir / "k3s-agent.service").read_text())
    res = lab3.inv("rebuild", "-i", str(lab3.inventory), "--yes", "--to", "teardown", timeout=240)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    root = lab3.lab.node_root("node3")
    assert not (root / "var" / "lib" / "rancher" / "k3s").exists()
    assert not (root / "etc" / "systemd" / "system" / "k3s.service").exists()
    # Kept, as the uninstall keeps it: a restored datastore checks the node against it.
    assert (root / "etc" / "rancher" / "node" / "password").exists()
    assert node.name == "node3"


def test_ssh_config_aliases(lab3):
    """Hosts given as ~/.ssh/config-style aliases (HostName, Port, User, IdentityFile from ssh_config)."""
    data = yaml.safe_load(lab3.inventory.read_text())
    for n in data["nodes"]:
        n["host"] = n["name"]
        for key in ("port", "user", "ssh_key"):
            n.pop(key, None)
    data["ssh"]["config"] = str(lab3.lab.ssh_config_path)
    alias_inv = lab3.inventory.with_name("alias.yaml")
    alias_inv.write_text(yaml.safe_dump(data))
    res = lab3.inv("preflight", "-i", str(alias_inv), "--json")
    checks = json.loads(res.stdout)["checks"]
    ssh = {c["target"]: c["state"] for c in checks if c["name"] == "ssh"}
    assert ssh == {"node1": "pass", "node2": "pass", "node3": "pass"}, res.stdout
