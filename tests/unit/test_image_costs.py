"""The lab's cost model: pull, import and start times from sizes and speeds, and the simulated
kubelet that plays them (pulls what its node lacks, reuses what it holds, says so in its events)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from drtool.errors import BadInput
from drtool.lab.api import Store
from drtool.lab.controllers.health import health
from drtool.lab.k3s.labconfig import scenario_from_dict
from drtool.lab.scenarios import builtin_scenario_path, load_scenario, parse_scenario
from drtool.lab.scenarios.costs import ImageCosts, go_duration

from .test_controllers import APPS, HEAVY, _eventually, _ks, _node, _pods, _run


def test_a_pull_moves_the_compressed_size_over_the_link() -> None:
    costs = ImageCosts(sizes_mb={"a:1": 100, "b:1": 25}, container_start=0.5)
    assert costs.bandwidth_mbit == 100                       # the default link
    assert costs.pull_seconds("a:1") == pytest.approx(8.0)   # 100 MB * 8 bit / 100 Mbit/s
    assert costs.pull_seconds("unsized:1") == 0.0
    assert ImageCosts(bandwidth_mbit=1000, sizes_mb={"a:1": 100}).pull_seconds("a:1") == pytest.approx(0.8)
    # Serial pulls add up, then each container starts.
    assert costs.start_seconds(["a:1", "b:1"], containers=2) == pytest.approx(8.0 + 2.0 + 1.0)


def test_an_import_reads_the_uncompressed_archive_at_disk_speed() -> None:
    costs = ImageCosts(sizes_mb={"a:1": 100, "b:1": 50}, disk_mb_s=300, archive_ratio=2.0)
    assert costs.import_seconds(["a:1", "b:1"]) == pytest.approx(150 * 2 / 300)
    assert costs.import_seconds(["a:1"]) < costs.pull_seconds("a:1")


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (0.313, "313ms"), (1.5941, "1.594s"), (7.264, "7.264s"), (8.0, "8s"), (62.5, "1m2.5s")])
def test_durations_print_as_go_prints_them_in_kubelet_events(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_a_chart_image_without_a_size_names_file_and_field() -> None:
    with pytest.raises(BadInput) as exc:
        parse_scenario({"name": "x", "images": {"charts": {"loki": ["docker.io/grafana/loki:3.3.0"]}}}, "costs.yaml")
    assert str(exc.value) == ("costs.yaml: images.charts.loki: docker.io/grafana/loki:3.3.0 has no size in "
                              "images.sizes_mb")
    with pytest.raises(BadInput, match="images.bandwidth_mbit"):
        parse_scenario({"name": "x", "images": {"bandwidth_mbit": 0}}, "costs.yaml")


def test_the_homelab_cost_scenario_sizes_every_chart_image_and_k3s_reads_it() -> None:
    sc = load_scenario(builtin_scenario_path("homelab-costs"))
    assert sc.images.bandwidth_mbit == 100
    assert {"loki", "grafana", "kube-prometheus-stack", "tempo", "alloy", "gateway-helm"} <= set(sc.images.charts)
    total = sum(sc.images.pull_seconds(ref) for ref in sc.images.sizes_mb)
    assert 60 < total < 120                    # about 1.1 GB over 100 Mbit/s
    import yaml
    k3s = scenario_from_dict(yaml.safe_load(builtin_scenario_path("homelab-costs").read_text()))
    assert k3s.images == sc.images and k3s.time_scale == sc.time_scale


APP = "ghcr.io/lab/app:1"
PINNED = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: apps}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      nodeSelector: {{kubernetes.io/hostname: {node}}}
      tolerations: [{{key: heavy, operator: Exists}}]
      containers: [{{name: main, image: "{image}"}}]
"""


def _one_keeps_one_pulls(image: str, listed_as: str, mb: int) -> tuple[dict, dict, list]:
    """Deployments ``kept`` on node1, which lists ``listed_as`` among its images, and ``pulls``
    on node2, which has none: (repo files, scenario, nodes)."""
    files = {**APPS, "apps/kept.yaml": PINNED.format(name="kept", node="node1", image=image),
             "apps/pulls.yaml": PINNED.format(name="pulls", node="node2", image=image)}
    scenario = {"time_scale": 0.1, "images": {"sizes_mb": {listed_as: mb}}}
    node1 = _node("node1")
    node1["status"]["images"] = [{"names": [listed_as], "sizeBytes": mb * 1_000_000}]
    return files, scenario, [node1, _node("node2", {"hardware": "heavy"}, HEAVY)]


def _kubelet_events(store: Store, prefix: str) -> list[tuple[str, str]]:
    """(reason, message) of the kubelet's Events about the apps pod whose name starts with ``prefix``."""
    pod = next(p for p in _pods(store, "apps") if p["metadata"]["name"].startswith(prefix))
    return [(e["reason"], e["message"]) for e in store.list("", "Event", "apps")
            if e["involvedObject"]["name"] == pod["metadata"]["name"] and e["source"]["component"] == "kubelet"]


def test_a_pod_on_a_node_that_kept_its_image_starts_before_one_that_pulls(tmp_path: Path) -> None:
    # 50 MB over 100 Mbit/s: 4 s of the model, 0.4 s played at time_scale 0.1.
    files, scenario, nodes = _one_keeps_one_pulls(APP, APP, 50)

    async def body(store: Store, repo: Path) -> None:
        store.create(_ks("apps", "./apps"))
        ready: dict[str, float] = {}

        def both_ready() -> bool:
            for name in ("kept", "pulls"):
                if name not in ready and health(store.get("apps", "Deployment", "apps", name)).current:
                    ready[name] = time.monotonic()
            return len(ready) == 2
        await _eventually(both_ready, timeout=10)
        assert ready["pulls"] - ready["kept"] >= 0.3         # the pull's 0.4 s, less polling slack

        assert ("Pulled", f'Container image "{APP}" already present on machine') in _kubelet_events(store, "kept-")
        assert [r for r, _ in _kubelet_events(store, "kept-")].count("Pulling") == 0
        assert ("Pulling", f'Pulling image "{APP}"') in _kubelet_events(store, "pulls-")
        assert ('Pulled', f'Successfully pulled image "{APP}" in 4s (4s including waiting). '
                           "Image size: 50000000 bytes.") in _kubelet_events(store, "pulls-")
        # The kubelet lists what it pulled: the next pod there finds it present.
        images = store.get("", "Node", None, "node2")["status"]["images"]
        assert {"names": [APP], "sizeBytes": 50_000_000} in images

    _run(tmp_path, scenario, body, files, nodes=nodes)


def test_the_critical_path_counts_container_starts_but_no_pulls() -> None:
    from drtool.lab.gitops_repo import fixture_dir
    from drtool.lab.scenarios import critical_path
    base = load_scenario(builtin_scenario_path("homelab"))
    costs = load_scenario(builtin_scenario_path("homelab-costs"))
    plain = critical_path(base, fixture_dir(), "clusters/homelab")
    cached = critical_path(costs, fixture_dir(), "clusters/homelab")
    # Cached images: no pull on the path, only the starts of the containers along it (1 s each,
    # played at 0.05): a whole number of starts, far less than the pulls of the charts' images.
    starts = (cached - plain) / costs.scaled(costs.images.container_start)
    assert 1 <= round(starts) <= 10 and starts == pytest.approx(round(starts))
    assert cached - plain < costs.scaled(costs.images.pull_seconds("docker.io/grafana/loki:3.3.0"))


def _event(reason: str, message: str, stamp: str) -> dict:
    return {"reason": reason, "message": message, "firstTimestamp": stamp, "lastTimestamp": stamp,
            "source": {"component": "kubelet"}, "involvedObject": {"kind": "Pod", "name": "web-1"}}


def test_kubelet_pull_events_become_image_pull_segments_on_the_critical_path() -> None:
    from drtool.kube import graph
    epoch = 1_700_000_000.0
    events = [
        _event("Pulling", f'Pulling image "{APP}"', "2023-11-14T22:13:22Z"),            # epoch + 2
        _event("Pulled", f'Successfully pulled image "{APP}" in 8s (8s including waiting). '
               "Image size: 100000000 bytes.", "2023-11-14T22:13:30Z"),                # epoch + 10
        _event("Pulled", 'Container image "side:1" already present on machine', "2023-11-14T22:13:30Z"),
        _event("Started", "Started container main", "2023-11-14T22:13:31Z"),
    ]
    marks = graph.pull_marks(events, lambda wall: wall - epoch)
    assert [(round(t, 3), r) for t, r, _ in marks] == [(2.0, "Pulling"), (10.0, "Pulled")]
    # A pod seen at 1 s and Ready at 12 s: 1-2 work, 2-10 pulling, 10-12 starting.
    segments = graph.explain_path({}, {}, {"Pod/apps/web-1": 1.0}, {"Pod/apps/web-1": 12.0},
                                  {"Pod/apps/web-1": marks})
    assert [(s["start"], s["end"], s["cause"]) for s in segments] == [
        (1.0, 2.0, "work"), (2.0, 10.0, "image_pull"), (10.0, 12.0, "work")]
    # Both Events in one second (a short pull): the pull still ends after it starts.
    same = graph.pull_marks([events[1], events[0] | {"firstTimestamp": "2023-11-14T22:13:30Z"}],
                            lambda wall: wall - epoch)
    assert [r for _, r, _ in same] == ["Pulling", "Pulled"] and same[1][0] > same[0][0]


def test_nudged_the_critical_path_has_no_requeue_waits() -> None:
    from drtool.lab.gitops_repo import fixture_dir
    from drtool.lab.scenarios import critical_path
    sc = load_scenario(builtin_scenario_path("homelab"))
    plain = critical_path(sc, fixture_dir(), "clusters/homelab")
    nudged = critical_path(sc, fixture_dir(), "clusters/homelab", nudged=True)
    # homelab's Kustomizations wait on each other (dependsOn): without nudges each level waits
    # for the next 30 s requeue (1.5 s at time_scale 0.05); nudged, none does.
    assert nudged < plain
    assert plain - nudged <= 2 * sc.scaled(sc.flux.requeue_dependency)


def test_the_kubelet_knows_an_image_by_the_name_containerd_gives_it(tmp_path: Path) -> None:
    """A pod's short name (`lab/short:1`) is present when the node lists `docker.io/lab/short:1`
    (containerd's CRI normalizes the reference); a pull is listed under the normalized name."""
    short, full = "lab/short:1", "docker.io/lab/short:1"
    files, scenario, nodes = _one_keeps_one_pulls(short, full, 10)

    async def body(store: Store, repo: Path) -> None:
        store.create(_ks("apps", "./apps"))

        def both_ready() -> bool:
            return all(health(store.get("apps", "Deployment", "apps", n)).current for n in ("kept", "pulls"))
        await _eventually(both_ready, timeout=10)

        assert ("Pulled", f'Container image "{short}" already present on machine') in _kubelet_events(store, "kept-")
        assert ("Pulling", f'Pulling image "{short}"') in _kubelet_events(store, "pulls-")
        names = {n for e in store.get("", "Node", None, "node2")["status"]["images"] for n in e["names"]}
        assert full in names and short not in names

    _run(tmp_path, scenario, body, files, nodes=nodes)
