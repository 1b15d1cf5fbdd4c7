"""Where the simulated K3s finds ``/``.

On a lab node the programs see the node's own overlaid ``/etc`` and ``/var/lib``, so the
real absolute paths are right. Tests run the same programs without namespaces by setting
``DRTOOL_LAB_ROOT`` to a directory that stands in for ``/``; every path the programs
read or write goes through :class:`RootFS` so nothing escapes that directory.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

ROOT_ENV = "DRTOOL_LAB_ROOT"
HOSTNAME_ENV = "DRTOOL_LAB_HOSTNAME"

# Well-known K3s paths, as the node sees them.
DATA_DIR = "/var/lib/rancher/k3s"
CONFIG_DIR = "/etc/rancher/k3s"
KUBECONFIG = "/etc/rancher/k3s/k3s.yaml"
NODE_PASSWORD = "/etc/rancher/node/password"
SYSTEMD_DIR = "/etc/systemd/system"
RUN_DIR = "/run/k3s"
LOG_DIR = "/var/log"
UNIT_STATE_DIR = "/run/lab-systemd"


@dataclass(frozen=True)
class RootFS:
    """Maps node paths (``/etc/...``) to host paths under ``root`` (``/`` on a real node)."""

    root: Path = Path("/")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "RootFS":
        env = os.environ if env is None else env
        value = env.get(ROOT_ENV, "")
        return cls(Path(value) if value else Path("/"))

    @property
    def relocated(self) -> bool:
        return self.root != Path("/")

    def path(self, node_path: str | os.PathLike[str]) -> Path:
        """The host path of ``node_path``; relative paths are left alone."""
        p = Path(node_path)
        if not p.is_absolute() or not self.relocated:
            return p
        return self.root / p.relative_to("/")

    def env(self) -> dict[str, str]:
        """Variables a child process needs to see the same root."""
        return {ROOT_ENV: str(self.root)} if self.relocated else {}


def hostname(env: dict[str, str] | None = None) -> str:
    """The node's hostname: the UTS namespace's on a lab node, or the test override."""
    env = os.environ if env is None else env
    return env.get(HOSTNAME_ENV) or socket.gethostname()
