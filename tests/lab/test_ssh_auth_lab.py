"""SSH as operators set it up: a passphrase-protected key in ssh-agent, and a reinstalled node
on a non-standard port (real sshd, real ssh-agent, real ssh-keygen)."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from drtool.errors import ConnectError, HostKeyError
from drtool.inventory import parse_inventory
from drtool.remote.runner import Runner

PASSPHRASE = "correct horse battery staple"


def lab_inventory(lab, tmp_path: Path, key: Path):
    spec = lab.node("node1")
    data = {
        "cluster": {"name": "lab", "api_endpoint": f"https://{spec.address}:6443"},
        "nodes": [{"name": "node1", "host": spec.address, "port": spec.ssh_port, "user": "lab", "role": "server",
                   "ssh_key": str(key)}],
        "ssh": {"known_hosts": str(lab.known_hosts_path)},
        "k3s": {"version": "v1.31.4+k3s1"},
        "flux": {"version": "v2.4.0", "provider": "github", "owner": "o", "repository": "r", "path": "clusters/x"},
    }
    return parse_inventory(data, tmp_path / "inv.yaml")


def protected_copy(lab, tmp_path: Path) -> Path:
    """The lab key re-encrypted with a passphrase (same public key, so the node accepts it)."""
    key = tmp_path / "id_ed25519_protected"
    shutil.copy(lab.key_path, key)
    key.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-f", str(key), "-P", "", "-N", PASSPHRASE], check=True, timeout=30,
                   stdin=subprocess.DEVNULL)
    return key


@pytest.fixture
def agent(tmp_path):
    """A real ssh-agent on its own socket (stopped by pid afterwards)."""
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline, "ssh-agent did not start"
            time.sleep(0.05)
        yield sock
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.skipif(not shutil.which("ssh-agent"), reason="ssh-agent not installed")
def test_passphrase_protected_key_loaded_in_the_agent_works(make_lab, tmp_path, agent, monkeypatch):
    lab = make_lab(1)
    key = protected_copy(lab, tmp_path)
    inv = lab_inventory(lab, tmp_path, key)

    # Not in the agent yet: authentication fails, and the message says how to fix it.
    monkeypatch.setenv("SSH_AUTH_SOCK", str(agent))
    with Runner(inv) as runner, pytest.raises(ConnectError) as exc:
        runner.run(inv.nodes[0], "hostname")
    assert f"{key} is passphrase-protected: load it into ssh-agent" in str(exc.value)

    askpass = tmp_path / "askpass"
    askpass.write_text(f"#!/bin/sh\necho '{PASSPHRASE}'\n")
    askpass.chmod(0o700)
    subprocess.run(["ssh-add", str(key)], check=True, timeout=30, stdin=subprocess.DEVNULL, capture_output=True,
                   env={**os.environ, "SSH_AUTH_SOCK": str(agent), "SSH_ASKPASS": str(askpass),
                        "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"})
    with Runner(inv) as runner:
        assert runner.run(inv.nodes[0], "hostname").stdout == "node1\n"


def test_changed_host_key_hint_names_the_port_and_works(make_lab, tmp_path):
    lab = make_lab(1)
    spec = lab.node("node1")
    assert spec.ssh_port != 22
    inv = lab_inventory(lab, tmp_path, lab.key_path)
    lab.rotate_host_key("node1")
    with Runner(inv) as runner, pytest.raises(HostKeyError) as exc:
        runner.run(inv.nodes[0], "hostname")
    message = str(exc.value)
    hint = message.split("`")[1]
    assert hint == f"ssh-keygen -R '[{spec.address}]:{spec.ssh_port}' -f {lab.known_hosts_path}", message
    # Following the hint removes the old entry, so the new key can be recorded.
    assert f"[{spec.address}]:{spec.ssh_port}" in lab.known_hosts_path.read_text()
    subprocess.run(hint, shell=True, check=True, timeout=30, capture_output=True)
    assert f"[{spec.address}]:{spec.ssh_port}" not in lab.known_hosts_path.read_text()
    with Runner(inv, accept_new_host_keys=True) as runner:
        assert runner.run(inv.nodes[0], "hostname").stdout == "node1\n"
