"""The simulated K3s end to end: install.sh, the k3s server/agent, systemctl, uninstall.

Most tests run the real programs in relocated roots (``DRTOOL_LAB_ROOT``) on loopback
addresses of their own; the acceptance test drives real lab nodes over SSH the way
drtool does (SFTP upload, ``sudo sh install.sh``, kubeconfig fetched and rewritten).
"""
from __future__ import annotations

import itertools
import json
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from drtool.lab.k3s.artifacts import build_artifacts, node_os_programs

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python")
# Addresses no lab subnet uses (labs use 127.0.0.x and 127.0.200-254.x).
_ADDRESSES = (f"127.0.199.{i}" for i in itertools.count(10))


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


@dataclass
class Root:
    """One relocated node: its own "/" directory, name and address."""

    path: Path
    name: str
    address: str
    artifacts: dict[str, Path]

    def env(self, **extra: str) -> dict[str, str]:
        env = {"PATH": f"{self.path}/usr/local/bin:/usr/bin:/bin", "DRTOOL_LAB_ROOT": str(self.path),
               "DRTOOL_LAB_HOSTNAME": self.name, "HOME": str(self.path), "LAB_K3S_JOIN_TIMEOUT": "2"}
        env.update(extra)
        return env

    def file(self, node_path: str) -> Path:
        return self.path / node_path.lstrip("/")

    def put_binary(self) -> None:
        target = self.file("/usr/local/bin/k3s")
        target.write_bytes(self.artifacts["k3s"].read_bytes())
        target.chmod(0o755)

    def install(self, timeout: float = 30, **env: str) -> subprocess.CompletedProcess:
        env.setdefault("INSTALL_K3S_SKIP_DOWNLOAD", "true")
        return subprocess.run(["sh", str(self.artifacts["install.sh"])], env=self.env(**env), capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def run(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), env=self.env(), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def log(self, unit: str) -> str:
        path = self.file(f"/var/log/{unit}.log")
        return path.read_text() if path.exists() else ""


@pytest.fixture
def roots(tmp_path):
    """Factory of relocated nodes; every unit they started is stopped afterwards."""
    lab = tmp_path / "lab"
    lab.mkdir()
    artifacts = build_artifacts(lab, PYTHON)
    made: list[Root] = []

    def make(name: str) -> Root:
        root = Root(tmp_path / name, name, next(_ADDRESSES), artifacts)
        bin_dir = root.file("/usr/local/bin")
        bin_dir.mkdir(parents=True)
        for prog, text in node_os_programs(lab, PYTHON).items():
            (bin_dir / prog).write_text(text)
            (bin_dir / prog).chmod(0o755)
        root.put_binary()
        made.append(root)
        return root

    yield make
    for root in made:
        for unit in ("k3s", "k3s-agent"):
            root.run(str(root.file("/usr/local/bin/systemctl")), "stop", unit)


def _server(root: Root, *flags: str, **env: str) -> tuple[int, str]:
    port = _free_port(root.address)
    exec_ = " ".join(["server", "--bind-address", root.address, "--https-listen-port", str(port), *flags])
    result = root.install(INSTALL_K3S_EXEC=exec_, **env)
    assert result.returncode == 0, result.stderr + root.log("k3s")
    return port, root.file("/var/lib/rancher/k3s/server/node-token").read_text().strip()


def _agent(root: Root, url: str, token: str, *flags: str) -> subprocess.CompletedProcess:
    return root.install(K3S_URL=url, K3S_TOKEN=token,
                        INSTALL_K3S_EXEC=" ".join(["--node-ip", root.address, *flags]))


def _kube(root: Root, port: int):
    from kubernetes import client, config
    kubeconfig = yaml.safe_load(root.file("/etc/rancher/k3s/k3s.yaml").read_text())
    kubeconfig["clusters"][0]["cluster"]["server"] = kubeconfig["clusters"][0]["cluster"]["server"].replace(
        "127.0.0.1", root.address)
    return client.CoreV1Api(config.new_client_from_config_dict(kubeconfig))


def _wait_nodes_ready(api, names: set[str], timeout: float = 15) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        nodes = {n.metadata.name: n for n in api.list_node().items}
        ready = {name for name, n in nodes.items()
                 if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])}
        if names <= ready:
            return nodes
        if time.monotonic() > deadline:
            raise AssertionError(f"nodes not Ready after {timeout}s: {sorted(names - ready)}")
        time.sleep(0.2)


def test_server_and_agent_install_join_and_show_labels_and_taints(roots):
    srv, agt = roots("node1"), roots("node2")
    port, token = _server(srv, "--disable", "traefik", K3S_KUBECONFIG_MODE="644")
    assert token.startswith("K10") and "::server:" in token
    result = _agent(agt, f"https://{srv.address}:{port}", token,
                    "--node-label", "hardware=heavy", "--node-taint", "heavy=true:NoSchedule")
    assert result.returncode == 0, result.stderr + agt.log("k3s-agent")

    kubeconfig = yaml.safe_load(srv.file("/etc/rancher/k3s/k3s.yaml").read_text())
    assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://127.0.0.1:{port}"
    assert kubeconfig["current-context"] == kubeconfig["clusters"][0]["name"] == kubeconfig["users"][0]["name"] == "default"
    assert srv.file("/etc/rancher/k3s/k3s.yaml").stat().st_mode & 0o777 == 0o644
    env_file = agt.file("/etc/systemd/system/k3s-agent.service.env")
    assert env_file.stat().st_mode & 0o777 == 0o600 and token in env_file.read_text()
    assert token not in agt.file("/etc/systemd/system/k3s-agent.service").read_text()

    api = _kube(srv, port)
    nodes = _wait_nodes_ready(api, {"node1", "node2"})
    assert nodes["node2"].metadata.labels["hardware"] == "heavy"
    assert [(t.key, t.value, t.effect) for t in nodes["node2"].spec.taints] == [("heavy", "true", "NoSchedule")]
    assert nodes["node1"].metadata.labels["node-role.kubernetes.io/control-plane"] == "true"
    secrets = {s.metadata.name for s in api.list_namespaced_secret("kube-system").items}
    assert {"node1.node-password.k3s", "node2.node-password.k3s"} <= secrets
    jobs = [p.metadata.name for p in api.list_namespaced_pod("kube-system").items if "helm-install" in p.metadata.name]
    assert jobs == []          # --disable traefik

    status = agt.run("systemctl", "is-active", "k3s-agent")
    assert (status.returncode, status.stdout.strip()) == (0, "active")


def test_agent_with_a_token_from_another_cluster_is_refused(roots):
    old, new, agt = roots("old"), roots("new"), roots("node2")
    _, old_token = _server(old)
    port, _ = _server(new)
    result = _agent(agt, f"https://{new.address}:{port}", old_token)
    assert result.returncode != 0
    assert "token CA hash does not match the Cluster CA certificate hash" in agt.log("k3s-agent")
    assert agt.run("systemctl", "is-active", "k3s-agent").stdout.strip() == "failed"


def _server_with_joined_agent(roots):
    """node1 a server, node2 an agent joined to it and Ready: (server, agent, url, token, api)."""
    srv, agt = roots("node1"), roots("node2")
    port, token = _server(srv)
    url = f"https://{srv.address}:{port}"
    assert _agent(agt, url, token).returncode == 0
    api = _kube(srv, port)
    _wait_nodes_ready(api, {"node2"})
    return srv, agt, url, token, api


def test_node_password_rejection_until_the_old_node_is_deleted(roots):
    srv, agt, url, token, api = _server_with_joined_agent(roots)
    # The node is reimaged: uninstall keeps the password file, so remove it as a reimage would.
    assert agt.run("k3s-agent-uninstall.sh").returncode == 0
    assert agt.file("/etc/rancher/node/password").exists()
    agt.file("/etc/rancher/node/password").unlink()
    agt.put_binary()
    rejected = _agent(agt, url, token)
    assert rejected.returncode != 0
    assert "Node password rejected" in agt.log("k3s-agent")
    assert "Node password validation failed for 'node2'" in srv.log("k3s")
    # Deleting the old Node deletes its node-password Secret; the agent then joins.
    api.delete_node("node2")
    deadline = time.monotonic() + 5
    while any(s.metadata.name == "node2.node-password.k3s" for s in api.list_namespaced_secret("kube-system").items):
        assert time.monotonic() < deadline, "node-password Secret not removed with the Node"
        time.sleep(0.1)
    assert agt.run("systemctl", "restart", "k3s-agent").returncode == 0
    _wait_nodes_ready(api, {"node2"})


def test_a_running_agent_registers_its_deleted_node_again_without_a_node_password(roots):
    srv, agt, url, token, api = _server_with_joined_agent(roots)
    api.delete_node("node2")
    # The still-running kubelet puts its Node back; the node-password Secret stays deleted
    # (K3s writes it only when an agent starts), so the machine can be wiped and join again.
    _wait_nodes_ready(api, {"node2"}, timeout=10)
    assert "node2.node-password.k3s" not in {s.metadata.name for s in api.list_namespaced_secret("kube-system").items}
    assert agt.run("k3s-agent-uninstall.sh").returncode == 0
    agt.file("/etc/rancher/node/password").unlink()
    agt.put_binary()
    joined = _agent(agt, url, token)
    assert joined.returncode == 0, joined.stderr + agt.log("k3s-agent")
    assert "node2.node-password.k3s" in {s.metadata.name for s in api.list_namespaced_secret("kube-system").items}


def test_uninstall_removes_k3s_but_keeps_node_password_and_mnt(roots):
    srv = roots("node1")
    _server(srv)
    data = srv.file("/mnt/k8s-storage/models/m.bin")
    data.parent.mkdir(parents=True)
    data.write_text("model")
    result = srv.run("k3s-uninstall.sh")
    assert result.returncode == 0, result.stderr
    for gone in ("/etc/rancher/k3s", "/var/lib/rancher/k3s", "/usr/local/bin/k3s", "/usr/local/bin/k3s-killall.sh",
                 "/usr/local/bin/k3s-uninstall.sh", "/etc/systemd/system/k3s.service",
                 "/etc/systemd/system/k3s.service.env", "/run/k3s"):
        assert not srv.file(gone).exists(), gone
    assert srv.file("/etc/rancher/node/password").read_text().strip()
    assert data.read_text() == "model"
    assert srv.run("systemctl", "is-active", "k3s").stdout.strip() == "inactive"


def test_uninstall_skips_the_data_wipe_when_both_units_exist(roots):
    srv = roots("node1")
    _server(srv)
    agent_unit = srv.file("/etc/systemd/system/k3s-agent.service")
    agent_unit.write_text("[Service]\nExecStart=/usr/local/bin/k3s agent\n")
    result = srv.run("k3s-uninstall.sh")
    assert result.returncode == 0
    assert "Additional k3s services installed, skipping uninstall of k3s" in result.stdout
    assert srv.file("/var/lib/rancher/k3s/server/token").exists()
    assert not srv.file("/etc/systemd/system/k3s.service").exists()


def test_install_without_skip_download_fails_like_an_offline_machine(roots):
    srv = roots("node1")
    result = srv.install(INSTALL_K3S_SKIP_DOWNLOAD="", INSTALL_K3S_VERSION="v1.31.4+k3s1")
    assert result.returncode == 1
    assert "Download failed" in result.stderr and "INSTALL_K3S_SKIP_DOWNLOAD=true" in result.stderr
    assert not srv.file("/etc/systemd/system/k3s.service").exists()


def test_agent_install_requires_a_token(roots):
    agt = roots("node2")
    result = agt.install(K3S_URL="https://127.0.0.1:6443")
    assert result.returncode == 1 and "K3S_TOKEN or K3S_TOKEN_FILE is not defined" in result.stderr


def test_etcd_snapshots_and_a_second_server(roots):
    first, second = roots("node1"), roots("node2")
    # Real HA setups name every server address in the certificate (lab.json does that on real nodes).
    port, token = _server(first, "--cluster-init", "--tls-san", second.address)
    assert first.file("/var/lib/rancher/k3s/server/db/etcd").is_dir()
    assert not first.file("/var/lib/rancher/k3s/server/db/state.db").exists()
    saved = first.run("k3s", "etcd-snapshot", "save")
    assert saved.returncode == 0 and "Snapshot on-demand-node1-" in saved.stderr
    listed = first.run("k3s", "etcd-snapshot", "ls").stdout
    assert "file:///var/lib/rancher/k3s/server/db/snapshots/on-demand-node1-" in listed

    result = second.install(K3S_TOKEN=token, INSTALL_K3S_EXEC=" ".join([
        "server", "--server", f"https://{first.address}:{port}", "--bind-address", second.address,
        "--https-listen-port", str(port)]))
    assert result.returncode == 0, result.stderr + second.log("k3s")
    nodes = _wait_nodes_ready(_kube(second, port), {"node1", "node2"})   # through the second server's address
    assert nodes["node2"].metadata.labels["node-role.kubernetes.io/etcd"] == "true"


def test_scenario_node_delay_and_api_refusal_after_start(roots, tmp_path):
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text("name: k3s-test\nnodes:\n  node2: {ready_delay: 1.5}\napi:\n  refuse_after_start: 1\n")
    (tmp_path / "lab" / "lab.json").write_text(json.dumps({"root": str(tmp_path / "lab"), "scenario": str(scenario)}))
    srv, agt = roots("node1"), roots("node2")
    port, token = _server(srv)
    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((srv.address, port), timeout=1).close()
    api = _kube(srv, port)
    deadline = started + 5
    while True:
        try:
            api.list_node()
            break
        except Exception:  # refused while the scenario window lasts
            assert time.monotonic() < deadline, "API still refusing after the scenario window"
            time.sleep(0.1)
    assert time.monotonic() - started >= 0.8
    assert _agent(agt, f"https://{srv.address}:{port}", token).returncode == 0
    joined = time.monotonic()
    node2 = api.read_node("node2")
    assert [c.status for c in node2.status.conditions if c.type == "Ready"] == ["False"]
    _wait_nodes_ready(api, {"node2"})
    assert time.monotonic() - joined >= 1.2


def test_sqlite_server_refuses_etcd_snapshots(roots):
    srv = roots("node1")
    _server(srv)
    result = srv.run("k3s", "etcd-snapshot", "save")
    assert result.returncode == 1 and "etcd datastore disabled" in result.stderr


def test_systemctl_unknown_unit_exits_5(roots):
    node = roots("node1")
    result = node.run("systemctl", "start", "nope")
    assert result.returncode == 5 and "Unit nope.service not found." in result.stderr
    assert node.run("systemctl", "stop", "nope").returncode == 5


# ------------------------------------------------------------------ over SSH, on real lab nodes

def test_acceptance_over_ssh(make_lab):
    """Upload, install a server and an agent with sudo, kubeconfig, uninstall: as drtool does."""
    from kubernetes import client, config

    from drtool.lab.setup import lab_up
    lab = make_lab(2)
    lab_up(lab)
    arts = lab.root / "artifacts"
    n1 = lab.node("node1")

    def sh(node: str, command: str, stdin: str = "", timeout: float = 60) -> tuple[int, str, str]:
        ssh = lab.ssh(node)
        try:
            i, o, e = ssh.exec_command(command, timeout=timeout)
            if stdin:
                i.write(stdin)
            i.channel.shutdown_write()
            out, err = o.read().decode(), e.read().decode()
            return o.channel.recv_exit_status(), out, err
        finally:
            ssh.close()

    def upload(node: str) -> None:
        ssh = lab.ssh(node)
        try:
            sftp = ssh.open_sftp()
            for name in ("install.sh", "k3s", "k3s-airgap-images.tar"):
                sftp.put(str(arts / name), f"/tmp/{name}")
            sftp.close()
        finally:
            ssh.close()
        rc, _, err = sh(node, "sudo install -m 0755 /tmp/k3s /usr/local/bin/k3s && "
                              "sudo mkdir -p /var/lib/rancher/k3s/agent/images && "
                              "sudo cp /tmp/k3s-airgap-images.tar /var/lib/rancher/k3s/agent/images/")
        assert rc == 0, err

    for node in ("node1", "node2"):
        upload(node)
    rc, out, err = sh("node1", "sudo env INSTALL_K3S_SKIP_DOWNLOAD=true INSTALL_K3S_EXEC='server --disable traefik' "
                               "sh /tmp/install.sh")
    assert rc == 0, out + err
    rc, token, _ = sh("node1", "sudo cat /var/lib/rancher/k3s/server/node-token")
    token = token.strip()
    # The token goes through stdin, never the command line.
    agent_cmd = ("sudo sh -c 'read -r K3S_TOKEN; export K3S_TOKEN; "
                 f"K3S_URL=https://{n1.address}:6443 INSTALL_K3S_SKIP_DOWNLOAD=true LAB_K3S_JOIN_TIMEOUT=2 "
                 "INSTALL_K3S_EXEC=\"agent --node-label hardware=heavy --node-taint heavy=true:NoSchedule\" "
                 "sh /tmp/install.sh'")
    rc, out, err = sh("node2", agent_cmd, stdin=token + "\n")
    assert rc == 0, out + err

    rc, text, _ = sh("node1", "sudo cat /etc/rancher/k3s/k3s.yaml")
    kubeconfig = yaml.safe_load(text.replace("https://127.0.0.1:6443", f"https://{n1.address}:6443"))
    api = client.CoreV1Api(config.new_client_from_config_dict(kubeconfig))
    nodes = _wait_nodes_ready(api, {"node1", "node2"})
    assert nodes["node2"].metadata.labels["hardware"] == "heavy"
    assert nodes["node2"].spec.taints[0].key == "heavy"

    # Uninstall the agent: K3s goes, node password and /mnt data stay.
    rc, _, _ = sh("node2", "sudo mkdir -p /mnt/k8s-storage && echo keep | sudo tee /mnt/k8s-storage/f >/dev/null")
    rc, out, err = sh("node2", "sudo /usr/local/bin/k3s-agent-uninstall.sh")
    assert rc == 0, err
    rc, out, _ = sh("node2", "sudo test -e /var/lib/rancher/k3s || sudo test -e /usr/local/bin/k3s; echo $?; "
                             "sudo cat /etc/rancher/node/password /mnt/k8s-storage/f")
    lines = out.split()
    assert lines[0] == "1" and lines[-1] == "keep" and len(lines[1]) == 32

    # Reimaged node (new password file): the server, which kept node2's Secret, rejects the join.
    sh("node2", "sudo rm -f /etc/rancher/node/password")
    upload("node2")
    rc, out, err = sh("node2", agent_cmd, stdin=token + "\n")
    assert rc != 0
    rc, journal, _ = sh("node2", "sudo journalctl -u k3s-agent -n 5")
    assert "Node password rejected" in journal
    api.delete_node("node2")
    time.sleep(0.3)
    rc, out, err = sh("node2", "sudo systemctl restart k3s-agent")
    assert rc == 0, out + err
    _wait_nodes_ready(api, {"node2"})
    for node, script in (("node2", "k3s-agent-uninstall.sh"), ("node1", "k3s-uninstall.sh")):
        rc, _, err = sh(node, f"sudo /usr/local/bin/{script}")
        assert rc == 0, err
