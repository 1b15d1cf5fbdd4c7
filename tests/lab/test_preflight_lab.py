"""`inv preflight` against a 3-node lab: pass, a stopped node, changed and unknown host keys, quoting."""
from __future__ import annotations

import json
import subprocess
import time

import pytest

from .fulllab import start_full_lab, stop_full_lab_dir


@pytest.fixture(scope="module")
def lab3():
    def protect(data):
        # A protected path full of shell metacharacters must be quoted, never run.
        data["nodes"][1]["protected_paths"] = ["/mnt/k8s-storage"]
        data["nodes"][2]["protected_paths"] = ["/mnt/x; touch /tmp/pwned-by-inventory"]
    full = start_full_lab("127.0.120", nodes=3, mutate=protect)
    yield full
    stop_full_lab_dir(full.lab)


def _checks(res) -> list[dict]:
    return json.loads(res.stdout)["checks"]


def test_preflight_passes_on_three_nodes_except_the_missing_path(lab3):
    res = lab3.inv("preflight", "-i", str(lab3.inventory), "--json")
    checks = _checks(res)
    failed = [(c["target"], c["name"]) for c in checks if c["state"] == "fail"]
    # The only failure: node3's odd protected path does not exist (and was never executed).
    assert failed == [("node3", "protected path")], failed
    assert res.returncode == 3
    for node in ("node1", "node2", "node3"):
        names = {c["name"] for c in checks if c["target"] == node and c["state"] == "pass"}
        assert {"ssh", "host key", "sudo", "os", "arch", "disk", "clock"} <= names, (node, names)
    assert {c["name"] for c in checks if c["target"] == "local" and c["state"] == "pass"} >= {"flux cli", "git token", "secret file"}
    assert not (lab3.lab.node_root("node3") / "tmp" / "pwned-by-inventory").exists()
    assert not __import__("pathlib").Path("/tmp/pwned-by-inventory").exists()
    # The git token is reported as present, never shown.
    assert "ghp_" not in res.stdout


def test_stopped_node_fails_fast_naming_it(lab3):
    lab3.lab.stop_node("node3")
    try:
        t0 = time.monotonic()
        res = lab3.inv("preflight", "-i", str(lab3.inventory))
        elapsed = time.monotonic() - t0
    finally:
        lab3.lab.start_node("node3")
    assert res.returncode == 3
    assert elapsed < 10, elapsed
    assert "node3: ssh" in res.stderr
    assert "Traceback" not in res.stdout + res.stderr


def test_changed_host_key_is_refused_until_operator_opts_in(lab3):
    lab3.lab.rotate_host_key("node2")
    try:
        res = lab3.inv("preflight", "-i", str(lab3.inventory), "--json")
        ssh = next(c for c in _checks(res) if c["target"] == "node2" and c["name"] == "ssh")
        assert ssh["state"] == "fail" and "host key CHANGED" in ssh["detail"] and "ssh-keygen -R" in ssh["detail"]
        # Opting in is explicit: remove the old entry, then accept the new key.
        known = lab3.lab.known_hosts_path
        spec = lab3.lab.node("node2")
        subprocess.run(["ssh-keygen", "-R", f"[{spec.address}]:{spec.ssh_port}", "-f", str(known)],
                       check=True, capture_output=True, timeout=30)
        res = lab3.inv("preflight", "-i", str(lab3.inventory), "--json")
        ssh = next(c for c in _checks(res) if c["target"] == "node2" and c["name"] == "ssh")
        assert ssh["state"] == "fail" and "host key unknown" in ssh["detail"] and "--accept-new-host-keys" in ssh["detail"]
        res = lab3.inv("preflight", "-i", str(lab3.inventory), "--json", "--accept-new-host-keys")
        ssh = next(c for c in _checks(res) if c["target"] == "node2" and c["name"] == "ssh")
        assert ssh["state"] == "pass"
        assert f"[{spec.address}]:{spec.ssh_port}" in known.read_text()
    finally:
        lab3.lab.trust_host_key("node2")


def test_sudo_asking_for_password_fails_preflight(lab3):
    lab3.lab.set_sudo_password_required("node1", True)
    try:
        res = lab3.inv("preflight", "-i", str(lab3.inventory), "--json")
    finally:
        lab3.lab.set_sudo_password_required("node1", False)
    sudo = next(c for c in _checks(res) if c["target"] == "node1" and c["name"] == "sudo")
    assert sudo["state"] == "fail" and "password" in sudo["detail"]
    assert res.returncode == 3
