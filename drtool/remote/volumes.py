"""Local-path volumes under the K3s data dir: the one kind of user data an uninstall deletes.

K3s's bundled local-path provisioner keeps each volume in a directory under
``<data-dir>/storage`` unless ``--default-local-storage-path`` moves it (k3s-io/k3s
``pkg/cli/server/server.go``, v1.31.4+k3s1: ``DefaultLocalStoragePath`` defaults to
``filepath.Join(dataDir, "/storage")``), and ``k3s-uninstall.sh`` removes the data dir
whole (``install.sh`` ``create_uninstall``, same tag). Pure builders and parsers; the
teardown phase runs them.
"""
from __future__ import annotations

from dataclasses import dataclass

from drtool.inventory import Inventory
from drtool.remote.runner import q


@dataclass(frozen=True)
class Volume:
    node: str
    path: str
    kib: int | None
    """Disk usage (``du -sk``); None when it could not be read."""

    def describe(self) -> str:
        return f"{self.node}:{self.path} ({human_size(self.kib)})"


def storage_dir(inv: Inventory) -> str:
    return f"{inv.k3s.data_dir.rstrip('/')}/storage"


def volumes_with_data_command(inv: Inventory) -> str:
    """``<kib>\\t<dir>`` for each volume dir under the storage dir that holds at least one file.

    An empty volume dir (provisioned, never written) loses nothing and is not listed.
    """
    storage = q(storage_dir(inv))
    return (f"[ -d {storage} ] || exit 0; "
            f"for v in {storage}/*/; do [ -d \"$v\" ] || continue; v=${{v%/}}; "
            "[ -n \"$(find \"$v\" -type f -print 2>/dev/null | head -n 1)\" ] || continue; "
            "printf '%s\\t%s\\n' \"$(du -sk \"$v\" 2>/dev/null | cut -f1)\" \"$v\"; done; true")


def parse_volumes(node: str, output: str) -> list[Volume]:
    out = []
    for line in output.splitlines():
        size, sep, path = line.partition("\t")
        if sep and path.strip():
            out.append(Volume(node, path.strip(), int(size) if size.strip().isdigit() else None))
    return out


def human_size(kib: int | None) -> str:
    """``4.0 KiB``, ``1.2 MiB``, ``3.4 GiB`` (``size unknown`` for None)."""
    if kib is None:
        return "size unknown"
    value, unit = float(kib), "KiB"
    for next_unit in ("MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, next_unit
    return f"{value:.1f} {unit}"


def describe_all(volumes: list[Volume]) -> str:
    return "; ".join(v.describe() for v in volumes)
