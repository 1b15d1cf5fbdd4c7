"""The cost model on a 2-node lab (real sshd nodes, the K3s install and join run by the pipeline
over SSH, the official kubernetes client over HTTPS): a pod on the node that kept its image
starts before the same pod on a node that must pull it, the kubelets' Events say which, and the
pulled image lands in that node's image store (what ``k3s ctr images ls`` lists and the image
cache exports)."""
from __future__ import annotations

import json
import time

import pytest
import yaml

from drtool.inventory import load_inventory
from drtool.lab.k3s import images as lab_images
from drtool.phases import install, join
from drtool.phases.context import Options
from drtool.pipeline import Pipeline

from .fulllab import full_lab_with_scenario

pytestmark = pytest.mark.slow

STORE = "/var/lib/rancher/k3s/" + lab_images.STORE
APP = "ghcr.io/example/app:2.0"
SCALE = 0.25          # 40 MB over 100 Mbit/s: 3.2 s of the model, 0.8 s in the lab


@pytest.fixture(scope="module")
def lab():
    scenario = {"name": "costs", "time_scale": SCALE,
                "images": {"sizes_mb": {APP: 40}, "container_start": 0.4,
                           "disk_mb_s": 10}}   # an import of APP's archive: 8 s of the model, 2 s here
    with full_lab_with_scenario("127.0.214", "image-costs", scenario, nodes=2) as full:
        yield full


def _apps(lab):
    from kubernetes import client, config
    node1 = lab.lab.nodes[0].address
    kubeconfig = yaml.safe_load(lab.node_file("node1", "/etc/rancher/k3s/k3s.yaml").read_text())
    cluster = kubeconfig["clusters"][0]["cluster"]
    cluster["server"] = cluster["server"].replace("127.0.0.1", node1)
    api = config.new_client_from_config_dict(kubeconfig)
    return client.AppsV1Api(api), client.CoreV1Api(api)


def _deployment(name: str, node: str) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"nodeSelector": {"kubernetes.io/hostname": node},
                                           "tolerations": [{"key": "heavy", "operator": "Exists"}],
                                           "containers": [{"name": "main", "image": APP}]}}}}


def _until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


def test_a_pod_on_the_node_that_kept_its_image_starts_before_one_that_pulls(lab, monkeypatch):
    for key, value in lab.env().items():
        monkeypatch.setenv(key, value)
    assert Pipeline(load_inventory(lab.inventory), Options(yes=True, quiet=True), phases=[install, join]).run() == 0
    # node2 kept the image (as after the image cache gave it back); its kubelet reports it.
    store = lab.node_file("node2", STORE)
    store.write_text(json.dumps(sorted(set(json.loads(store.read_text())) | {APP})))
    apps, core = _apps(lab)

    def listed(node: str) -> bool:
        return any(APP in (i.names or []) for i in core.read_node(node).status.images or [])
    _until(lambda: listed("node2"), 10, "node2 lists the kept image")
    assert not listed("node1")

    for name, node in (("pulls", "node1"), ("kept", "node2")):
        apps.create_namespaced_deployment("default", _deployment(name, node))
    ready: dict[str, float] = {}

    def both_ready() -> bool:
        for name in ("pulls", "kept"):
            if name not in ready and (apps.read_namespaced_deployment(name, "default").status.ready_replicas or 0) >= 1:
                ready[name] = time.monotonic()
        return len(ready) == 2
    _until(both_ready, 30, "both Deployments ready")
    assert ready["pulls"] - ready["kept"] >= 0.5        # the 0.8 s pull, less polling slack

    def kubelet_events(prefix: str) -> list[tuple[str, str]]:
        return [(e.reason, e.message) for e in core.list_namespaced_event("default").items
                if e.involved_object.name.startswith(prefix + "-") and e.source.component == "kubelet"]
    assert ("Pulled", f'Container image "{APP}" already present on machine') in kubelet_events("kept")
    pulled = kubelet_events("pulls")
    assert ("Pulling", f'Pulling image "{APP}"') in pulled
    assert ("Pulled", f'Successfully pulled image "{APP}" in 3.2s (3.2s including waiting). '
            "Image size: 40000000 bytes.") in pulled
    # containerd keeps what it pulled: node1's store has it now, for the next export.
    _until(lambda: APP in json.loads(lab.node_file("node1", STORE).read_text()), 10, "node1's store holds the pull")


class PlaceKeptArchive:
    """Between the wipe and the install: node1's agent/images holds a kept archive of APP."""
    NAME = "place_kept_archive"

    def __init__(self, lab):
        self.lab = lab

    def run(self, ctx):
        folder = self.lab.node_file("node1", "/var/lib/rancher/k3s/agent/images")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "kept-app.tar").write_bytes(lab_images.export_archive([APP], "linux/amd64"))
        return "placed"


def test_the_servers_api_answers_while_it_imports_and_its_node_waits_for_the_import(lab, monkeypatch):
    # k3s-io/k3s pkg/cli/server/server.go run(): READY=1 once the API server is ready, while the
    # server's own agent starts containerd, which imports agent/images before the kubelet runs.
    from drtool.phases import teardown
    for key, value in lab.env().items():
        monkeypatch.setenv(key, value)
    pipeline = Pipeline(load_inventory(lab.inventory), Options(yes=True, quiet=True),
                        phases=[teardown, PlaceKeptArchive(lab), install])
    assert pipeline.run() == 0
    installed = next(p for p in pipeline.run_obj.record["phases"] if p["name"] == "install_servers")["ended_at"]
    _, core = _apps(lab)

    def node1_ready() -> float | None:
        conds = core.read_node("node1").status.conditions or []
        return time.time() if any(c.type == "Ready" and c.status == "True" for c in conds) else None
    ready_at = _until(node1_ready, 15, "node1 Ready after its import")
    assert ready_at - installed >= 1.2, ready_at - installed     # the 2 s import, after the API answered
    log = lab.node_file("node1", "/var/log/k3s.log").read_text()
    assert "Imported images from /var/lib/rancher/k3s/agent/images/kept-app.tar in 8s" in log
    assert APP in json.loads(lab.node_file("node1", STORE).read_text())
