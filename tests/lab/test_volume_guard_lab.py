"""The wipe refuses to delete local-path volumes that hold data, unless archived or explicitly discarded.

K3s keeps local-path volumes under ``<data-dir>/storage`` and its uninstall deletes the data
dir whole; before, the backup only listed them and the teardown deleted them.
"""
from __future__ import annotations

import json
import os
import re
import tarfile

import pytest

from .fulllab import start_full_lab, stop_full_lab_dir, write_inventory

pytestmark = pytest.mark.slow

VOLUME = "/var/lib/rancher/k3s/storage/pvc-3f2a9c_logging_loki-data"
EMPTY_VOLUME = "/var/lib/rancher/k3s/storage/pvc-77e0b1_default_scratch"


@pytest.fixture(scope="module")
def lab():
    full = start_full_lab("127.0.160")
    yield full
    stop_full_lab_dir(full.lab)


def _put_volume_data(lab) -> bytes:
    data = os.urandom(20 * 1024)
    chunk = lab.node_file("node2", VOLUME + "/chunks/000001")
    chunk.parent.mkdir(parents=True, exist_ok=True)
    chunk.write_bytes(data)
    lab.node_file("node2", EMPTY_VOLUME).mkdir(parents=True, exist_ok=True)
    return data


def _journal(lab) -> dict:
    return json.loads((lab.runs_list()[-1] / "journal.json").read_text())


def test_wipe_refused_while_a_volume_holds_unarchived_data(lab):
    data = _put_volume_data(lab)
    res = lab.inv("rebuild", "-i", str(lab.inventory), "--yes", "--to", "teardown")
    assert res.returncode == 7, res.stdout[-2000:] + res.stderr
    assert re.search(rf"refusing to wipe: .*node2:{VOLUME} \(2\d\.\d KiB\)", res.stderr), res.stderr
    assert EMPTY_VOLUME not in res.stderr  # an empty volume loses nothing
    assert "--discard-volume-data" in res.stderr and "Traceback" not in res.stderr
    assert lab.node_file("node2", VOLUME + "/chunks/000001").read_bytes() == data
    run = lab.runs_list()[-1]
    assert f"node2:{VOLUME} (2" in json.loads((run / "report.json").read_text())["error"]["message"]
    assert f"node2:{VOLUME}".replace("_", "\\_") in (run / "report.md").read_text()
    backup = next(p for p in _journal(lab)["phases"] if p["name"] == "backup")
    assert f"node2:{VOLUME} (2" in backup["message"] and "not archived" in backup["message"]


def test_discard_volume_data_wipes_and_says_so(lab):
    _put_volume_data(lab)
    res = lab.inv("rebuild", "-i", str(lab.inventory), "--yes", "--to", "teardown", "--discard-volume-data")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    assert not lab.node_file("node2", VOLUME).exists()
    teardown = next(p for p in _journal(lab)["phases"] if p["name"] == "teardown")
    assert f"volume data discarded (--discard-volume-data): node2:{VOLUME} (2" in teardown["message"]
    assert _journal(lab)["flags"]["discard_volume_data"] is True


def test_archived_volumes_are_wiped_after_the_backup_holds_them(lab):
    data = _put_volume_data(lab)
    inventory = write_inventory(lab.lab, lab.inventory.with_name("archive.yaml"),
                                mutate=lambda d: d.setdefault("backup", {}).update(archive_volumes=True))
    res = lab.inv("rebuild", "-i", str(inventory), "--yes", "--to", "teardown")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    run = lab.runs_list()[-1]
    with tarfile.open(run / "backup" / "node2" / "volumes.tgz") as tar:
        member = tar.extractfile("storage/" + VOLUME.rsplit("/", 1)[1] + "/chunks/000001")
        assert member is not None and member.read() == data
    assert not lab.node_file("node2", VOLUME).exists()
    teardown = next(p for p in _journal(lab)["phases"] if p["name"] == "teardown")
    assert f"volumes archived by the backup: node2:{VOLUME}" in teardown["message"]


def test_agent_replace_stops_before_wiping_an_agent_whose_volumes_hold_data(lab):
    data = _put_volume_data(lab)
    res = lab.inv("runbook.run", "agent-replace", str(lab.inventory), "--yes", "--param", "agent=node2")
    assert res.returncode == 7, res.stdout[-2000:] + res.stderr
    assert re.search(rf"refusing to wipe: .*node2:{VOLUME} \(2\d\.\d KiB\)", res.stdout + res.stderr)
    assert "--param discard_volume_data=true" in res.stdout + res.stderr
    assert lab.node_file("node2", VOLUME + "/chunks/000001").read_bytes() == data
    # Given up explicitly, the check lets the runbook go on, and says what is lost.
    res = lab.inv("runbook.run", "agent-replace", str(lab.inventory), "--yes", "--only", "volumes",
                  "--param", "agent=node2", "--param", "discard_volume_data=true")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    report = json.loads((lab.runs_list()[-1] / "journal.json").read_text())
    assert f"volume data discarded (--param discard_volume_data=true): node2:{VOLUME}" in json.dumps(report)
