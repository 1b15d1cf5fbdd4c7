"""The simulated K3s where a real cluster differs from what drtool used to assume.

Each test pins one behaviour of real K3s (source named in the lab code it exercises) in
relocated roots (``DRTOOL_LAB_ROOT``), the fast way ``test_k3s_sim`` runs the programs.
"""
from __future__ import annotations

from .test_k3s_sim import _server, roots  # noqa: F401  (roots is a fixture)


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
