"""Pure parts of the simulated K3s: flags, tokens, node passwords, unit files, scenario knobs."""
from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import tarfile

import pytest

from drtool.lab.k3s import artifacts, datastore, nodes, system_pods
from drtool.lab.k3s.flags import Taint, UsageError, kubeconfig_mode, parse_agent, parse_server
from drtool.lab.k3s.labconfig import load_lab_config, scenario_from_dict
from drtool.lab.k3s.rootfs import RootFS
from drtool.lab.k3s.tokens import (TokenError, accepts, ca_hash, ca_mismatch_message, parse_token,
                                   server_token)
from drtool.lab.k3s.units import parse_env_file, parse_unit, unit_name

NO_FILES = lambda p: (_ for _ in ()).throw(OSError(2, "No such file or directory"))  # noqa: E731


# ---------------------------------------------------------------- flags

def test_server_flags_like_the_reference_install():
    cfg = parse_server(["--disable", "traefik", "--node-label", "a=b", "--node-taint=k=v:NoSchedule",
                        "--tls-san", "api.lab,10.0.0.1", "--cluster-init"], {"K3S_KUBECONFIG_MODE": "644"}, "node1")
    assert cfg.node_name == "node1"
    assert cfg.disable == ("traefik",)
    assert cfg.labels == {"a": "b"}
    assert cfg.taints == (Taint("k", "v", "NoSchedule"),)
    assert cfg.tls_sans == ("api.lab", "10.0.0.1")
    assert cfg.embedded_etcd and cfg.cluster_init
    assert kubeconfig_mode(cfg.kubeconfig_mode) == 0o644


def test_disable_takes_comma_lists_and_any_name_as_k3s_does():
    assert parse_server(["--disable=traefik,servicelb"], {}, "n").disable == ("traefik", "servicelb")
    # K3s only skips manifests by name: a misspelt or custom addon name is not an error.
    assert parse_server(["--disable", "trafik", "--disable=my-addon"], {}, "n").disable == ("trafik", "my-addon")


def test_unknown_flag_fails_like_urfave_cli():
    with pytest.raises(UsageError, match="flag provided but not defined: -no-such-flag"):
        parse_server(["--no-such-flag"], {}, "n")


@pytest.mark.parametrize("bad", ["heavy=true", "heavy=true:Sometimes", ":NoSchedule"])
def test_bad_taints_are_rejected(bad):
    with pytest.raises(UsageError, match="invalid taint"):
        Taint.parse(bad)


def test_agent_needs_url_and_token_from_flags_env_or_file():
    with pytest.raises(UsageError, match="--server is required"):
        parse_agent([], {"K3S_TOKEN": "x"}, "node2")
    with pytest.raises(UsageError, match="--token is required"):
        parse_agent([], {"K3S_URL": "https://127.0.0.11:6443"}, "node2")
    cfg = parse_agent(["--node-label", "hardware=heavy"],
                      {"K3S_URL": "https://127.0.0.11:6443", "K3S_TOKEN_FILE": "/tok"}, "node2",
                      read_file=lambda p: "K10abc::server:s3cret\n" if p == "/tok" else NO_FILES(p))
    assert cfg.token == "K10abc::server:s3cret"
    assert cfg.labels == {"hardware": "heavy"} and cfg.node_name == "node2"


def test_unreadable_token_file_is_a_usage_error():
    with pytest.raises(UsageError, match="failed to read token file /missing"):
        parse_agent([], {"K3S_URL": "https://x:6443", "K3S_TOKEN_FILE": "/missing"}, "n", read_file=NO_FILES)


def test_node_name_flag_beats_env_beats_hostname():
    assert parse_server([], {}, "host").node_name == "host"
    assert parse_server([], {"K3S_NODE_NAME": "env"}, "host").node_name == "env"
    assert parse_server(["--node-name", "flag"], {"K3S_NODE_NAME": "env"}, "host").node_name == "flag"


@pytest.mark.parametrize("text,mode", [("", 0o600), ("644", 0o644), ("0640", 0o640)])
def test_kubeconfig_mode(text, mode):
    assert kubeconfig_mode(text) == mode


# ---------------------------------------------------------------- tokens

CA = b"-----BEGIN CERTIFICATE-----\nlab\n-----END CERTIFICATE-----\n"


def test_full_token_pins_the_ca_and_keeps_a_given_secret():
    token = server_token(CA, "my-secret")
    assert token.full() == f"K10{ca_hash(CA)}::server:my-secret"
    assert parse_token(token.full()) == token
    assert "my-secret" not in repr(token)


def test_old_token_against_a_new_ca_is_refused_with_the_real_message():
    old = parse_token(server_token(CA, "s").full())
    message = ca_mismatch_message(old, b"another CA")
    assert message.startswith("token CA hash does not match the Cluster CA certificate hash: ")
    assert ca_mismatch_message(old, CA) == ""
    assert ca_mismatch_message(parse_token("bare"), b"anything") == ""


@pytest.mark.parametrize("bad", ["", "K10short::server:x", f"K10{'a' * 64}::nopassword"])
def test_malformed_tokens(bad):
    with pytest.raises(TokenError):
        parse_token(bad)


def test_accepts_only_known_secrets():
    assert accepts("abc", "zzz", "abc")
    assert not accepts("abc", "", "abd")


# ---------------------------------------------------------------- node passwords

def test_first_join_creates_the_secret_and_a_different_password_is_rejected():
    first = nodes.check_node_password("node2", "pw-1", None)
    assert first.accepted and first.create_secret
    secret = nodes.password_secret("node2", "pw-1")
    assert secret["metadata"] == {"name": "node2.node-password.k3s", "namespace": "kube-system"}
    assert "pw-1" not in json.dumps(secret) and "pw-1" not in base64.b64decode(secret["data"]["hash"]).decode()
    assert nodes.check_node_password("node2", "pw-1", secret) == nodes.JoinVerdict(True)
    rejected = nodes.check_node_password("node2", "pw-2", secret)
    assert not rejected.accepted
    assert "Node password rejected" in rejected.agent_error
    assert "/etc/rancher/node/password" in rejected.agent_error
    assert rejected.server_log.startswith("Node password validation failed for 'node2'")


def test_node_object_carries_roles_labels_and_taints():
    spec = nodes.NodeSpec("node2", "127.0.0.12", "agent", {"hardware": "heavy"},
                          (Taint("heavy", "true", "NoSchedule"),))
    node = nodes.node_object(spec, "10.42.1.0/24", "2024-01-01T00:00:00Z")
    labels = node["metadata"]["labels"]
    assert labels["hardware"] == "heavy" and labels["kubernetes.io/hostname"] == "node2"
    assert "node-role.kubernetes.io/control-plane" not in labels
    assert node["spec"]["taints"] == [{"key": "heavy", "value": "true", "effect": "NoSchedule"}]
    assert nodes.ready_state(node) == "False"
    server = nodes.node_object(nodes.NodeSpec("node1", "127.0.0.11", "server", {}), "10.42.0.0/24", "t")
    assert server["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] == "true"


def test_node_conditions_states():
    ready = {c["type"]: c for c in nodes.node_conditions("True", "t")}
    assert ready["Ready"]["reason"] == "KubeletReady"
    unknown = {c["type"]: c for c in nodes.node_conditions("Unknown", "t")}
    assert unknown["Ready"]["reason"] == "NodeStatusUnknown"
    assert unknown["MemoryPressure"]["status"] == "Unknown"


# ---------------------------------------------------------------- unit files

UNIT = """[Unit]
Description=Lightweight Kubernetes

[Service]
Type=notify
EnvironmentFile=-/etc/default/%N
EnvironmentFile=/etc/systemd/system/k3s.service.env
TimeoutStartSec=0
ExecStart=/usr/local/bin/k3s \\
    server \\
\t'--disable' \\
\t'traefik' \\
\t'--node-label' \\
\t'note=it'"'"'s' \\

"""


def test_unit_file_parsing_handles_continuations_and_quotes():
    unit = parse_unit("k3s.service", UNIT)
    assert unit.exec_start == ("/usr/local/bin/k3s", "server", "--disable", "traefik", "--node-label", "note=it's")
    assert unit.environment_files == (("/etc/default/k3s", True), ("/etc/systemd/system/k3s.service.env", False))
    assert unit.type == "notify" and unit.timeout_start == 0


def test_env_file_values_as_the_install_script_writes_them():
    env = parse_env_file("K3S_TOKEN='K10ab::server:x'\nK3S_URL=\"https://127.0.0.11:6443\"\n# c\nK3S_X=plain\n")
    assert env == {"K3S_TOKEN": "K10ab::server:x", "K3S_URL": "https://127.0.0.11:6443", "K3S_X": "plain"}


def test_unit_names():
    assert unit_name("k3s") == "k3s.service"
    assert unit_name("/etc/systemd/system/k3s-agent.service") == "k3s-agent.service"


# ---------------------------------------------------------------- scenario and lab.json

def test_scenario_fields_k3s_reads():
    sc = scenario_from_dict({"defaults": {"node_ready": 0.4}, "nodes": {"node2": {"ready_delay": 1.5},
                             "node3": {"never_ready": True}},
                             "api": {"refuse_after_start": 2, "http_503": {"start": 4, "duration": 2}}}, env={})
    assert sc.delay_for("node2") == 1.5 and sc.delay_for("node1") == 0.4
    assert sc.never_ready == ("node3",)
    assert sc.api_refuse_after_start == 2 and sc.api_503_window == (4.0, 2.0)


def test_missing_or_broken_lab_files_give_defaults(tmp_path):
    assert load_lab_config(tmp_path).nodes == ()
    (tmp_path / "lab.json").write_text(json.dumps({"nodes": [{"name": "node1", "address": "127.0.0.11"}],
                                                   "scenario": str(tmp_path / "missing.yaml")}))
    lab = load_lab_config(tmp_path)
    assert lab.address_of("node1") == "127.0.0.11" and lab.scenario.delay_for("node1") == 0.3


def test_rootfs_relocates_absolute_paths(tmp_path):
    fs = RootFS.from_env({"DRTOOL_LAB_ROOT": str(tmp_path)})
    assert fs.path("/etc/rancher/k3s/k3s.yaml") == tmp_path / "etc/rancher/k3s/k3s.yaml"
    assert RootFS.from_env({}).path("/etc/x") == RootFS().path("/etc/x")


# ---------------------------------------------------------------- artifacts and builders

def test_install_script_embeds_killall_and_uninstall_and_parses(tmp_path):
    text = artifacts.install_script()
    assert "@KILLALL_SH@" not in text and "@UNINSTALL_SH@" not in text
    assert "Additional k3s services installed, skipping uninstall of k3s" in text
    script = tmp_path / "install.sh"
    script.write_text(text)
    assert subprocess.run(["sh", "-n", str(script)], capture_output=True).returncode == 0


def test_images_tarball_is_small_and_reproducible():
    data = artifacts.images_tarball()
    assert data == artifacts.images_tarball() and len(data) < 64 * 1024
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert any("coredns" in m["RepoTags"][0] for m in manifest)


def test_programs_point_at_the_lab_and_the_venv(tmp_path):
    k3s = artifacts.k3s_program(tmp_path, "/venv/bin/python")
    assert k3s.startswith("#!/venv/bin/python\n") and repr(str(tmp_path.resolve())) in k3s
    assert "prog='systemctl'" in artifacts.systemctl_program(tmp_path, "/venv/bin/python")
    assert set(artifacts.node_os_programs(tmp_path, "/p")) == {"systemctl", "journalctl"}


def test_disabling_traefik_removes_its_helm_jobs_and_deployment():
    assert system_pods.helm_jobs(()) == ["helm-install-traefik-crd", "helm-install-traefik"]
    assert system_pods.helm_jobs(("traefik",)) == []
    names = [w.name for w in system_pods.enabled_workloads(("traefik",))]
    assert names == ["coredns", "local-path-provisioner", "metrics-server"]


def test_helm_job_pod_is_completed_not_ready():
    pod = system_pods.completed_job_pod("helm-install-traefik", "node1", "127.0.0.11", "t")
    assert pod["status"]["phase"] == "Succeeded"
    ready = [c for c in pod["status"]["conditions"] if c["type"] == "Ready"][0]
    assert ready["status"] == "False" and ready["reason"] == "PodCompleted"


# ---------------------------------------------------------------- snapshots

def _etcd_server(root) -> RootFS:
    fs = RootFS(root)
    state = fs.path("/var/lib/rancher/k3s") / datastore.ETCD_FILE
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"resourceVersion": 7, "objects": [{"kind": "Namespace"}]}))
    tls = fs.path("/var/lib/rancher/k3s/server/tls")
    tls.mkdir(parents=True)
    for name in datastore.CA_FILES:
        (tls / name).write_text(f"old {name}")
    return fs


def test_snapshot_save_ls_prune_restore_needs_the_token(tmp_path):
    fs = _etcd_server(tmp_path)
    d = "/var/lib/rancher/k3s"
    a = datastore.save_snapshot(fs, d, "node1", "tok", now=100)
    b = datastore.save_snapshot(fs, d, "node1", "tok", now=200)
    assert a.name == "on-demand-node1-100"
    assert a.location == "file:///var/lib/rancher/k3s/server/db/snapshots/on-demand-node1-100"
    os.utime(fs.path(a.location.removeprefix("file://")), (100, 100))
    assert [s.name for s in datastore.list_snapshots(fs, d)] == [a.name, b.name]
    assert datastore.prune_snapshots(fs, d, 1) == [a.name]
    left = datastore.list_snapshots(fs, d)[0]
    # A fresh node: no datastore, no CAs. The wrong token is refused, the right one restores both.
    fresh = RootFS(tmp_path / "fresh")
    snap = f"/var/lib/rancher/k3s/server/db/snapshots/{left.name}"
    fresh.path(snap).parent.mkdir(parents=True)
    fresh.path(snap).write_bytes(fs.path(snap).read_bytes())
    with pytest.raises(datastore.SnapshotError, match="encrypted with different token"):
        datastore.restore_snapshot(fresh, d, snap, "other")
    datastore.restore_snapshot(fresh, d, snap, "tok")
    restored = json.loads((fresh.path(d) / datastore.ETCD_FILE).read_text())
    assert restored["resourceVersion"] == 7 and "k3sBootstrap" not in restored
    assert (fresh.path(d) / "server/tls/server-ca.key").read_text() == "old server-ca.key"


def test_snapshot_with_sqlite_fails_like_k3s(tmp_path):
    fs = RootFS(tmp_path)
    db = fs.path("/var/lib/rancher/k3s") / datastore.SQLITE_FILE
    db.parent.mkdir(parents=True)
    db.write_text("{}")
    with pytest.raises(datastore.SnapshotError, match="etcd datastore disabled"):
        datastore.save_snapshot(fs, "/var/lib/rancher/k3s", "node1", "tok")
    with pytest.raises(datastore.SnapshotError, match="etcd database not found"):
        datastore.list_snapshots(RootFS(tmp_path / "none"), "/var/lib/rancher/k3s")


def test_config_file_and_dropins_become_flags_before_the_command_line():
    from drtool.lab.k3s.configfile import config_args

    files = {
        "/etc/rancher/k3s/config.yaml": "node-label: [a=1]\ndisable: traefik\ncluster-init: true\nno-such-flag: x\n",
        "/etc/rancher/k3s/config.yaml.d/10-more.yaml": "node-label+: [b=2]\n",
        "/etc/rancher/k3s/config.yaml.d/20-replace.yml": "disable: [servicelb]\n",
        "/etc/rancher/k3s/config.yaml.d/notes.txt": "ignored: true\n",
    }
    warnings: list[str] = []
    words = config_args({}, files.__contains__, files.__getitem__,
                        lambda d: [p.rsplit("/", 1)[1] for p in files if p.rsplit("/", 1)[0] == d],
                        {"node-label", "disable", "cluster-init"}, warnings.append)
    assert words == ["--node-label=a=1", "--node-label=b=2", "--disable=servicelb", "--cluster-init=true"]
    assert warnings == ["Unknown flag --no-such-flag found in config.yaml, skipping"]
    # A single value given on the command line wins; list flags add up.
    cfg = parse_server([*words, "--node-label", "c=3"], {}, "n")
    assert cfg.labels == {"a": "1", "b": "2", "c": "3"} and cfg.disable == ("servicelb",) and cfg.cluster_init


def test_lab_k3s_imports_image_archives_by_suffix_only(tmp_path, capsys):
    # k3s-io/k3s pkg/agent/containerd preloadFile: a gzip archive named .tar is not imported.
    import gzip

    from drtool.lab.k3s import artifacts, images
    from drtool.lab.k3s.rootfs import RootFS

    folder = tmp_path / "var/lib/rancher/k3s/agent/images"
    folder.mkdir(parents=True)
    packed = gzip.compress(artifacts.images_tarball())
    (folder / "renamed.tar").write_bytes(packed)
    (folder / "notes.md").write_text("not an archive")
    imported = images.preload(RootFS(tmp_path), "/var/lib/rancher/k3s")
    assert imported == []
    err = capsys.readouterr().err
    assert "Error encountered while importing /var/lib/rancher/k3s/agent/images/renamed.tar" in err
    assert "notes.md: unhandled file type" in err
    (folder / "renamed.tar").rename(folder / "bundle.tar.gz")
    imported = images.preload(RootFS(tmp_path), "/var/lib/rancher/k3s")
    assert "docker.io/rancher/mirrored-coredns-coredns:1.11.3" in imported
