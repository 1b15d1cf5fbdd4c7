"""The image cache on a 2-node lab: real sshd, sudo and shell, the lab's ``k3s ctr`` and its
import-at-start from ``agent/images``. A rebuild (backup → teardown → install → join, run by the
pipeline over SSH) gives back what the nodes' pods used; an archive corrupted after the export is
skipped and its image reported as pulled; an image no pod uses any more is not kept."""
from __future__ import annotations

import json
import stat

import pytest

from drtool.inventory import load_inventory
from drtool.lab.k3s import images as lab_images
from kubernetes import client as kclient

from drtool.kube.client import api_client_from_kubeconfig
from drtool.phases import backup, install, join, kubeconfig, teardown
from drtool.phases.context import Options
from drtool.phases.result import ok
from drtool.pipeline import Pipeline
from drtool.remote import image_cache as remote

from .fulllab import start_full_lab, stop_full_lab_dir

pytestmark = pytest.mark.slow

STORE = "/var/lib/rancher/k3s/" + lab_images.STORE
APP = "docker.io/example/app:1.0"        # on node2: what a pod pulled before the disaster
SIDE = "ghcr.io/example/sidecar:0.3"    # on node1: its archive is corrupted after the export
OLD = "docker.io/example/app:0.9"       # on node2: left in the store by an old version, no pod uses it


@pytest.fixture(scope="module")
def lab():
    full = start_full_lab("127.0.213", nodes=2)
    yield full
    stop_full_lab_dir(full.lab)


def _store(lab, node: str) -> list[str]:
    return json.loads(lab.node_file(node, STORE).read_text())


def _pull_before_the_disaster(lab, node: str, ref: str) -> None:
    # The lab has no registry: a pull is the image's name appearing in the node's store.
    path = lab.node_file(node, STORE)
    path.write_text(json.dumps(sorted(set(_store(lab, node)) | {ref})))


def _run_pod(kubeconfig_path, node: str, name: str, image: str) -> None:
    """A pod of the old cluster, bound to ``node`` (what the scheduler would have done)."""
    api = api_client_from_kubeconfig(str(kubeconfig_path))
    try:
        kclient.CoreV1Api(api).create_namespaced_pod("default", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "containers": [{"name": name, "image": image}]}}, _request_timeout=10)
    finally:
        api.close()


def test_rebuild_gives_the_images_back_and_pulls_a_corrupt_one(lab, monkeypatch):
    for key, value in lab.env().items():
        monkeypatch.setenv(key, value)
    inv = load_inventory(lab.inventory)
    old_cluster = Pipeline(inv, Options(yes=True, quiet=True), phases=[install, join, kubeconfig])
    assert old_cluster.run() == 0
    _run_pod(old_cluster.run_obj.dir / "kubeconfig", "node2", "app", "example/app:1.0")   # short name, as in Git
    _run_pod(old_cluster.run_obj.dir / "kubeconfig", "node1", "sidecar", SIDE)
    _pull_before_the_disaster(lab, "node2", APP)
    _pull_before_the_disaster(lab, "node1", SIDE)
    _pull_before_the_disaster(lab, "node2", OLD)
    before = {n: [r for r in _store(lab, n) if "sha256:" not in r and r != OLD] for n in ("node1", "node2")}
    cache = "/var/lib/drtool/image-cache"

    class CorruptOne:
        """Between the export and the wipe: one of node1's archives changes on disk."""
        NAME = "corrupt_cache"

        @staticmethod
        def run(ctx):
            rows = [r.split("\t") for r in lab.node_file("node1", f"{cache}/{remote.MANIFEST}").read_text().splitlines()]
            [name] = [r[2] for r in rows if r[3] == SIDE]
            lab.node_file("node1", f"{cache}/{name}").write_bytes(b"bit rot")
            return ok("corrupted one archive")

    pipeline = Pipeline(inv, Options(yes=True, quiet=True), phases=[backup, CorruptOne, teardown, install, join])
    assert pipeline.run() == 0
    journal = json.loads((pipeline.run_obj.dir / "journal.json").read_text())
    phases = {p["name"]: p for p in journal["phases"]}
    assert f"node2: {len(before['node2'])} (" in phases["backup"]["message"]
    assert "not used by any pod: 1 left out" in phases["backup"]["message"], phases["backup"]["message"]
    kept = lab.node_file("node2", f"{cache}/{remote.MANIFEST}").read_text()
    assert APP in kept and OLD not in kept
    assert stat.S_IMODE(lab.node_file("node2", cache).stat().st_mode) == 0o700
    # K3s imported the given-back archives at start: the pulled-only image is back without a registry.
    assert APP in _store(lab, "node2") and SIDE not in _store(lab, "node1")
    reused = {**phases["install_servers"]["details"]["images_reused"], **phases["join_agents"]["details"]["images_reused"]}
    assert reused["node2"]["images"] == len(before["node2"]) and reused["node2"]["pulled"] == []
    assert reused["node1"]["images"] == len(before["node1"]) - 1
    assert reused["node1"]["pulled"] == [SIDE] and reused["node1"]["corrupt"] == [SIDE]
    assert reused["node2"]["bytes"] > 0
    assert f"images reused: node2 {len(before['node2'])} (" in phases["join_agents"]["message"]
    assert f"pulled instead: {SIDE}" in phases["install_servers"]["message"]
    placed = sorted(p.name for p in lab.node_file("node2", "/var/lib/rancher/k3s/agent/images").iterdir())
    assert sum(p.startswith(remote.PREFIX) for p in placed) == len(before["node2"])
    # What the operator reads: the report carries the phases' lines.
    report = (pipeline.run_obj.dir / "report.md").read_text()
    assert f"images reused: node2 {len(before['node2'])} (" in report and f"pulled instead: {SIDE}" in report
