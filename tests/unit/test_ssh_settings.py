"""SSH settings checked before any connection: key files, known_hosts names."""
from __future__ import annotations

import pytest

from drtool.errors import BadInput
from drtool.inventory import parse_inventory
from drtool.remote.runner import Runner, known_hosts_name


@pytest.mark.parametrize("host,port,name", [
    ("10.0.0.5", 22, "10.0.0.5"), ("10.0.0.5", None, "10.0.0.5"), ("10.0.0.5", 2222, "[10.0.0.5]:2222"),
    ("node1.lan", 2200, "[node1.lan]:2200"), ("[10.0.0.5]:2222", 2222, "[10.0.0.5]:2222"),
])
def test_known_hosts_name(host, port, name):
    assert known_hosts_name(host, port) == name


def test_missing_key_file_is_named_before_connecting(tmp_path):
    data = {
        "cluster": {"name": "lab", "api_endpoint": "https://192.0.2.10:6443"},
        "nodes": [{"name": "node1", "host": "192.0.2.10", "role": "server"},
                  {"name": "node2", "host": "192.0.2.11", "role": "agent", "ssh_key": "keys/missing"}],
        "k3s": {"version": "v1.31.4+k3s1"},
        "flux": {"version": "v2.4.0", "provider": "github", "owner": "o", "repository": "r", "path": "clusters/x"},
    }
    inv = parse_inventory(data, tmp_path / "inv.yaml")
    with Runner(inv) as runner, pytest.raises(BadInput) as exc:
        runner.connection(inv.nodes[1])  # 192.0.2.x is never reached: the check comes first
    assert str(exc.value) == f"{tmp_path / 'inv.yaml'}: nodes[1].ssh_key: {tmp_path / 'keys/missing'}: file not found"
