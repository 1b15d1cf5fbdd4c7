"""``inv backup`` on its own, for nightly backups: no Flux CLI, no Git token; old runs rotate out.

Before, there was no backup task (only the backup phase inside a rebuild) and
``backup.keep_runs`` was validated but never read, so runs/ grew without bound.
"""
from __future__ import annotations

import json

import pytest

from .fulllab import start_full_lab, stop_full_lab_dir, write_inventory

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab():
    full = start_full_lab("127.0.161")
    yield full
    stop_full_lab_dir(full.lab)


def test_backup_alone_without_flux_and_with_retention(lab):
    # A server to back up: the rebuild up to the server install (no Flux involved).
    res = lab.inv("rebuild", "-i", str(lab.inventory), "--yes", "--to", "install_servers")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr

    def nightly(data):
        data["flux"]["cli"] = "/nonexistent/flux"  # no Flux CLI here
        data["backup"] = {"keep_runs": 2}

    inventory = write_inventory(lab.lab, lab.inventory.with_name("nightly.yaml"), mutate=nightly)
    env = lab.env()
    env.pop("GITHUB_TOKEN")  # and no Git token
    for night in range(3):
        res = lab.inv("backup", str(inventory), env=env)
        assert res.returncode == 0, f"night {night}\n{res.stdout[-2000:]}\n{res.stderr}"
    runs = lab.runs_list()
    assert len(runs) == 2, [r.name for r in runs]  # keep_runs: 2; the rebuild and the first backup went
    assert "removed 1 old run(s) of cluster lab (backup.keep_runs: 2)" in res.stdout
    newest = runs[-1]
    assert newest.name.endswith("-backup")
    journal = json.loads((newest / "journal.json").read_text())
    assert [p["name"] for p in journal["phases"]] == ["backup"] and journal["status"] == "succeeded"
    manifest = json.loads((newest / "backup" / "manifest.json").read_text())
    assert {"node1/token", "node1/state.db", "node1/k3s.yaml", "nodes.json"} <= set(manifest["files"])
    assert (newest / "report.md").exists()
    assert f"backup of cluster lab: {newest / 'backup'}" in res.stdout


VOLUME = "/var/lib/rancher/k3s/storage/pvc-5be1_logging_loki-data"


def test_restore_secrets_and_volumes_from_a_nightly_backup(lab):
    """The runbooks named for restoring a backup put back the Flux secrets and the volume data."""
    from kubernetes import client, config

    inventory = write_inventory(lab.lab, lab.inventory.with_name("archive.yaml"),
                                mutate=lambda d: d.setdefault("backup", {}).update(archive_volumes=True))
    res = lab.inv("rebuild", str(inventory), "--yes", "--discard-volume-data", timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    rebuild_run = lab.runs_list()[-1]
    chunk = lab.node_file("node2", VOLUME + "/chunk-0001")
    chunk.parent.mkdir(parents=True, exist_ok=True)
    chunk.write_bytes(b"loki data " * 1000)
    res = lab.inv("backup", str(inventory))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    backup_run = lab.runs_list()[-1].name
    assert (lab.runs / backup_run / "backup" / "flux-secrets" / "sops-age.json").exists()
    assert (lab.runs / backup_run / "backup" / "node2" / "volumes.tgz").exists()

    core = client.CoreV1Api(config.new_client_from_config(str(rebuild_run / "kubeconfig")))
    before = core.read_namespaced_secret("sops-age", "flux-system").data
    core.delete_namespaced_secret("sops-age", "flux-system")
    chunk.unlink()

    res = lab.inv("runbook.run", "restore-secrets", str(inventory), "--yes", "--param", f"run={backup_run}")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    assert core.read_namespaced_secret("sops-age", "flux-system").data == before
    res = lab.inv("runbook.run", "restore-volumes", str(inventory), "--yes", "--approve", "confirm",
                  "--param", f"run={backup_run}")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    assert chunk.read_bytes() == b"loki data " * 1000

    # restore-datastore puts the archived volumes back too, while K3s is stopped.
    chunk.unlink()
    res = lab.inv("runbook.run", "restore-datastore", str(inventory), "--yes", "--approve", "confirm",
                  "--param", f"run={backup_run}", timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    assert chunk.read_bytes() == b"loki data " * 1000
    steps = json.loads((lab.runs_list()[-1] / "runbook-report.json").read_text())["steps"]
    volumes_step = next(s for s in steps if s["id"] == "restore-volumes")
    assert volumes_step["status"] == "ok", volumes_step
