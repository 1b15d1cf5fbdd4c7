"""Process plumbing shared by ``k3s server`` and ``k3s agent`` (stdlib only).

Logs go to stderr in logrus's text format, as K3s writes them to the journal
(``time="..." level=info msg="..."``); ``sd_notify`` tells a ``Type=notify`` unit
manager that startup finished, through ``$NOTIFY_SOCKET`` as systemd expects.
"""
from __future__ import annotations

import datetime as _dt
import os
import socket
import sys


def log(level: str, msg: str) -> None:
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = msg.replace("\\", "\\\\").replace('"', '\\"')
    print(f'time="{now}" level={level} msg="{text}"', file=sys.stderr, flush=True)


def info(msg: str) -> None:
    log("info", msg)


def warn(msg: str) -> None:
    log("warning", msg)


def error(msg: str) -> None:
    log("error", msg)


def fatal(msg: str) -> int:
    """Log like logrus's Fatal and return the exit status the caller should use."""
    log("fatal", msg)
    return 1


def sd_notify(state: str = "READY=1") -> bool:
    """Send ``state`` to ``$NOTIFY_SOCKET``; False when there is no unit manager listening."""
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return False
    if path.startswith("@"):
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), path)
    except OSError:
        return False
    return True


def read_or_create_secret_file(path, factory) -> str:
    """The content of ``path``, created (mode 0600) with ``factory()`` when missing or empty."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    if text:
        return text
    path.parent.mkdir(parents=True, exist_ok=True)
    value = factory()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value
