"""Nudging Flux against the lab: a two-level ``dependsOn`` chain converges sooner with nudges.

The lab API server (real HTTPS, official client) runs the simulated kustomize-controller, which
re-checks a not-Ready dependency only every ``--requeue-dependency`` (30 s, played at the
scenario's ``time_scale``) and reconciles at once when ``reconcile.fluxcd.io/requestedAt``
changes (kustomize-controller v1.4.0 ``kustomization_manager.go``: ``predicate.Or(
GenerationChangedPredicate, ReconcileRequestedPredicate)``). The same chain is converged twice,
without and with nudges, and the times are compared relative to each other.
"""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
import yaml

from drtool.converge import ConvergeOptions, Converger
from drtool.kube.client import api_client_from_kubeconfig
from drtool.lab.controllers import start_controllers
from drtool.lab.flux import manifests
from drtool.lab.gitops_repo import prepare_gitops
from drtool.report.markdown import render_markdown
from drtool.report.model import build_report, load_report

pytestmark = [pytest.mark.lab, pytest.mark.timeout(120)]

SCALE = 0.05          # the 30 s requeue plays in 1.5 s
CHAIN = (("infra", ()), ("apps", ("infra",)), ("web", ("apps",)))


def _content(root: Path) -> None:
    (root / "clusters/lab").mkdir(parents=True)
    (root / "clusters/lab/.keep").write_text("")
    for name, _ in CHAIN:
        (root / name).mkdir()
        (root / name / "cm.yaml").write_text(yaml.safe_dump(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "flux-system"},
             "data": {"k": "v"}}))


def _kustomization(name: str, depends: tuple[str, ...]) -> dict:
    return {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": "flux-system"},
            "spec": {"interval": "10m", "path": f"./{name}", "prune": True,
                     "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
                     "dependsOn": [{"name": d} for d in depends]}}


def _converge_chain(tmp_path: Path, nudge: bool) -> dict:
    from drtool.lab.api import LabApiServer

    content = tmp_path / "content"
    _content(content)
    gitops = prepare_gitops(tmp_path / "lab", content, "clusters/lab")
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(yaml.safe_dump({"name": "nudge", "time_scale": SCALE,
                                        "defaults": {"git_repository": 0.05, "kustomization": 0.1}}))
    config = {"root": str(tmp_path / "lab"), "gitops": gitops, "scenario": str(scenario)}

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="lab-api", daemon=True)
    thread.start()
    server = LabApiServer("127.0.0.1", 0, bookmark_interval=0.5)

    def run(coro):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(20)

    run(server.start())
    controllers = None
    try:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig.yaml")
        store = server.store
        for crd in manifests.crds():
            server.threadsafe(store.create, crd)
        server.threadsafe(store.create, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}})
        controllers = run(start_controllers(store, config))
        server.threadsafe(store.create, manifests.sync_objects("https://github.com/lab/homelab-gitops", "main",
                                                               "clusters/lab")[0])
        for name, depends in CHAIN:
            server.threadsafe(store.create, _kustomization(name, depends))
        client = api_client_from_kubeconfig(str(kubeconfig))
        try:
            result = Converger(client, ConvergeOptions(deadline_s=30, nudge=nudge)).run()
        finally:
            client.close()
        assert result.converged, result.summary()
        data = result.to_dict()
        data["lab_kustomizations"] = {name: server.threadsafe(store.get, "kustomize.toolkit.fluxcd.io",
                                                              "Kustomization", "flux-system", name)
                                      for name, _ in CHAIN}
        return data
    finally:
        if controllers is not None:
            run(controllers.stop())
        run(server.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def _ready(data: dict, name: str) -> float:
    return next(o["ready_at"] for o in data["objects"] if o["id"] == f"Kustomization/flux-system/{name}")


def test_nudges_cut_the_dependency_requeue_and_each_object_is_nudged_once(tmp_path: Path) -> None:
    plain = _converge_chain(tmp_path / "plain", nudge=False)
    nudged = _converge_chain(tmp_path / "nudged", nudge=True)

    # From the root of the chain being Ready to its end being Ready: without nudges each level
    # waits for its next requeue (1.5 s here), with them only for its own apply.
    plain_s = _ready(plain, "web") - _ready(plain, "infra")
    nudged_s = _ready(nudged, "web") - _ready(nudged, "infra")
    print(f"chain infra→web: {plain_s:.2f}s without nudges, {nudged_s:.2f}s with")
    assert nudged_s < 0.5 * plain_s, (nudged_s, plain_s)
    assert plain["nudge_count"] == 0 and plain["nudges"] == []

    ids = [n["id"] for n in nudged["nudges"]]
    assert sorted(ids) == ["Kustomization/flux-system/apps", "Kustomization/flux-system/web"]
    assert all(n["ok"] for n in nudged["nudges"]) and nudged["nudge_count"] == 2
    # The controller recorded the request it handled, as kustomize-controller does.
    for name in ("apps", "web"):
        obj = nudged["lab_kustomizations"][name]
        requested = obj["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"]
        assert obj["status"]["lastHandledReconcileAt"] == requested
    assert "annotations" not in plain["lab_kustomizations"]["web"]["metadata"] or \
        "reconcile.fluxcd.io/requestedAt" not in plain["lab_kustomizations"]["web"]["metadata"]["annotations"]
    # Each was nudged only after its dependency was Ready, and before it became Ready itself.
    for n in nudged["nudges"]:
        dep = n["after"][0].rsplit("/", 1)[1]
        assert _ready(nudged, dep) <= n["at"] + 0.05 <= _ready(nudged, n["id"].rsplit("/", 1)[1]) + 0.05


def _report(data: dict) -> dict:
    record = {"schema": "drtool.run/v1", "run_id": "lab", "kind": "rebuild", "status": "succeeded",
              "started_at": data["started"], "ended_at": data["ended"],
              "phases": [{"name": "converge", "started_at": data["started"], "ended_at": data["ended"],
                          "outcome": "ok"}], "converge": data}
    return build_report(record)


def test_the_reports_critical_time_explains_the_requeue_waits(tmp_path: Path) -> None:
    plain = _report(_converge_chain(tmp_path / "plain", nudge=False))
    nudged = _report(_converge_chain(tmp_path / "nudged", nudge=True))
    for report in (plain, nudged):
        segments = report["critical_time"]
        assert abs(sum(s["duration_s"] for s in segments) - report["recovery_s"]) < 0.01
        ids = [s["what"] for s in segments]
        # The chain goes back from the last Kustomization through its dependencies to the phase.
        assert ids[0] == "phase converge" and ids.index("Kustomization/flux-system/infra") \
            < ids.index("Kustomization/flux-system/apps") < ids.index("Kustomization/flux-system/web"), ids
    # Without nudges the two 1.5 s requeues are on the path, named as Flux timers; nudged, hardly any.
    timers = [s for s in plain["critical_time"] if s["cause"] == "flux_timer"]
    assert {s["what"] for s in timers} == {"Kustomization/flux-system/apps", "Kustomization/flux-system/web"}, timers
    assert all(s["reason"] == "DependencyNotReady" for s in timers)
    assert plain["critical_time_by_cause"]["flux_timer"] > 4 * nudged["critical_time_by_cause"]["flux_timer"]
    assert "waiting for a Flux timer" in render_markdown(load_report(plain))
