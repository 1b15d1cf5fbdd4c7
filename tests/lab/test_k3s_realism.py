"""The simulated K3s where a real cluster differs from what drtool used to assume.

Each test pins one behaviour of real K3s (source named in the lab code it exercises) in
relocated roots (``DRTOOL_LAB_ROOT``), the fast way ``test_k3s_sim`` runs the programs.
"""
from __future__ import annotations

from .test_k3s_sim import _free_port, _server, roots  # noqa: F401  (roots is a fixture)


def _active(root, unit: str = "k3s") -> str:
    return root.run("systemctl", "is-active", unit).stdout.strip()


def test_rerun_with_unchanged_files_leaves_a_stopped_k3s_stopped_unless_forced(roots):  # noqa: F811
    srv = roots("node1")
    port, _ = _server(srv)
    exec_ = srv.file("/etc/systemd/system/k3s.service").read_text().split("ExecStart=", 1)[1]
    words = [w.strip().strip("\\").strip().strip("'") for w in exec_.splitlines()[1:] if w.strip().strip("\\").strip()]
    assert srv.run("systemctl", "stop", "k3s").returncode == 0
    again = srv.install(INSTALL_K3S_EXEC=" ".join(words))
    assert again.returncode == 0, again.stderr
    assert "No change detected so skipping service start" in again.stdout
    assert "Skipping installation of SELinux RPM" in again.stdout        # air-gapped: never the policy RPM
    assert _active(srv) == "inactive"
    forced = srv.install(INSTALL_K3S_EXEC=" ".join(words), INSTALL_K3S_FORCE_RESTART="true")
    assert forced.returncode == 0, forced.stderr + srv.log("k3s")
    assert "No change detected" not in forced.stdout
    assert _active(srv) == "active"


def test_uninstall_wipes_the_data_dir_named_by_K3S_DATA_DIR(roots):  # noqa: F811
    srv = roots("node1")
    port = _free_port(srv.address)
    started = srv.install(INSTALL_K3S_EXEC=f"server --bind-address {srv.address} --https-listen-port {port} "
                                          "--data-dir /var/lib/k3s-data")
    assert started.returncode == 0, started.stderr + srv.log("k3s")
    assert srv.file("/var/lib/k3s-data/server/token").exists()
    assert not srv.file("/var/lib/rancher/k3s/server").exists()
    # The generated script does not remember --data-dir: without K3S_DATA_DIR it wipes the default.
    result = srv.run("env", "K3S_DATA_DIR=/var/lib/k3s-data", str(srv.file("/usr/local/bin/k3s-uninstall.sh")))
    assert result.returncode == 0, result.stderr
    assert not srv.file("/var/lib/k3s-data").exists()


def test_uninstall_keeps_mount_points_under_the_data_dir_and_empties_them(roots):  # noqa: F811
    srv = roots("node1")
    _server(srv)
    storage = srv.file("/var/lib/rancher/k3s/storage")
    storage.mkdir(parents=True, exist_ok=True)
    # A private mount namespace: the tmpfs exists only for this uninstall run.
    script = (f"mount -t tmpfs lab-volumes {storage} && echo data > {storage}/pvc-1 && "
              f"{srv.file('/usr/local/bin/k3s-uninstall.sh')}; rc=$?; "
              f"grep -c ' {storage} ' /proc/mounts; ls -A {storage}; ls -A {storage.parent}; exit $rc")
    result = srv.run("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert lines[-2:] == ["1", "storage"], result.stdout     # mounted, empty, the only entry left
    assert not srv.file("/var/lib/rancher/k3s/server").exists()


def test_a_restored_older_datastore_refuses_newer_certificates_until_they_are_set_aside(roots):  # noqa: F811
    import shutil
    import sqlite3
    import time

    srv = roots("node1")
    port, old_token = _server(srv)
    started = time.monotonic()
    old_ca = srv.file("/var/lib/rancher/k3s/server/tls/server-ca.crt").read_bytes()
    backup = srv.path / "state-backup.db"
    with sqlite3.connect(srv.file("/var/lib/rancher/k3s/server/db/state.db")) as src, sqlite3.connect(backup) as dst:
        src.backup(dst)
    assert srv.run("k3s-uninstall.sh").returncode == 0
    srv.put_binary()
    time.sleep(max(0.0, started + 3.5 - time.monotonic()))   # K3s tolerates 3 s of clock skew
    exec_ = f"server --bind-address {srv.address} --https-listen-port {port}"
    assert srv.install(INSTALL_K3S_EXEC=exec_).returncode == 0     # a new cluster: new CA, new token
    assert srv.file("/var/lib/rancher/k3s/server/tls/server-ca.crt").read_bytes() != old_ca

    assert srv.run("systemctl", "stop", "k3s").returncode == 0
    db = srv.file("/var/lib/rancher/k3s/server/db/state.db")
    shutil.copyfile(backup, db)
    srv.file("/var/lib/rancher/k3s/server/token").unlink()
    refused = srv.install(INSTALL_K3S_EXEC=exec_, K3S_TOKEN=old_token, INSTALL_K3S_FORCE_RESTART="true")
    assert refused.returncode != 0
    assert ("/var/lib/rancher/k3s/server/tls/server-ca.crt" in srv.log("k3s")
            and "newer than datastore and could cause a cluster outage" in srv.log("k3s"))

    srv.file("/var/lib/rancher/k3s/server/tls").rename(srv.file("/var/lib/rancher/k3s/server/tls.old"))
    srv.file("/var/lib/rancher/k3s/server/token").unlink(missing_ok=True)
    restored = srv.install(INSTALL_K3S_EXEC=exec_, K3S_TOKEN=old_token, INSTALL_K3S_FORCE_RESTART="true")
    assert restored.returncode == 0, restored.stderr + srv.log("k3s")
    assert srv.file("/var/lib/rancher/k3s/server/tls/server-ca.crt").read_bytes() == old_ca


def test_the_stored_bootstrap_data_needs_the_token_it_was_saved_with(roots):  # noqa: F811
    srv = roots("node1")
    port, _ = _server(srv)
    assert srv.run("systemctl", "stop", "k3s").returncode == 0
    srv.file("/var/lib/rancher/k3s/server/token").unlink()
    other = "K10" + "0" * 64 + "::server:another-secret"
    result = srv.install(INSTALL_K3S_EXEC=f"server --bind-address {srv.address} --https-listen-port {port}",
                         K3S_TOKEN=other, INSTALL_K3S_FORCE_RESTART="true")
    assert result.returncode != 0
    assert "bootstrap data already found and encrypted with different token" in srv.log("k3s")


def test_the_servers_own_node_is_checked_against_its_local_password_file(roots):  # noqa: F811
    from .test_k3s_sim import _kube, _wait_nodes_ready

    srv = roots("node1")
    port, _ = _server(srv)
    api = _kube(srv, port)
    _wait_nodes_ready(api, {"node1"})
    # As after restoring a datastore whose node1 Secret was made from another password.
    assert srv.run("systemctl", "stop", "k3s").returncode == 0
    srv.file("/etc/rancher/node/password").write_text("a-different-password\n")
    assert srv.run("systemctl", "start", "k3s").returncode == 0
    api = _kube(srv, port)
    _wait_nodes_ready(api, {"node1"})
    events = [e for e in api.list_namespaced_event("default").items if e.reason == "NodePasswordValidationFailed"]
    assert events and events[0].type == "Warning" and events[0].involved_object.name == "node1"


def test_flags_from_config_yaml_and_its_dropins(roots):  # noqa: F811
    from .test_k3s_sim import _kube, _wait_nodes_ready

    srv = roots("node1")
    conf = srv.file("/etc/rancher/k3s/config.yaml")
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("node-label:\n  - from-config=yes\n")
    (conf.parent / "config.yaml.d").mkdir()
    (conf.parent / "config.yaml.d" / "50-extra.yaml").write_text("node-label+: [dropin=yes]\n")
    port, _ = _server(srv)
    labels = _wait_nodes_ready(_kube(srv, port), {"node1"})["node1"].metadata.labels
    assert labels["from-config"] == "yes" and labels["dropin"] == "yes"


def test_embedded_etcd_keeps_the_cluster_cas_too(roots):  # noqa: F811
    import os
    import time

    srv = roots("node1")
    port, token = _server(srv, "--cluster-init")
    tls = srv.file("/var/lib/rancher/k3s/server/tls")
    ca = (tls / "server-ca.crt").read_bytes()
    exec_ = f"server --cluster-init --bind-address {srv.address} --https-listen-port {port}"
    assert srv.run("systemctl", "stop", "k3s").returncode == 0
    tls.rename(tls.with_name("tls.old"))                # missing certificates come back from etcd
    again = srv.install(INSTALL_K3S_EXEC=exec_, INSTALL_K3S_FORCE_RESTART="true")
    assert again.returncode == 0, again.stderr + srv.log("k3s")
    assert (tls / "server-ca.crt").read_bytes() == ca
    assert srv.run("systemctl", "stop", "k3s").returncode == 0
    (tls / "server-ca.crt").write_bytes(ca.replace(b"-----END", b"\n-----END"))
    later = time.time() + 10
    os.utime(tls / "server-ca.crt", (later, later))     # a different, newer file on disk
    refused = srv.install(INSTALL_K3S_EXEC=exec_, INSTALL_K3S_FORCE_RESTART="true")
    assert refused.returncode != 0
    assert "server-ca.crt newer than datastore and could cause a cluster outage" in srv.log("k3s")
