"""Lab nodes: real sshd per node, strict host keys, isolated filesystems, faults, clean teardown."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import paramiko
import pytest

from drtool.errors import Refused
from drtool.lab import node_init
from drtool.lab import nodes as nodes_mod
from drtool.lab.nodes import Lab, LabError, listening_sockets

from .subnets import for_worker


def _unique() -> str:
    return f"drtool-test-{uuid.uuid4().hex[:8]}"


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


# -- the shared 3-node lab ----------------------------------------------------------------


def test_each_node_answers_over_strict_ssh_with_its_own_hostname(lab_nodes):
    assert [n.name for n in lab_nodes.nodes] == ["node1", "node2", "node3"]
    for node in lab_nodes.nodes:
        rc, out, err = lab_nodes.run(node.name, "hostname; cat /etc/hostname; id -un")
        assert (rc, out.split()) == (0, [node.name, node.name, "lab"]), err


def test_sudo_works_without_password_and_without_resolver_noise(lab_nodes):
    rc, out, err = lab_nodes.run("node2", "sudo -n true && sudo -n id -u")
    assert (rc, out.strip(), err) == (0, "0", "")


def test_lab_user_exists_only_inside_nodes_and_is_not_locked(lab_nodes):
    rc, out, _ = lab_nodes.run("node1", "sudo -n getent shadow lab")
    assert rc == 0 and out.split(":")[1] == "*"
    node_passwd = (lab_nodes.node_dir("node1") / "etc-upper" / "passwd").read_text().splitlines()
    lab_line = next(line for line in node_passwd if line.startswith("lab:"))
    assert lab_line not in Path("/etc/passwd").read_text().splitlines()


@pytest.mark.parametrize("directory", list(node_init.OVERMOUNTED))
def test_files_written_on_a_node_stay_on_that_node(lab_nodes, directory):
    name = _unique()
    path = f"{directory}/{name}"
    rc, _, err = lab_nodes.run("node1", f"echo hello | sudo -n tee {path} >/dev/null")
    assert rc == 0, err
    try:
        assert (lab_nodes.node_root("node1") / path.lstrip("/")).read_text() == "hello\n"
        assert not Path(path).exists(), "visible on the host"
        assert lab_nodes.run("node2", f"test -e {path}")[0] == 1, "visible on another node"
    finally:
        lab_nodes.run("node1", f"sudo -n rm -f {path}")


def test_node_data_dirs_are_visible_to_the_host_in_the_node_dir(lab_nodes):
    name = _unique()
    assert lab_nodes.run("node3", f"sudo -n sh -c 'echo data > /mnt/{name} && echo cfg > /etc/{name}'")[0] == 0
    try:
        node_dir = lab_nodes.node_dir("node3")
        assert (node_dir / "mnt" / name).read_text() == "data\n"
        assert (node_dir / "etc-upper" / name).read_text() == "cfg\n"
    finally:
        lab_nodes.run("node3", f"sudo -n rm -f /mnt/{name} /etc/{name}")


def test_sftp_upload_lands_on_one_node_only(lab_nodes, tmp_path):
    local = tmp_path / "payload"
    local.write_bytes(b"\x00binary\xff" * 1000)
    remote = f"/tmp/{_unique()}"
    client = lab_nodes.ssh("node1")
    try:
        sftp = client.open_sftp()
        sftp.put(str(local), remote)
        assert sftp.stat(remote).st_size == local.stat().st_size
        sftp.close()
    finally:
        client.close()
    assert (lab_nodes.node_root("node1") / remote.lstrip("/")).read_bytes() == local.read_bytes()
    assert lab_nodes.run("node2", f"test -e {remote}")[0] == 1


@pytest.mark.parametrize("sudo", ["", "sudo -n "])
def test_lab_python_and_lab_dir_are_usable_inside_a_node(lab_nodes, sudo):
    # The simulated k3s runs this way: the venv's python (its base install may sit under the
    # node's own /root) reading lab.json from the lab dir (here under the node's own /tmp).
    script = f"import json, yaml; print(json.load(open('{lab_nodes.lab_json_path}'))['root'])"
    rc, out, err = lab_nodes.run("node1", f"{sudo}{lab_nodes.python} -c \"{script}\"")
    assert (rc, out.strip()) == (0, str(lab_nodes.root)), err


def test_lab_files_follow_the_layout_contract(lab_nodes):
    data = json.loads((lab_nodes.root / "lab.json").read_text())
    assert data["root"] == str(lab_nodes.root)
    assert Path(data["python"]).exists()
    net = lab_nodes.subnet  # 127.0.200, or 127.<worker>.200 under pytest-xdist
    assert [(n["name"], n["address"], n["ssh_port"]) for n in data["nodes"]] == [
        ("node1", f"{net}.11", 2222), ("node2", f"{net}.12", 2222), ("node3", f"{net}.13", 2222),
    ]
    hosts = [line.split()[:2] for line in lab_nodes.known_hosts_path.read_text().splitlines()]
    assert hosts == [[f"[{net}.1{i}]:2222", "ssh-ed25519"] for i in (1, 2, 3)]
    assert (lab_nodes.key_path.stat().st_mode & 0o777) == 0o600


@pytest.mark.skipif(not shutil.which("ssh"), reason="needs the OpenSSH client")
def test_ssh_config_aliases_work_with_the_openssh_client(lab_nodes):
    result = subprocess.run(
        ["ssh", "-F", str(lab_nodes.ssh_config_path), "-o", "BatchMode=yes", "node2", "hostname"],
        capture_output=True, text=True, timeout=15,
    )
    assert (result.returncode, result.stdout.strip()) == (0, "node2"), result.stderr


def test_up_again_keeps_running_nodes_and_other_lab_json_keys(lab_nodes):
    before = {s.name: s.pid for s in lab_nodes.status()}
    data = json.loads(lab_nodes.lab_json_path.read_text())
    data["gitops"] = {"url_map": {}, "default": None}
    lab_nodes.lab_json_path.write_text(json.dumps(data))
    try:
        state = lab_nodes.up(3)
        assert state.started == ()
        assert {s.name: s.pid for s in lab_nodes.status()} == before
        assert json.loads(lab_nodes.lab_json_path.read_text())["gitops"] == {"url_map": {}, "default": None}
    finally:
        data = json.loads(lab_nodes.lab_json_path.read_text())
        data.pop("gitops")
        lab_nodes.lab_json_path.write_text(json.dumps(data))


def test_status_reports_running_listening_nodes(lab_nodes):
    statuses = lab_nodes.status()
    assert [(s.name, s.running, s.listening) for s in statuses] == [
        ("node1", True, True), ("node2", True, True), ("node3", True, True),
    ]
    assert all(s.sshd_pid and s.pid and s.sshd_pid != s.pid for s in statuses)


# -- private labs for faults and teardown ----------------------------------------------------


def test_stopped_node_refuses_and_keeps_its_data_across_restart(make_lab):
    lab = make_lab(2)
    name = _unique()
    assert lab.run("node1", f"sudo -n sh -c 'echo kept > /var/lib/{name}'")[0] == 0
    lab.stop_node("node1")
    spec = lab.node("node1")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((spec.address, spec.ssh_port), timeout=2).close()
    assert [s.running for s in lab.status()] == [False, True]
    lab.start_node("node1")
    assert lab.run("node1", f"cat /var/lib/{name}")[1] == "kept\n"


def test_rotated_host_key_fails_strict_checking_until_trusted(make_lab):
    lab = make_lab(1)
    lab.rotate_host_key("node1")
    with pytest.raises(paramiko.BadHostKeyException):
        lab.ssh("node1")
    lab.up(1)  # a later `up` must not quietly accept the new key
    with pytest.raises(paramiko.BadHostKeyException):
        lab.ssh("node1")
    lab.trust_host_key("node1")
    assert lab.run("node1", "hostname")[1] == "node1\n"


def test_sudo_password_fault_survives_restart_and_can_be_cleared(make_lab):
    lab = make_lab(1)
    lab.set_sudo_password_required("node1", True)
    rc, _, err = lab.run("node1", "sudo -n true")
    assert rc == 1 and "password is required" in err
    lab.restart_node("node1")
    assert lab.run("node1", "sudo -n true")[0] == 1
    lab.set_sudo_password_required("node1", False)
    assert lab.run("node1", "sudo -n true")[0] == 0


def test_extra_bin_programs_shadow_system_ones_under_sudo(make_lab):
    lab = make_lab(1)
    lab.up(1, extra_bin={"systemctl": "#!/bin/sh\necho lab-systemctl \"$@\"\n"})
    rc, out, err = lab.run("node1", "sudo -n systemctl start k3s")
    assert (rc, out) == (0, "lab-systemctl start k3s\n"), err
    host_copy = Path("/usr/local/bin/systemctl")
    assert not host_copy.exists() or b"lab-systemctl" not in host_copy.read_bytes()


def test_dropping_ssh_sessions_cuts_an_in_flight_command_but_not_the_listener(make_lab):
    lab = make_lab(1)
    client = lab.ssh("node1")
    try:
        _, out, _ = client.exec_command("sleep 30; echo finished")
        time.sleep(0.2)  # let the session start
        assert lab.drop_ssh_sessions("node1") >= 1
        transport = client.get_transport()
        deadline = time.monotonic() + 5
        while transport.is_active() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not transport.is_active()
        assert b"finished" not in out.read()
    finally:
        client.close()
    assert lab.run("node1", "hostname")[1] == "node1\n"


def test_down_leaves_no_process_mount_or_host_user(make_lab):
    host_passwd = Path("/etc/passwd").read_text()
    lab = make_lab(2)
    client = lab.ssh("node2")  # an open session: its processes setsid away from the group
    client.exec_command("sleep 60")
    time.sleep(0.2)
    pids = lab.node_pids("node1") + lab.node_pids("node2")
    # unshare + sshd per node, and node2's session (privileged and user sshd, the shell/sleep).
    assert len(pids) >= 2 + 2 + 3
    try:
        lab.down()
    finally:
        client.close()
    assert [p for p in pids if not _gone(p)] == []
    assert not any(str(lab.root) in line for line in Path("/proc/mounts").read_text().splitlines())
    assert Path("/etc/passwd").read_text() == host_passwd
    assert (lab.node_dir("node1") / "etc-upper" / "passwd").exists(), "down without purge keeps node data"
    lab.down(purge=True)
    assert not (lab.root / "nodes").exists()


def test_a_second_lab_on_a_taken_address_is_refused(make_lab, tmp_path):
    taken = make_lab(1)
    spec = taken.node("node1")
    clash = Lab(tmp_path / "clash", subnet=spec.address.rsplit(".", 1)[0])
    with pytest.raises(LabError, match=rf"already in use.*node1 \({spec.address}:2222\)"):
        clash.up(1)
    clash.down(purge=True)
    assert [s.running for s in taken.status()] == [True]


def test_a_node_whose_sshd_dies_fails_up_with_its_log(tmp_path):
    lab = Lab(tmp_path / "broken", subnet=for_worker("127.0.199"))
    lab.up(1)
    lab.stop_node("node1")
    lab.host_key_path("node1").write_text("not a key\n")
    try:
        with pytest.raises(LabError, match=r"node1 exited while starting(?s:.*)(no hostkeys|host key)"):
            lab.up(1)
    finally:
        lab.down(purge=True)


@pytest.mark.slow
def test_fifty_nodes_start_concurrently(make_lab):
    lab = make_lab(50)
    statuses = lab.status()
    assert len(statuses) == 50 and all(s.listening for s in statuses)
    assert lab.run("node50", "hostname")[1] == "node50\n"


# -- prerequisites and pure builders -------------------------------------------------------


def test_not_root_is_refused_with_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.setattr(nodes_mod.os, "geteuid", lambda: 1000)
    with pytest.raises(Refused, match="needs root"):
        Lab(tmp_path).up(1)


def test_missing_sshd_names_the_package(monkeypatch, tmp_path):
    real_which = shutil.which
    def which(name, path=None):
        return None if name == "sshd" else real_which(name, path=path)

    monkeypatch.setattr(nodes_mod.shutil, "which", which)
    with pytest.raises(Refused, match="openssh-server"):
        Lab(tmp_path).up(1)


def test_listening_sockets_parses_proc_net_tcp():
    text = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0B00007F:08AE 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n"
        "   1: 0B00007F:08AE 0100007F:D3A0 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n"
    )
    assert listening_sockets(text) == {("127.0.0.11", 2222)}


def test_only_hidden_paths_are_kept_visible_without_nesting():
    keep = node_init.paths_to_keep(["/work/main", "/tmp/x/lab", "/tmp/x", "/root/.pyenv/v"])
    assert keep == ("/tmp/x", "/root/.pyenv/v")
