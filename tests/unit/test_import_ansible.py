"""`inv inventory.import-ansible` on inventories as k3s-ansible users keep them (YAML and INI,
group_vars/host_vars, ansible-vault values), run as an operator runs it."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from drtool.errors import BadInput
from drtool.inventory import load_inventory
from drtool.inventory_import import convert_inventory, load_ansible_inventory

ROOT = Path(__file__).resolve().parents[2]
INV = Path(sys.executable).parent / "inv"
VAULT = """!vault |
          $ANSIBLE_VAULT;1.1;AES256
          62313365396662343061393464336163383764373764613633653634306231386433626436623361
          6134333665353966363534333632666535333761666131620a663537646436643839616531643561
"""


def run_import(src: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(INV), "inventory.import-ansible", str(src), *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


# Shaped like k3s-ansible's inventory-sample.yml (1.2.x): hosts given as IP addresses.
SAMPLE = """
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
    ansible_port: 22
    ansible_user: debian
    k3s_version: v1.31.4+k3s1
    token: "changeme!"
    api_endpoint: "{{ hostvars[groups['server'][0]]['ansible_host'] | default(groups['server'][0]) }}"
"""


def test_hosts_given_as_addresses_are_never_renamed(tmp_path):
    src = write(tmp_path / "inventory.yml", SAMPLE)
    res = run_import(src)
    assert res.returncode == 2 and res.stdout == "", res.stdout
    assert "hosts given as addresses (10.0.5.11, 10.0.5.12, 10.0.5.13) carry no node name" in res.stderr
    assert "--node-name ADDRESS=NAME" in res.stderr and "server1" not in res.stderr + res.stdout
    out = tmp_path / "drtool.yaml"
    ok = run_import(src, "--output", str(out), "--node-name", "10.0.5.11=pi-master",
                    "--node-name", "10.0.5.12=pi-worker-1", "--node-name", "10.0.5.13=pi-worker-2")
    assert ok.returncode == 0, ok.stderr
    inv = load_inventory(out)
    assert [(n.name, n.host, n.role, n.user, n.port) for n in inv.nodes] == [
        ("pi-master", "10.0.5.11", "server", "debian", 22), ("pi-worker-1", "10.0.5.12", "agent", "debian", 22),
        ("pi-worker-2", "10.0.5.13", "agent", "debian", 22)]
    assert inv.cluster.api_endpoint == "https://10.0.5.11:6443" and inv.cluster.context_name == "k3s-ansible"
    assert "changeme!" not in out.read_text() and "token was NOT copied" in ok.stderr


def test_inventory_hostname_is_the_node_name_and_ansible_host_the_address(tmp_path):
    src = write(tmp_path / "inventory.yml", """
        k3s_cluster:
          children:
            server:
              hosts:
                Alpha:
                  ansible_host: 192.168.1.10
            agent:
              hosts:
                beta:
                  ansible_host: 192.168.1.11
                  ansible_ssh_private_key_file: ~/.ssh/beta
          vars:
            k3s_version: v1.31.4+k3s1
            cluster_context: homelab
            api_port: 6444
            api_endpoint: k3s.lan
        """)
    data, notes = convert_inventory(load_ansible_inventory(src))
    assert [(n["name"], n["host"]) for n in data["nodes"]] == [("alpha", "192.168.1.10"), ("beta", "192.168.1.11")]
    assert data["nodes"][1]["ssh_key"] == "~/.ssh/beta"
    assert data["cluster"] == {"name": "homelab", "context": "homelab", "api_endpoint": "https://k3s.lan:6444"}
    assert any("node names are the inventory hostnames" in n for n in notes)


def test_ini_inventory_with_group_vars_host_vars_and_vault(tmp_path):
    src = write(tmp_path / "hosts.ini", """
        # k3s-ansible, INI flavour
        [server]
        192.168.1.10 ansible_user=root

        [agent]
        192.168.1.11
        storage-1 ansible_host=192.168.1.12 ansible_port=2222

        [k3s_cluster:children]
        server
        agent

        [k3s_cluster:vars]
        k3s_version=v1.30.2+k3s1
        extra_server_args="--disable traefik --token=K10abcdef0123456789abcdef0123::server:leaked"
        """)
    write(tmp_path / "group_vars/all.yml", "ansible_user: pi\n")
    write(tmp_path / "group_vars/k3s_cluster/main.yml", f"""
        k3s_version: v1.31.4+k3s1
        token: {VAULT}
        server_config_yaml: |
          data-dir: /srv/k3s
          write-kubeconfig-mode: "0640"
          tls-san: [k3s.lan]
          token: also-not-copied
          node-taint: ["CriticalAddonsOnly=true:NoExecute"]
        agent_config_yaml: |
          data-dir: /srv/k3s
        """)
    write(tmp_path / "group_vars/agent.yml", 'extra_agent_args: "--node-label disk=ssd"\n')
    write(tmp_path / "host_vars/192.168.1.10.yml", 'extra_server_args: "--node-name cp-1 --disable traefik"\n')
    write(tmp_path / "host_vars/192.168.1.11/k3s.yml", 'extra_agent_args: "--node-name=worker-1 --node-label disk=hdd"\n')
    out = tmp_path / "drtool.yaml"
    res = run_import(src, "--output", str(out))
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    assert "ANSIBLE_VAULT" not in text and "leaked" not in text and "also-not-copied" not in text
    inv = load_inventory(out)
    nodes = {n.name: n for n in inv.nodes}
    assert list(nodes) == ["cp-1", "worker-1", "storage-1"]
    assert (nodes["cp-1"].host, nodes["cp-1"].user, nodes["cp-1"].sudo) == ("192.168.1.10", "root", False)
    assert nodes["cp-1"].taints == ("CriticalAddonsOnly=true:NoExecute",)
    assert nodes["worker-1"].labels == {"disk": "hdd"} and nodes["worker-1"].user == "pi"   # host_vars win
    assert nodes["storage-1"].labels == {"disk": "ssd"} and nodes["storage-1"].port == 2222  # group_vars/agent
    assert inv.k3s.version == "v1.31.4+k3s1"   # group_vars/k3s_cluster over the inventory file's vars
    assert inv.k3s.token.token_file == Path("k3s-token") and inv.k3s.data_dir == "/srv/k3s"
    assert inv.k3s.kubeconfig_mode == "0640"
    assert list(inv.k3s.server_args) == ["--disable", "traefik", "--data-dir", "/srv/k3s", "--write-kubeconfig-mode",
                                         "0640", "--tls-san", "k3s.lan"]
    assert "token is vault-encrypted and was NOT copied" in res.stderr and "k3s-token" in res.stderr


def test_vault_value_where_drtool_needs_it_is_named(tmp_path):
    src = write(tmp_path / "inventory.yml", """
        k3s_cluster:
          children:
            server:
              hosts:
                node1:
          vars:
            k3s_version: v1.31.4+k3s1
        """)
    write(tmp_path / "host_vars/node1.yml", "ansible_host: " + VAULT)
    with pytest.raises(BadInput, match=r"node1.ansible_host: is vault-encrypted"):
        convert_inventory(load_ansible_inventory(src))


@pytest.mark.parametrize("text,field", [
    ("[server]\nnode[01:03]\n[k3s_cluster:children]\nserver\n", "line 2"),
    ("[server\n", "line 1"),
    ("[k3s_cluster:vars]\nno_equals_sign\n", "line 2"),
])
def test_bad_ini_names_the_line(tmp_path, text, field):
    src = write(tmp_path / "hosts", text)
    res = run_import(src)
    assert res.returncode == 2 and f"{src}: {field}:" in res.stderr, res.stderr


def test_the_output_is_plain_yaml_that_loads(tmp_path):
    src = write(tmp_path / "inventory.yml", SAMPLE)
    res = run_import(src, "--node-name", "10.0.5.11=a", "--node-name", "10.0.5.12=b", "--node-name", "10.0.5.13=c")
    assert res.returncode == 0 and yaml.safe_load(res.stdout)["nodes"][0]["name"] == "a"


# --------------------------------------------------------------------------- against k3s-ansible itself

K3S_ANSIBLE = Path("/work/.mirror/k3s-io+k3s-ansible/repo")
K3S_ANSIBLE_TAG = "1.2.2"
# Every k3s-ansible variable the importer reads.
READ_VARS = ("k3s_version", "token", "api_endpoint", "api_port", "cluster_context", "extra_server_args",
             "extra_agent_args", "server_config_yaml", "agent_config_yaml", "airgap_dir", "registries_config_yaml",
             "extra_install_envs", "extra_service_envs", "extra_manifests", "k3s_server_location")


def _k3s_ansible(path: str) -> str:
    return subprocess.run(["git", "-C", str(K3S_ANSIBLE), "show", f"{K3S_ANSIBLE_TAG}:{path}"], check=True,
                          capture_output=True, text=True, timeout=30).stdout


@pytest.mark.skipif(not K3S_ANSIBLE.exists(), reason="no checkout of k3s-io/k3s-ansible")
def test_the_variables_read_are_k3s_ansibles():
    text = "".join(_k3s_ansible(p) for p in (
        "inventory-sample.yml", "roles/k3s_server/defaults/main.yml", "roles/k3s_server/tasks/main.yml",
        "roles/k3s_agent/tasks/main.yml", "roles/airgap/tasks/main.yml", "playbooks/reset.yml"))
    missing = [v for v in READ_VARS if v not in text]
    assert not missing, f"not variables of k3s-ansible {K3S_ANSIBLE_TAG}: {missing}"


@pytest.mark.skipif(not K3S_ANSIBLE.exists(), reason="no checkout of k3s-io/k3s-ansible")
def test_k3s_ansibles_own_sample_imports(tmp_path):
    sample = yaml.safe_load(_k3s_ansible("inventory-sample.yml"))
    src = tmp_path / "inventory.yml"
    src.write_text(yaml.safe_dump(sample))
    hosts = [*sample["k3s_cluster"]["children"]["server"]["hosts"], *sample["k3s_cluster"]["children"]["agent"]["hosts"]]
    refused = run_import(src)
    assert refused.returncode == 2 and all(h in refused.stderr for h in hosts)
    named = [arg for i, h in enumerate(hosts) for arg in ("--node-name", f"{h}=node{i + 1}")]
    out = tmp_path / "drtool.yaml"
    res = run_import(src, "--output", str(out), *named)
    assert res.returncode == 0, res.stderr
    inv = load_inventory(out)
    assert inv.k3s.version == sample["k3s_cluster"]["vars"]["k3s_version"]
    assert [n.host for n in inv.nodes] == hosts and inv.cluster.context_name == "k3s-ansible"
    assert sample["k3s_cluster"]["vars"]["token"] not in out.read_text()


def test_groups_with_two_parents_and_cycles(tmp_path):
    src = write(tmp_path / "hosts", """
        [server]
        cp-1
        [agent]
        worker-1
        [k3s_cluster:children]
        server
        agent
        [zz_arm:children]
        agent
        [k3s_cluster:vars]
        k3s_version=v1.31.4+k3s1
        ansible_user=debian
        [zz_arm:vars]
        ansible_user=pi
        [agent:vars]
        ansible_port=2200
        [loop:children]
        loop2
        [loop2:children]
        loop
        """)
    data, _ = convert_inventory(load_ansible_inventory(src))
    # zz_arm and k3s_cluster are both parents of agent: same depth, so the alphabetically later wins;
    # agent's own vars (a child) win over both.
    nodes = {n["name"]: n for n in data["nodes"]}
    assert nodes["cp-1"]["user"] == "debian" and nodes["worker-1"]["user"] == "pi"
    assert nodes["worker-1"]["port"] == 2200 and "port" not in nodes["cp-1"]
    assert load_ansible_inventory(src).parents("agent")[0] == "all"
