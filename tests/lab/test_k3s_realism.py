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
