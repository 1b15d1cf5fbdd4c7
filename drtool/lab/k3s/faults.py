"""Node-side faults the scenario asks for: ``ssh_drop: {node, during}``.

A flaky link is played by the node itself: when the install or uninstall script
runs the step named in ``during`` (``install`` for a server install, ``join`` for
an agent install, ``uninstall`` for either uninstall script) on the named node,
it ends its own SSH session once, mid-command. drtool sees the connection drop
exactly as it would on a real network. A marker file in the lab dir makes it
happen once per node and step.
"""
from __future__ import annotations

import os
import re
import signal
import socket
from pathlib import Path

from drtool.lab.k3s.labconfig import _read_yaml, read_lab_json

PHASES = ("install", "join", "uninstall")
# The per-connection process OpenSSH names after the user and the session's tty
# ("sshd: lab@notty", "sshd: lab@pts/0"); the listener and "[priv]" monitor never match.
_SESSION = re.compile(r"^(sshd|sshd-session): [^\s@\[]+@(notty|pts/\d+)$")


def _session_ancestor(pid: int) -> int | None:
    """The ``sshd: user@notty`` session process this command runs under (never the listener)."""
    for _ in range(64):  # bounded walk up the parent chain
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        if _SESSION.match(cmdline.strip()):
            return pid
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid <= 1:
            return None
        pid = ppid
    return None


def ssh_drop(phase: str, lab_dir: str | None) -> int:
    """Drop this node's SSH session if the scenario says so for ``phase``; always exits 0."""
    # Run by the install and uninstall scripts at every step: lab.json and the scenario's YAML
    # are read as they are, without the scenario models (a pydantic import per step).
    root, raw = read_lab_json(lab_dir or os.environ.get("DRTOOL_LAB_DIR"))
    if root is None or not isinstance(raw, dict) or phase not in PHASES:
        return 0
    scenario = _read_yaml(Path(raw["scenario"])) if raw.get("scenario") else None
    drop = scenario.get("ssh_drop") if isinstance(scenario, dict) else None
    node = os.environ.get("DRTOOL_LAB_HOSTNAME") or socket.gethostname()
    if not isinstance(drop, dict) or drop.get("node") != node or drop.get("during") != phase:
        return 0
    marker = root / "state" / f"ssh-drop-{node}-{phase}"
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)  # once only
        os.close(fd)
    except FileExistsError:
        return 0
    session = _session_ancestor(os.getppid())
    if session is not None:
        os.kill(session, signal.SIGTERM)
    return 0
