"""Restoring an HA cluster (embedded etcd) from a snapshot taken before a full rebuild."""
from __future__ import annotations

import subprocess
import sys

import pytest

from .fulllab import REPO, start_full_lab, stop_full_lab_dir
from .test_k3s_facts_lab import PROGRAM, _core, rebuild

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def lab3():
    def ha(data):
        data["nodes"][1]["role"] = "server"
        data["nodes"][1].pop("taints", None)
        data["nodes"][1].pop("labels", None)
        data["nodes"][1].pop("protected_paths", None)
        data["nodes"][2]["labels"] = {"hardware": "heavy"}
        data["nodes"][2]["taints"] = ["heavy=true:NoSchedule"]
    full = start_full_lab("127.0.151", nodes=3, mutate=ha)
    yield full
    stop_full_lab_dir(full.lab)


def test_etcd_snapshot_restore_with_cluster_reset(lab3):
    first = rebuild(lab3)                                     # generation A, two servers with etcd
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
