"""Pure K3s command builders: quoting, flags, and that the token never appears in a command."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from drtool.inventory import load_inventory, parse_inventory
from drtool.remote import k3s
from drtool.remote.facts import facts_command, parse_facts

REPO = Path(__file__).resolve().parents[2]
INV = load_inventory(REPO / "inventory" / "lab.yaml")


def test_server_install_command_flags():
    node1 = INV.node("node1")
    cmd = k3s.install_command(INV, node1, server_url=None)
    assert cmd.startswith("IFS= read -r K3S_TOKEN && export K3S_TOKEN && ")
    assert "INSTALL_K3S_SKIP_DOWNLOAD=true" in cmd
    assert "INSTALL_K3S_VERSION=v1.31.4+k3s1" in cmd
    words = shlex.split(cmd.split("env ", 1)[1])
    exec_words = shlex.split(next(w.split("=", 1)[1] for w in words if w.startswith("INSTALL_K3S_EXEC=")))
    assert exec_words[:3] == ["server", "--disable", "traefik"]
    assert "--tls-san" in exec_words and exec_words[exec_words.index("--tls-san") + 1] == "127.0.0.11"
    assert "K3S_URL" not in cmd and "--cluster-init" not in exec_words


def test_agent_install_has_labels_taints_and_url():
    node2 = INV.node("node2")
    cmd = k3s.install_command(INV, node2, server_url="https://127.0.0.11:6443")
    assert "K3S_URL=https://127.0.0.11:6443" in cmd
    exec_value = next(w.split("=", 1)[1] for w in shlex.split(cmd.split("env ", 1)[1]) if w.startswith("INSTALL_K3S_EXEC="))
    assert shlex.split(exec_value) == ["agent", "--node-name", "node2", "--node-label", "hardware=heavy",
                                       "--node-taint", "heavy=true:NoSchedule"]


def test_ha_first_server_cluster_init_then_server_flag():
    data = yaml.safe_load((REPO / "inventory" / "lab.yaml").read_text())
    data["nodes"].append({"name": "node3", "host": "127.0.0.13", "port": 2222, "user": "lab", "role": "server"})
    inv = parse_inventory(data, REPO / "inventory" / "lab.yaml")
    first, third = inv.node("node1"), inv.node("node3")
    assert "--cluster-init" in k3s.install_command(inv, first, server_url=None, cluster_init=True)
    cmd = k3s.install_command(inv, third, server_url=None, first_server=first)
    assert "--server https://127.0.0.11:6443" in shlex.split(cmd.split("env ", 1)[1])[1].replace("'", "") or \
        "--server https://127.0.0.11:6443" in cmd


def test_metacharacters_in_inventory_values_are_quoted():
    data = yaml.safe_load((REPO / "inventory" / "lab.yaml").read_text())
    data["nodes"][1]["labels"] = {"team": "a-b"}
    data["k3s"]["server_args"] = ["--node-label", "x=$(touch /tmp/pwned)"]
    data["nodes"][1]["protected_paths"] = ["/mnt/data; rm -rf /"]
    inv = parse_inventory(data, REPO / "inventory" / "lab.yaml")
    cmd = k3s.install_command(inv, inv.node("node1"), server_url=None)
    # The whole exec value is one quoted word: the shell never sees $( ) unquoted.
    tokens = shlex.split(cmd.split("env ", 1)[1])
    assert any("$(touch /tmp/pwned)" in t for t in tokens)
    assert "$(touch" not in cmd.replace("'", "").split("INSTALL_K3S_EXEC")[0]
    facts = facts_command("/var/lib/rancher/k3s", inv.node("node2").protected_paths)
    assert "'/mnt/data; rm -rf /'" in facts


def test_teardown_script_and_parser():
    script = k3s.teardown_script(INV, INV.node("node2"))
    assert "k3s-agent-uninstall.sh" in script
    # Kept across the wipe: a restored datastore checks agents against it.
    assert "/etc/rancher/node/password" not in script
    assert "/mnt" not in script
    assert k3s.parse_teardown("drtool-teardown: noop\n") == (True, [])
    assert k3s.parse_teardown("drtool-teardown: running k3s-uninstall.sh\ndrtool-left: /var/lib/rancher/k3s\n") == (False, ["/var/lib/rancher/k3s"])


def test_protected_path_under_wiped_dir_is_a_conflict():
    data = yaml.safe_load((REPO / "inventory" / "lab.yaml").read_text())
    data["nodes"][1]["protected_paths"] = ["/var/lib/rancher/k3s/storage/pvc-1", "/mnt/k8s-storage"]
    inv = parse_inventory(data, "x.yaml")
    assert k3s.protected_conflicts(inv, inv.node("node2")) == ["/var/lib/rancher/k3s/storage/pvc-1"]


def test_parse_facts():
    out = "os=Linux\narch=x86_64\ndistro=Ubuntu 24.04 LTS\nclock=1764200000.5\ndiskpath=/var/lib\ndisk=1048576\nunit=k3s\nprotected=yes:/mnt/k8s-storage\nprotected=no:/mnt/x\n"
    f = parse_facts(out)
    assert (f.os, f.arch, f.distro, f.disk_free_kb, f.k3s_units) == ("Linux", "x86_64", "Ubuntu 24.04 LTS", 1048576, ("k3s",))
    assert f.protected == {"/mnt/k8s-storage": True, "/mnt/x": False}
    assert abs(f.clock - 1764200000.5) < 1e-6


def test_install_always_asks_for_the_restart():
    # install.sh skips the start when nothing changed; drtool re-runs it after stopping K3s.
    for node, url in ((INV.node("node1"), None), (INV.node("node2"), "https://127.0.0.11:6443")):
        assert "INSTALL_K3S_FORCE_RESTART=true" in shlex.split(k3s.install_command(INV, node, server_url=url).split("env ", 1)[1])


def test_data_dir_reaches_install_uninstall_snapshot_and_clean_check():
    data = yaml.safe_load((REPO / "inventory" / "lab.yaml").read_text())
    data["k3s"]["data_dir"] = "/srv/k3s data"
    inv = parse_inventory(data, "x.yaml")
    cmd = k3s.install_command(inv, inv.node("node1"), server_url=None)
    exec_words = shlex.split(next(w.split("=", 1)[1] for w in shlex.split(cmd.split("env ", 1)[1]) if w.startswith("INSTALL_K3S_EXEC=")))
    assert exec_words[exec_words.index("--data-dir") + 1] == "/srv/k3s data"
    script = k3s.teardown_script(inv, inv.node("node2"))
    assert "export K3S_DATA_DIR='/srv/k3s data'" in script and "/var/lib/rancher/k3s" not in script
    assert "--data-dir '/srv/k3s data'" in k3s.etcd_snapshot_command(inv, "x")
    # The default stays out of the command, as an operator would type it.
    assert "--data-dir" not in k3s.install_command(INV, INV.node("node1"), server_url=None)


@pytest.mark.parametrize("bad", ["/", "var/lib/k3s", "/var", "/var/lib", "/srv/../etc"])
def test_a_data_dir_the_uninstall_would_take_the_system_with_is_refused(bad):
    data = yaml.safe_load((REPO / "inventory" / "lab.yaml").read_text())
    data["k3s"]["data_dir"] = bad
    with pytest.raises(Exception, match="k3s.data_dir"):
        parse_inventory(data, "x.yaml")


def test_selinux_facts_and_the_airgap_refusal():
    from drtool.phases.preflight import selinux_check

    enforcing = parse_facts("os=Linux\nrpmfamily=yes\nselinux=Enforcing\n")
    assert (enforcing.rpm_family, enforcing.selinux, enforcing.k3s_selinux) == (True, "enforcing", False)
    state, detail = selinux_check(INV, enforcing)          # the lab inventory installs air-gapped
    assert state == "fail" and "k3s-selinux" in detail and "INSTALL_K3S_SKIP_DOWNLOAD=true" in detail
    assert selinux_check(INV, parse_facts("rpmfamily=yes\nselinux=Enforcing\nk3sselinux=yes\n"))[0] == "pass"
    assert selinux_check(INV, parse_facts("rpmfamily=yes\nselinux=Permissive\n"))[0] == "warn"
    assert selinux_check(INV, parse_facts("selinux=Enforcing\n")) is None          # not an RPM node
    assert selinux_check(INV, parse_facts("rpmfamily=yes\nselinux=Disabled\n")) is None


def test_airgap_images_keep_the_suffix_k3s_decompresses_by():
    # k3s-io/k3s pkg/agent/containerd (preloadFile / wharfie tarfile): the name picks the decompressor.
    data = yaml.safe_load((REPO / "inventory" / "lab.yaml").read_text())
    for name, remote in (("k3s-airgap-images-amd64.tar.zst", "k3s-airgap-images.tar.zst"),
                         ("bundle.TGZ", "k3s-airgap-images.TGZ".lower()),
                         ("k3s-airgap-images-amd64.tar", "k3s-airgap-images.tar")):
        data["k3s"]["install"]["images"] = f"/srv/{name}"
        inv = parse_inventory(data, REPO / "inventory" / "lab.yaml")
        uploads = dict((a, r) for a, r, _ in k3s.airgap_uploads(inv))
        assert uploads["images"] == f"/var/lib/rancher/k3s/agent/images/{remote}", name
