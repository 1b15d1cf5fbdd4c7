"""Facts about a node: pure command builders and output parsers (no I/O here).

One combined command gathers everything preflight needs in a single round trip,
each fact on its own tagged line so the parser does not depend on ordering.
"""
from __future__ import annotations

from dataclasses import dataclass

from drtool.remote.runner import q


@dataclass(frozen=True)
class NodeFacts:
    os: str
    arch: str
    distro: str
    clock: float
    """Node's epoch time when the command ran."""
    disk_free_kb: int | None
    disk_path: str
    protected: dict[str, bool]
    k3s_units: tuple[str, ...]
    """Installed K3s systemd units (k3s, k3s-agent)."""
    k3s_binary: bool
    rpm_family: bool = False
    """A node the install script would give the k3s-selinux RPM (RHEL/Fedora/SUSE family)."""
    selinux: str = "absent"
    """``enforcing``, ``permissive``, ``disabled`` or ``absent``."""
    k3s_selinux: bool = False
    """The k3s-selinux policy package is installed."""


def facts_command(data_dir: str, protected_paths: tuple[str, ...]) -> str:
    """The shell command that prints tagged fact lines."""
    # df needs an existing path: walk up from the data dir to the first that exists.
    parts = [
        'echo "os=$(uname -s)"',
        'echo "arch=$(uname -m)"',
        'echo "distro=$( (. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME") || echo unknown)"',
        'echo "clock=$(date +%s.%N)"',
        f"d={q(data_dir)}; while [ ! -e \"$d\" ] && [ \"$d\" != / ]; do d=$(dirname \"$d\"); done",
        'echo "diskpath=$d"',
        'echo "disk=$(df -Pk "$d" 2>/dev/null | awk \'NR==2 {print $4}\')"',
        'for u in k3s k3s-agent; do [ -f /etc/systemd/system/$u.service ] && echo "unit=$u"; done',
        '[ -x /usr/local/bin/k3s ] && echo "k3sbin=yes"',
        # As k3s-io/k3s install.sh (setup_selinux, install_selinux_rpm): the release files and
        # ID_LIKE that make it an RPM node, and the policy file it checks for.
        '{ for f in /etc/redhat-release /etc/centos-release /etc/oracle-release /etc/fedora-release '
        '/etc/system-release; do [ -r "$f" ] && echo rpmfamily=yes && break; done; '
        '(. /etc/os-release 2>/dev/null; case "${ID_LIKE:-}" in suse*) echo rpmfamily=yes;; esac); }',
        'if command -v getenforce >/dev/null 2>&1; then echo "selinux=$(getenforce 2>/dev/null)"; '
        'elif [ -r /sys/fs/selinux/enforce ]; then '
        '[ "$(cat /sys/fs/selinux/enforce)" = 1 ] && echo selinux=Enforcing || echo selinux=Permissive; fi',
        '{ rpm -q --quiet k3s-selinux 2>/dev/null || [ -f /usr/share/selinux/packages/k3s.pp ]; } && echo k3sselinux=yes',
    ]
    for p in protected_paths:
        parts.append(f"if [ -e {q(p)} ]; then echo protected=yes:{q(p)}; else echo protected=no:{q(p)}; fi")
    return "; ".join(parts) + "; true"


def parse_facts(output: str) -> NodeFacts:
    values: dict[str, str] = {}
    protected: dict[str, bool] = {}
    units: list[str] = []
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "protected":
            state, _, path = value.partition(":")
            protected[path] = state == "yes"
        elif key == "unit":
            units.append(value)
        else:
            values[key] = value
    disk = values.get("disk", "")
    try:
        clock = float(values.get("clock", "0").replace("N", "") or 0)
    except ValueError:
        clock = 0.0
    return NodeFacts(
        os=values.get("os", "unknown"),
        arch=values.get("arch", "unknown"),
        distro=values.get("distro", "unknown"),
        clock=clock,
        disk_free_kb=int(disk) if disk.isdigit() else None,
        disk_path=values.get("diskpath", "/"),
        protected=protected,
        k3s_units=tuple(units),
        k3s_binary=values.get("k3sbin") == "yes",
        rpm_family=values.get("rpmfamily") == "yes",
        selinux=(values.get("selinux") or "absent").strip().lower(),
        k3s_selinux=values.get("k3sselinux") == "yes",
    )
