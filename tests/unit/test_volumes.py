"""Local-path volume listing: parser, sizes, and the flag that gives their data up."""
from __future__ import annotations

from pathlib import Path

from drtool.inventory import load_inventory
from drtool.remote.volumes import Volume, human_size, parse_volumes, volumes_with_data_command
from drtool.tasks import ns

REPO = Path(__file__).resolve().parents[2]


def test_parse_and_describe():
    out = "20\t/var/lib/rancher/k3s/storage/pvc-1_logging_loki\n?\t/var/lib/rancher/k3s/storage/pvc-2_a_b\n\n"
    vols = parse_volumes("node2", out)
    assert vols == [Volume("node2", "/var/lib/rancher/k3s/storage/pvc-1_logging_loki", 20),
                    Volume("node2", "/var/lib/rancher/k3s/storage/pvc-2_a_b", None)]
    assert vols[0].describe() == "node2:/var/lib/rancher/k3s/storage/pvc-1_logging_loki (20.0 KiB)"
    assert [human_size(k) for k in (4, 1536, 3 * 1024 * 1024)] == ["4.0 KiB", "1.5 MiB", "3.0 GiB"]


def test_command_follows_the_inventory_data_dir():
    inv = load_inventory(REPO / "inventory" / "lab.yaml")
    inv = inv.model_copy(update={"k3s": inv.k3s.model_copy(update={"data_dir": "/srv/k3s data"})})
    cmd = volumes_with_data_command(inv)
    assert "'/srv/k3s data/storage'" in cmd and "find" in cmd


def test_discard_volume_data_has_no_short_flag():
    args = {a.name: a for a in ns["rebuild"].get_arguments()}
    assert args["discard_volume_data"].names == ("discard-volume-data",)
