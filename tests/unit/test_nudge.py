"""Nudging Flux: the request matches ``flux reconcile``; one per object per dependency change."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

from drtool.converge import ConvergeOptions, Converger
from drtool.kube.fake import InMemoryApi
from drtool.kube.nudge import REQUEST_ANNOTATION, NudgePlanner, patch_body, request_value
from drtool.report.html import render_html
from drtool.report.markdown import render_markdown
from drtool.report.model import build_report, load_report

from tests.unit.test_converge import flux

DEP_WAIT = "dependency 'flux-system/infra' is not ready"


def test_request_is_flux_reconciles_merge_patch_with_rfc3339nano():
    # fluxcd/pkg apis/meta v1.6.1 ReconcileRequestAnnotation; flux2 v2.4.0 time.RFC3339Nano.
    assert REQUEST_ANNOTATION == "reconcile.fluxcd.io/requestedAt"
    assert request_value(datetime(2026, 12, 6, 8, 1, 2, 345000, tzinfo=timezone.utc)) == "2026-12-06T08:01:02.345Z"
    assert request_value(datetime(2026, 12, 6, 8, 1, 2, tzinfo=timezone.utc)) == "2026-12-06T08:01:02Z"
    assert patch_body("x") == {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "x"}}}
    # Two requests in a row must differ: the controllers only act on a changed value.
    first = request_value()
    time.sleep(0.002)
    assert request_value() != first


def _waiting(name: str, depends: tuple[str, ...]) -> dict:
    return flux("Kustomization", "flux-system", name, ready=False, reason="DependencyNotReady", message=DEP_WAIT,
                spec={"dependsOn": [{"name": d} for d in depends]})


def _ready(name: str, revision: str = "main@sha1:1", at: str = "2026-11-26T10:00:00Z") -> dict:
    obj = flux("Kustomization", "flux-system", name, status={"lastAppliedRevision": revision})
    obj["status"]["conditions"][0]["lastTransitionTime"] = at
    return obj


def _pending(*objs: dict) -> list:
    return [(f"{o['kind']}/{o['metadata']['namespace']}/{o['metadata']['name']}", o["kind"],
             o["metadata"]["namespace"], o["metadata"]["name"], o) for o in objs]


def test_planner_nudges_once_per_dependency_change_and_only_when_all_are_ready():
    planner = NudgePlanner()
    cluster = {"Kustomization/flux-system/infra": flux("Kustomization", "flux-system", "infra", ready=False),
               "Kustomization/flux-system/crds": _ready("crds")}
    apps = _waiting("apps", ("infra", "crds"))
    assert planner.due(_pending(apps), cluster.get) == []                 # infra not Ready yet
    cluster["Kustomization/flux-system/infra"] = _ready("infra")
    due = planner.due(_pending(apps), cluster.get)
    assert [n.id for n in due] == ["Kustomization/flux-system/apps"]
    assert due[0].after == ("Kustomization/flux-system/infra", "Kustomization/flux-system/crds")
    assert planner.due(_pending(apps), cluster.get) == []                 # same dependencies: no second nudge
    cluster["Kustomization/flux-system/infra"] = _ready("infra", revision="main@sha1:2")
    assert len(planner.due(_pending(apps), cluster.get)) == 1             # a dependency changed again
    assert planner.sent == 2


def test_planner_leaves_alone_what_a_request_would_not_speed_up():
    planner = NudgePlanner()
    cluster = {"Kustomization/flux-system/infra": _ready("infra")}
    busy = flux("Kustomization", "flux-system", "busy", ready=False, reason="Progressing",
                spec={"dependsOn": [{"name": "infra"}]})
    done = flux("Kustomization", "flux-system", "done", spec={"dependsOn": [{"name": "infra"}]})
    suspended = _waiting("paused", ("infra",))
    suspended["spec"]["suspend"] = True
    fetching = flux("GitRepository", "flux-system", "flux-system", ready=False)
    fetching["status"]["conditions"][0]["status"] = "Unknown"
    failed_fetch = flux("HelmRepository", "flux-system", "charts", ready=False, reason="FetchFailed")
    due = planner.due(_pending(busy, done, suspended, fetching, failed_fetch), cluster.get)
    assert [(n.id, n.after) for n in due] == [("HelmRepository/flux-system/charts", ("bootstrap",))]
    assert planner.due(_pending(failed_fetch), cluster.get) == []         # a source once only


def test_planner_is_bounded():
    planner = NudgePlanner(limit=2)
    cluster = {"Kustomization/flux-system/infra": _ready("infra")}
    objs = [_waiting(f"app{i}", ("infra",)) for i in range(5)]
    assert len(planner.due(_pending(*objs), cluster.get)) == 2
    assert planner.due(_pending(*objs), cluster.get) == []


def _converge(api: InMemoryApi, nudge: bool, deadline_s: float = 3) -> object:
    opts = ConvergeOptions(deadline_s=deadline_s, nudge=nudge)
    conv = Converger(api, opts, watcher_options={"backoff_initial_s": 0.01, "backoff_max_s": 0.05,
                                                 "absent_retry_s": 0.05})
    return conv.run()


def _cluster() -> InMemoryApi:
    api = InMemoryApi()
    api.put(flux("GitRepository", "flux-system", "flux-system"))
    api.put(flux("Kustomization", "flux-system", "infra", ready=False))
    api.put(_waiting("apps", ("infra",)))
    return api


def _controller(api: InMemoryApi) -> threading.Thread:
    """A controller that makes infra Ready, then reconciles apps only when asked to."""
    def work() -> None:
        time.sleep(0.2)
        api.put(_ready("infra"))
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline and not api.patches:
            time.sleep(0.01)
        if api.patches:
            api.put(_ready("apps"))
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_converger_sends_the_request_and_reports_it():
    api = _cluster()
    _controller(api)
    result = _converge(api, nudge=True)
    assert result.converged
    assert api.patches == [("/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/apps",
                            api.patches[0][1])]
    assert set(api.patches[0][1]["metadata"]["annotations"]) == {REQUEST_ANNOTATION}
    data = result.to_dict()
    assert data["nudge_count"] == 1
    assert [(n["id"], n["after"], n["ok"]) for n in data["nudges"]] == [
        ("Kustomization/flux-system/apps", ["Kustomization/flux-system/infra"], True)]

    record = {"schema": "drtool.run/v1", "run_id": "r1", "kind": "rebuild", "inventory": "inv.yaml",
              "cluster": "lab", "host": "h", "trigger": "manual", "status": "succeeded",
              "started_at": data["started"] - 1, "ended_at": data["ended"] + 1, "phases": [], "converge": data}
    report = build_report(record)
    assert report["converge"]["nudges"] == 1
    assert report["nudges"][0]["id"] == "Kustomization/flux-system/apps" and report["nudges"][0]["ok"]
    assert "Flux nudged 1 time(s)" in render_markdown(load_report(report))
    assert "Flux nudged 1 time(s)" in render_html(load_report(report))


def test_converger_without_nudges_sends_nothing():
    api = _cluster()
    _controller(api)
    # infra is Ready after 0.2 s, and a nudge goes out at once when it is: a second is ample.
    result = _converge(api, nudge=False, deadline_s=1.0)
    assert not result.converged and api.patches == [] and result.to_dict()["nudge_count"] == 0


def test_planner_nudges_a_helmrelease_behind_helmrelease_dependencies():
    # helm-controller v1.1.0: dependsOn names HelmReleases (namespace defaults to the release's).
    planner = NudgePlanner()
    crds = flux("HelmRelease", "monitoring", "crds", ready=False)
    stack = flux("HelmRelease", "monitoring", "stack", ready=False, reason="DependencyNotReady",
                 message="dependency 'monitoring/crds' is not ready",
                 spec={"dependsOn": [{"name": "crds"}, {"name": "cert-manager", "namespace": "cert-manager"}]})
    cluster = {"HelmRelease/monitoring/crds": crds,
               "HelmRelease/cert-manager/cert-manager": flux("HelmRelease", "cert-manager", "cert-manager")}
    assert planner.due(_pending(stack), cluster.get) == []
    cluster["HelmRelease/monitoring/crds"] = flux("HelmRelease", "monitoring", "crds")
    due = planner.due(_pending(stack), cluster.get)
    assert [(n.id, n.after) for n in due] == [("HelmRelease/monitoring/stack",
                                              ("HelmRelease/monitoring/crds", "HelmRelease/cert-manager/cert-manager"))]
