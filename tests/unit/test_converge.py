"""The converge engine's policy (done, fail fast, deadline, expectations) against the in-memory API."""
from __future__ import annotations

import json
import threading
import time

from drtool.converge import ConvergeOptions, Converger, snapshot
from drtool.errors import NotConverged
from drtool.kube.fake import InMemoryApi

import pytest

T = "2026-11-26T10:00:00Z"


def cond(type_, status, reason="", message=""):
    return {"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": T}


def flux(kind, ns, name, ready=True, spec=None, reason=None, message="", stalled=None, status=None):
    api = {"Kustomization": "kustomize.toolkit.fluxcd.io/v1", "HelmRelease": "helm.toolkit.fluxcd.io/v2",
           "GitRepository": "source.toolkit.fluxcd.io/v1", "HelmRepository": "source.toolkit.fluxcd.io/v1"}[kind]
    conds = [cond("Ready", "True" if ready else "False",
                  reason or ("ReconciliationSucceeded" if ready else "Progressing"), message)]
    if stalled:
        conds.append(cond("Stalled", "True", stalled[0], stalled[1]))
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": ns, "generation": 1},
            "spec": spec or {}, "status": {"observedGeneration": 1, "conditions": conds, **(status or {})}}


def deployment(ns, name, ready=True, labels=None):
    n = 1 if ready else 0
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "generation": 1, "labels": labels or {}},
            "spec": {"replicas": 1},
            "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": n,
                       "availableReplicas": n}}


def pod(ns, name, ready=True, phase="Running", waiting=None, restarts=0, owner=None, unschedulable=False, labels=None):
    cs = {"name": "c", "ready": ready, "restartCount": restarts,
          "state": {"waiting": {"reason": waiting[0], "message": waiting[1]}} if waiting else {"running": {}}}
    conds = [cond("Ready", "True" if ready else "False")]
    if unschedulable:
        conds = [cond("PodScheduled", "False", "Unschedulable",
                      "0/2 nodes are available: 1 node(s) had untolerated taint {heavy: true}.")]
        cs = None
    meta = {"name": name, "namespace": ns, "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1]}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "status": {"phase": phase, "conditions": conds, "containerStatuses": [cs] if cs else []}}


def homelab(api: InMemoryApi, loki_ready=True, loki_stalled=False):
    """The reference cluster's Flux graph: workloads -> infrastructure -> HelmRelease loki -> pods."""
    api.put({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node1"},
             "status": {"conditions": [cond("Ready", "True", "KubeletReady")]}})
    api.put(flux("GitRepository", "flux-system", "flux-system"))
    api.put(flux("HelmRepository", "flux-system", "grafana"))
    src = {"sourceRef": {"kind": "GitRepository", "name": "flux-system"}}
    api.put(flux("Kustomization", "flux-system", "infrastructure",
                 spec={**src, "wait": True, "healthChecks": [
                     {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "name": "loki",
                      "namespace": "logging"}]}, ready=loki_ready,
                 reason=None if loki_ready else "HealthCheckFailed"))
    api.put(flux("Kustomization", "flux-system", "workloads",
                 spec={**src, "dependsOn": [{"name": "infrastructure"}]}, ready=loki_ready,
                 reason=None if loki_ready else "DependencyNotReady"))
    api.put(flux("HelmRelease", "logging", "loki", ready=loki_ready and not loki_stalled,
                 spec={"chart": {"spec": {"chart": "loki", "version": "6.21.0",
                                          "sourceRef": {"kind": "HelmRepository", "name": "grafana",
                                                        "namespace": "flux-system"}}}},
                 reason="InstallFailed" if loki_stalled else None,
                 stalled=("RetriesExceeded", "Failed to install after 3 attempt(s)") if loki_stalled else None,
                 status={"history": [{"chartName": "loki", "chartVersion": "6.21.0"}]}))
    api.put(deployment("logging", "loki", labels={"helm.toolkit.fluxcd.io/name": "loki",
                                                  "helm.toolkit.fluxcd.io/namespace": "logging"}))
    api.put(pod("logging", "loki-5d8f-abcde", owner=("ReplicaSet", "loki-5d8f")))


def options(**kw):
    kw.setdefault("deadline_s", 5)
    return ConvergeOptions(**kw)


def run(api, opts, **kw):
    kw.setdefault("watcher_options", {"backoff_initial_s": 0.01, "backoff_max_s": 0.05, "absent_retry_s": 0.05})
    return Converger(api, opts, **kw).run()


def test_converged_result_is_json_and_has_critical_path():
    api = InMemoryApi()
    homelab(api)
    res = run(api, options(expected_kustomizations=("flux-system/workloads",),
                           expected_helmreleases=(("logging", "loki", "6.21.0"),)))
    assert res.converged and res.outcome == "converged" and not res.pending
    d = json.loads(json.dumps(res.to_dict()))
    ids = {o["id"] for o in d["objects"]}
    assert {"Kustomization/flux-system/workloads", "HelmRelease/logging/loki", "Pod/logging/loki-5d8f-abcde",
            "Node/node1"} <= ids
    assert d["critical_path"][-1]["id"] == "Kustomization/flux-system/workloads"
    assert all(step["ready_at"] > 1e9 for step in d["critical_path"])   # epoch seconds
    assert d["api_requests"]["list"] >= 1 and d["ended"] >= d["started"]
    assert res.raise_for_status() is res


def test_waits_until_ready_and_records_when():
    api = InMemoryApi()
    homelab(api, loki_ready=False)
    progress = []

    def flip():
        time.sleep(0.3)
        homelab(api, loki_ready=True)
    threading.Thread(target=flip, daemon=True).start()
    res = run(api, options(), on_progress=progress.append, progress_interval_s=0.05)
    assert res.converged
    loki = next(o for o in res.objects if o.id == "HelmRelease/logging/loki")
    assert [h["state"] for h in loki.history] == ["InProgress", "Current"]
    assert loki.ready_at - loki.first_seen >= 0.25
    assert progress and progress[0].counts["HelmRelease"] == (0, 1)
    assert "HelmRelease/logging/loki" in progress[0].pending


def test_stalled_helmrelease_fails_fast_with_chain_and_events():
    api = InMemoryApi()
    homelab(api, loki_ready=False, loki_stalled=True)
    api.events.append({"involvedObject": {"kind": "HelmRelease", "name": "loki"}, "reason": "InstallFailed",
                       "message": "Helm install failed: context deadline exceeded", "count": 3,
                       "lastTimestamp": T})
    # How soon it fails is checked on the engine's clock (test_converge_clock.py), not here.
    res = run(api, options(deadline_s=30))
    assert not res.converged and res.outcome == "failed"
    (failure,) = res.failures
    assert failure.object == "HelmRelease/logging/loki" and failure.reason == "RetriesExceeded"
    assert failure.chain == "workloads waits on infrastructure which waits on HelmRelease logging/loki"
    assert failure.blocks == ("Kustomization/flux-system/infrastructure", "Kustomization/flux-system/workloads")
    assert failure.events == ("InstallFailed: Helm install failed: context deadline exceeded (x3)",)
    with pytest.raises(NotConverged, match="RetriesExceeded"):
        res.raise_for_status()


@pytest.mark.parametrize("restarts,fails", [(2, False), (3, True)])
def test_crashloop_threshold(restarts, fails):
    api = InMemoryApi()
    homelab(api)
    api.put(pod("llm", "llama-1", ready=False, restarts=restarts,
                waiting=("CrashLoopBackOff", "back-off 40s restarting failed container")))
    res = run(api, options(deadline_s=0.5))
    assert res.outcome == ("failed" if fails else "deadline")
    if fails:
        assert res.failures[0].object == "Pod/llm/llama-1" and "restarted 3 times" in res.failures[0].message
    else:
        assert res.pending == ("Pod/llm/llama-1",)


def test_image_pull_error_fails_at_once():
    api = InMemoryApi()
    api.put(pod("llm", "llama-1", ready=False, phase="Pending",
                waiting=("ImagePullBackOff", 'Back-off pulling image "ghcr.io/x/llama:1"')))
    res = run(api, options(deadline_s=10))
    assert res.outcome == "failed" and res.failures[0].reason == "ImagePullBackOff"


def test_unschedulable_fails_only_after_grace():
    api = InMemoryApi()
    api.put(pod("llm", "llama-1", ready=False, phase="Pending", unschedulable=True))
    res = run(api, options(deadline_s=10, unschedulable_grace_s=0.4))
    assert res.outcome == "failed" and res.failures[0].reason == "Unschedulable"
    assert "untolerated taint" in res.failures[0].message


def test_keep_waiting_never_fails_fast_but_reports_at_deadline():
    api = InMemoryApi()
    api.put(pod("llm", "llama-1", ready=False, phase="Pending",
                waiting=("ErrImagePull", "not found")))
    res = run(api, options(deadline_s=0.4, keep_waiting=True))
    assert res.outcome == "deadline" and res.failures and res.pending == ("Pod/llm/llama-1",)
    assert "pending: Pod/llm/llama-1" in res.summary()


def test_chart_version_expectation_and_missing_objects_stay_pending():
    api = InMemoryApi()
    homelab(api)
    res = run(api, options(deadline_s=0.3, expected_kustomizations=("flux-system/apps",),
                           expected_helmreleases=(("logging", "loki", "6.22.0"),)))
    assert res.outcome == "deadline"
    assert set(res.pending) == {"Kustomization/flux-system/apps (not found)",
                                "HelmRelease/logging/loki (chart 6.21.0, expected 6.22.0)"}


def test_ignored_namespaces_and_k3s_helm_install_pods():
    api = InMemoryApi()
    api.put(pod("sandbox", "broken", ready=False, waiting=("ErrImagePull", "x")))
    api.put(pod("kube-system", "helm-install-traefik-abc", ready=False, phase="Succeeded",
                owner=("Job", "helm-install-traefik")))
    api.put(pod("kube-system", "helm-install-traefik-old", ready=False, phase="Failed",
                owner=("Job", "helm-install-traefik"),
                waiting=("CrashLoopBackOff", "x"), restarts=9))
    res = run(api, options(ignore_namespaces=("sandbox",)))
    assert res.converged
    assert "Pod/sandbox/broken" not in {o.id for o in res.objects}


def test_survives_outage_during_wait():
    api = InMemoryApi()
    homelab(api, loki_ready=False)

    def outage():
        time.sleep(0.2)
        api.set_down(True)
        homelab(api, loki_ready=True)
        time.sleep(0.5)
        api.set_down(False)
    threading.Thread(target=outage, daemon=True).start()
    res = run(api, options(deadline_s=5))
    assert res.converged


def test_missing_flux_crds_only_matter_when_expected():
    api = InMemoryApi()
    for g in ("source.toolkit.fluxcd.io", "kustomize.toolkit.fluxcd.io", "helm.toolkit.fluxcd.io"):
        api.served_groups[g] = None
    api.put(pod("app", "web", ready=True))
    assert run(api, options()).converged
    res = run(api, options(deadline_s=0.3, expected_kustomizations=("flux-system/flux-system",)))
    assert "Kustomization (not listed yet)" in res.pending


def test_snapshot_for_status():
    api = InMemoryApi()
    homelab(api)
    snap = snapshot(api, options(expected_helmreleases=(("logging", "loki", "6.21.0"),)))
    assert snap.ok and snap.counts["Pod"] == (1, 1) and not snap.missing
    api.put(pod("llm", "llama-1", ready=False, restarts=5, waiting=("CrashLoopBackOff", "back-off")))
    snap = snapshot(api, options())
    assert not snap.ok
    (row,) = snap.not_done
    assert row.name == "llama-1" and row.problem.startswith("CrashLoopBackOff")
    assert "watch" not in snap.api_requests


class _LaggingDeployments(InMemoryApi):
    """Deployment watches connect but deliver nothing: that kind's view lags (as after an outage)."""

    def watch(self, path, query, on_open=None):
        if "/deployments" not in path:
            yield from super().watch(path, query, on_open)
            return
        time.sleep(min(float(query.get("timeoutSeconds", 1)), 0.5))
        return


def test_convergence_is_confirmed_by_a_fresh_list_when_a_kind_lags():
    """A Kustomization turns Ready while the Deployment it applied is not ready and the
    Deployment watch has not delivered it yet: the engine must not declare convergence."""
    api = _LaggingDeployments()
    api.put(flux("Kustomization", "flux-system", "apps", ready=False))
    options = ConvergeOptions(deadline_s=1.5, expected_kustomizations=("flux-system/apps",))
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(r=Converger(api, options, tick_s=0.02).run()))
    worker.start()
    time.sleep(0.3)
    api.put(deployment("web", "hello", ready=False))          # the lagging watch never shows it
    api.put(flux("Kustomization", "flux-system", "apps", ready=True))
    worker.join(10)
    assert result["r"].outcome == "deadline", result["r"].summary()


NO_MATCHES = ('HelmRelease/monitoring/kube-prometheus-stack dry-run failed: no matches for kind "ServiceMonitor" '
              'in version "monitoring.coreos.com/v1"')


def frozen_cluster(api: InMemoryApi, with_pending_helmrelease: bool = False):
    """kustomize-controller v1.4.0 wording: the apply fails on a kind no CRD serves; apps waits on it."""
    src = {"sourceRef": {"kind": "GitRepository", "name": "flux-system"}}
    api.put(flux("GitRepository", "flux-system", "flux-system"))
    api.put(flux("Kustomization", "flux-system", "monitoring", ready=False, reason="ReconciliationFailed",
                 message=NO_MATCHES, spec=src))
    api.put(flux("Kustomization", "flux-system", "apps", ready=False, reason="DependencyNotReady",
                 message="dependency 'flux-system/monitoring' is not ready",
                 spec={**src, "dependsOn": [{"name": "monitoring"}]}))
    if with_pending_helmrelease:      # could still install the CRD: keep waiting
        api.put(flux("HelmRelease", "monitoring", "prometheus-operator-crds", ready=False,
                     reason="Progressing", message="Running 'install' action with timeout of 5m0s"))


def test_stuck_cluster_fails_after_the_grace_naming_root_and_chain():
    api = InMemoryApi()
    frozen_cluster(api)
    res = run(api, options(deadline_s=30, stuck_grace_s=0.5))
    assert res.outcome == "stuck" and not res.converged
    (failure,) = res.failures
    assert failure.object == "Kustomization/flux-system/monitoring" and failure.reason == "ReconciliationFailed"
    assert "no matches for kind" in failure.message and failure.chain == "apps waits on monitoring"
    assert "nothing changed for" in res.summary() and "no matches for kind" in res.summary()


@pytest.mark.parametrize("keep_waiting,pending_hr", [(True, False), (False, True)])
def test_stuck_is_not_declared_while_something_could_still_move(keep_waiting, pending_hr):
    api = InMemoryApi()
    frozen_cluster(api, with_pending_helmrelease=pending_hr)
    res = run(api, options(deadline_s=0.6, stuck_grace_s=0.2, keep_waiting=keep_waiting))  # 3 × the grace
    assert res.outcome == "deadline"


def test_deadline_names_pending_objects_with_reason_and_message():
    api = InMemoryApi()
    frozen_cluster(api)
    res = run(api, options(deadline_s=0.3))
    assert res.outcome == "deadline"
    assert "Kustomization/flux-system/apps (DependencyNotReady: dependency 'flux-system/monitoring' is not ready)" \
        in res.summary()


def test_expected_objects_that_never_appeared_are_counted_and_listed():
    api = InMemoryApi()
    homelab(api)
    res = run(api, options(deadline_s=0.3, expected_kustomizations=("flux-system/apps",)))
    missing = next(o for o in res.objects if o.id == "Kustomization/flux-system/apps")
    assert missing.ready_at is None and missing.state == "NotFound"
    from drtool.report.model import build_report

    record = {"schema": "drtool.run/v1", "run_id": "r", "kind": "rebuild", "status": "failed",
              "started_at": 1.0, "phases": [], "converge": res.to_dict()}
    conv = build_report(record)["converge"]
    assert conv["objects_ready"] == conv["objects_total"] - 1
