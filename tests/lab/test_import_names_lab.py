"""`inv inventory.import-ansible --kubeconfig`: node names of hosts listed by address, read from a
running cluster's Node objects over the real HTTPS API (the lab API server, official client)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from tests.lab.test_api_conformance import TOKEN, ServerThread

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
INV = Path(sys.executable).parent / "inv"
ANSIBLE = """
k3s_cluster:
  children:
    server:
      hosts:
        10.0.5.11:
    agent:
      hosts:
        10.0.5.12:
        10.0.5.13:
  vars:
    k3s_version: v1.31.4+k3s1
"""


def node(name: str, *addresses: tuple[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"addresses": [{"type": t, "address": a} for t, a in addresses]}}


@pytest.fixture
def cluster(tmp_path):
    st = ServerThread(state_dir=tmp_path / "api", tokens=[TOKEN], bookmark_interval=0.2)
    try:
        v1 = client.CoreV1Api(config.new_client_from_config(config_file=str(tmp_path / "api" / "kubeconfig.yaml")))
        for n in (node("pi-master", ("InternalIP", "10.0.5.11"), ("Hostname", "pi-master")),
                  node("pi-worker-1", ("InternalIP", "10.0.5.12")),
                  node("pi-worker-2", ("InternalIP", "10.0.5.13"))):
            created = v1.create_node(n)
            # status is a subresource: the addresses go in through it, as the kubelet writes them.
            v1.patch_node_status(created.metadata.name, {"status": n["status"]})
        yield tmp_path / "api" / "kubeconfig.yaml"
    finally:
        st.close()


def test_names_come_from_the_cluster_and_hand_given_ones_win(cluster, tmp_path):
    src = tmp_path / "inventory.yml"
    src.write_text(ANSIBLE)
    res = subprocess.run([str(INV), "inventory.import-ansible", str(src), "--kubeconfig", str(cluster),
                          "--node-name", "10.0.5.13=spare"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    nodes = yaml.safe_load(res.stdout)["nodes"]
    assert [(n["name"], n["host"]) for n in nodes] == [("pi-master", "10.0.5.11"), ("pi-worker-1", "10.0.5.12"),
                                                       ("spare", "10.0.5.13")]


def test_an_unreachable_cluster_is_one_line(tmp_path):
    src = tmp_path / "inventory.yml"
    src.write_text(ANSIBLE)
    res = subprocess.run([str(INV), "inventory.import-ansible", str(src), "--kubeconfig", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert f"--kubeconfig {tmp_path / 'none'}: cannot list the cluster's nodes" in res.stderr
