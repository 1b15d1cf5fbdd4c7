"""Readiness rules against real-shaped objects.

Shapes follow what the controllers write:
- Flux conditions and reasons: fluxcd/pkg ``apis/meta`` (Ready/Reconciling/Stalled, ``ProgressingReason``,
  ``DependencyNotReadyReason``), kustomize-controller ``api/v1*/condition_types.go`` (BuildFailed,
  ArtifactFailed, HealthCheckFailed, ReconciliationSucceeded), helm-controller v2 API docs
  (``status.history[].chartVersion`` newest first, ``RetriesExceeded`` on Stalled, ``InstallSucceeded``)
  and v2beta1 (``lastAppliedRevision``/``lastAttemptedRevision`` hold chart versions,
  "install retries exhausted").
- kstatus rules: sigs.k8s.io/cli-utils ``pkg/kstatus/README.md`` (generation, Reconciling/Stalled,
  Deployment/StatefulSet/DaemonSet/Job/Pod rules).
- Pod container states: Kubernetes API reference for ContainerStatus (``state.waiting.reason``
  CrashLoopBackOff / ImagePullBackOff / ErrImagePull / CreateContainerConfigError) and the
  scheduler's ``PodScheduled=False reason=Unschedulable`` condition message format.
"""
from __future__ import annotations

import pytest

from drtool.kube.readiness import (Status, flux_fatal, helmrelease_chart_version, is_k3s_helm_install_pod,
                                   pod_problem, status_of)

T = "2026-11-26T10:00:00Z"


def cond(type_, status, reason="", message="", **extra):
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": T, **extra}


def kustomization(conditions=None, generation=1, observed=1, **meta):
    obj = {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
           "metadata": {"name": "infrastructure", "namespace": "flux-system", "generation": generation, **meta},
           "spec": {"interval": "10m", "path": "./infrastructure", "prune": True,
                    "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}}
    if conditions is not None:
        obj["status"] = {"observedGeneration": observed, "conditions": conditions,
                         "lastAppliedRevision": "main@sha1:0123abcd"}
    return obj


def helmrelease(conditions, api="v2", status_extra=None, observed=1):
    return {"apiVersion": f"helm.toolkit.fluxcd.io/{api}", "kind": "HelmRelease",
            "metadata": {"name": "loki", "namespace": "logging", "generation": 1},
            "spec": {"chart": {"spec": {"chart": "loki", "version": "6.21.0",
                                        "sourceRef": {"kind": "HelmRepository", "name": "grafana",
                                                      "namespace": "flux-system"}}}},
            "status": {"observedGeneration": observed, "conditions": conditions, **(status_extra or {})}}


def deployment(replicas=2, **status):
    st = {"observedGeneration": 3, "replicas": replicas, "updatedReplicas": replicas,
          "readyReplicas": replicas, "availableReplicas": replicas,
          "conditions": [cond("Available", "True", "MinimumReplicasAvailable"),
                         cond("Progressing", "True", "NewReplicaSetAvailable")]}
    st.update(status)
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "llama-cpp", "namespace": "llm", "generation": 3},
            "spec": {"replicas": replicas}, "status": st}


def pod(phase="Running", ready=True, containers=None, conditions=None, name="llama-cpp-7d9c-abcde",
        namespace="llm", owner=("ReplicaSet", "llama-cpp-7d9c"), **meta):
    conds = conditions if conditions is not None else [
        cond("PodScheduled", "True"), cond("Initialized", "True"),
        cond("ContainersReady", "True" if ready else "False"), cond("Ready", "True" if ready else "False")]
    m = {"name": name, "namespace": namespace, **meta}
    if owner:
        m["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": m,
            "status": {"phase": phase, "conditions": conds,
                       "containerStatuses": containers if containers is not None else [
                           {"name": "server", "ready": ready, "restartCount": 0, "image": "llama:1",
                            "state": {"running": {"startedAt": T}}}]}}


def waiting(reason, message, restarts=0, last_exit=None):
    cs = {"name": "server", "ready": False, "restartCount": restarts, "image": "llama:1",
          "state": {"waiting": {"reason": reason, "message": message}}}
    if last_exit is not None:
        cs["lastState"] = {"terminated": {"exitCode": last_exit, "reason": "Error", "finishedAt": T}}
    return [cs]


CASES = [
    # Flux: Ready=True with matching generation is Current.
    ("ks ready", kustomization([cond("Ready", "True", "ReconciliationSucceeded",
                                     "Applied revision: main@sha1:0123abcd")]),
     "Current", "ReconciliationSucceeded"),
    # A Flux object nobody reconciled yet has no status: never Current (unlike plain kstatus).
    ("ks without status", kustomization(None), "InProgress", "NotReconciled"),
    ("ks status without conditions", kustomization([]), "InProgress", "NotReconciled"),
    ("ks old generation", kustomization([cond("Ready", "True", "ReconciliationSucceeded")], generation=2,
                                        observed=1), "InProgress", "ObservedGenerationMismatch"),
    ("ks reconciling", kustomization([cond("Reconciling", "True", "Progressing", "reconciliation in progress"),
                                      cond("Ready", "Unknown", "Progressing", "reconciliation in progress")]),
     "InProgress", "Progressing"),
    ("ks dependency", kustomization([cond("Ready", "False", "DependencyNotReady",
                                          "dependency 'flux-system/infrastructure' is not ready")]),
     "InProgress", "DependencyNotReady"),
    # Build failures stay InProgress here (kstatus); the engine's policy makes them fatal.
    ("ks build failed", kustomization([cond("Ready", "False", "BuildFailed",
                                            "kustomize build failed: accumulating resources")]),
     "InProgress", "BuildFailed"),
    ("ks terminating", kustomization([cond("Ready", "True", "ReconciliationSucceeded")],
                                     deletionTimestamp=T), "Terminating", "Terminating"),
    ("hr stalled", helmrelease([cond("Stalled", "True", "RetriesExceeded",
                                     "Failed to install after 3 attempt(s)"),
                                cond("Ready", "False", "InstallFailed", "Helm install failed for release")]),
     "Failed", "RetriesExceeded"),
    ("hr installed", helmrelease([cond("Ready", "True", "InstallSucceeded",
                                       "Helm install succeeded for release logging/loki.v1 with chart loki@6.21.0")]),
     "Current", "InstallSucceeded"),
    # Workloads.
    ("deploy ready", deployment(), "Current", "Available"),
    ("deploy default replicas", {**deployment(1), "spec": {}}, "Current", "Available"),
    ("deploy not ready", deployment(readyReplicas=1, availableReplicas=1), "InProgress", "LessReady"),
    ("deploy rolling", deployment(replicas=3, updatedReplicas=2), "InProgress", "LessUpdated"),
    ("deploy old replicas", deployment(replicas=2) | {"status": {**deployment()["status"], "replicas": 3}},
     "InProgress", "OldReplicasPending"),
    ("deploy deadline", deployment(conditions=[cond("Progressing", "False", "ProgressDeadlineExceeded",
                                                    'ReplicaSet "llama-cpp-7d9c" has timed out progressing.')]),
     "Failed", "ProgressDeadlineExceeded"),
    ("sts revision", {"apiVersion": "apps/v1", "kind": "StatefulSet",
                      "metadata": {"name": "loki", "namespace": "logging", "generation": 1},
                      "spec": {"replicas": 1},
                      "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1,
                                 "currentRevision": "loki-5d8f", "updateRevision": "loki-6c7b"}},
     "InProgress", "RevisionMismatch"),
    ("sts ready", {"apiVersion": "apps/v1", "kind": "StatefulSet",
                   "metadata": {"name": "loki", "namespace": "logging", "generation": 1},
                   "spec": {"replicas": 1},
                   "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1,
                              "currentRevision": "loki-5d8f", "updateRevision": "loki-5d8f"}},
     "Current", "Ready"),
    ("ds partial", {"apiVersion": "apps/v1", "kind": "DaemonSet",
                    "metadata": {"name": "alloy", "namespace": "logging", "generation": 1},
                    "status": {"observedGeneration": 1, "desiredNumberScheduled": 2, "currentNumberScheduled": 2,
                               "updatedNumberScheduled": 2, "numberAvailable": 1, "numberReady": 1}},
     "InProgress", "LessReady"),
    ("job complete", {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "helm-install-traefik",
                                                                           "namespace": "kube-system"},
                      "status": {"succeeded": 1, "conditions": [cond("Complete", "True")]}},
     "Current", "JobComplete"),
    ("job failed", {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": "app"},
                    "status": {"failed": 6, "conditions": [cond("Failed", "True", "BackoffLimitExceeded",
                                                                 "Job has reached the specified backoff limit")]}},
     "Failed", "BackoffLimitExceeded"),
    # Pods.
    ("pod ready", pod(), "Current", "PodRunning"),
    ("pod not ready", pod(ready=False), "InProgress", "PodNotReady"),
    ("pod succeeded", pod(phase="Succeeded", ready=False), "Current", "PodCompleted"),
    ("pod crashloop", pod(ready=False, containers=waiting(
        "CrashLoopBackOff", "back-off 40s restarting failed container=server pod=llama-cpp-7d9c-abcde", 4, 1)),
     "InProgress", "CrashLoopBackOff"),
    ("pod pending unschedulable", pod(phase="Pending", ready=False, containers=[], conditions=[
        cond("PodScheduled", "False", "Unschedulable",
             "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
             "1 node(s) had untolerated taint {heavy: true}.")]),
     "InProgress", "Unschedulable"),
    ("pod terminating", pod(deletionTimestamp=T), "Terminating", "Terminating"),
    # Nodes and generic kinds.
    ("node ready", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node2"},
                    "status": {"conditions": [cond("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                                              cond("Ready", "True", "KubeletReady", "kubelet is posting ready status")]}},
     "Current", "KubeletReady"),
    ("node not ready", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node2"},
                        "status": {"conditions": [cond("Ready", "Unknown", "NodeStatusUnknown",
                                                       "Kubelet stopped posting node status.")]}},
     "InProgress", "NodeStatusUnknown"),
    ("generic no conditions", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
     "Current", "Current"),
    ("generic stalled", {"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                         "metadata": {"name": "x", "generation": 2},
                         "status": {"observedGeneration": 2,
                                    "conditions": [cond("Stalled", "True", "Bad", "bad spec")]}},
     "Failed", "Bad"),
]


@pytest.mark.parametrize("obj,state,reason", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_status_of(obj, state, reason):
    status = status_of(obj)
    assert isinstance(status, Status)
    assert (status.state, status.reason) == (state, reason)


def test_pod_problem_crashloop_carries_restarts_and_exit_code():
    p = pod(ready=False, containers=waiting("CrashLoopBackOff", "back-off 40s restarting failed container", 4, 137))
    reason, message = pod_problem(p)
    assert reason == "CrashLoopBackOff"
    assert "restarted 4 times" in message and "exit code 137" in message


@pytest.mark.parametrize("reason", ["ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError"])
def test_pod_problem_waiting_reasons(reason):
    msg = {'ImagePullBackOff': 'Back-off pulling image "ghcr.io/x/llama:1"',
           "ErrImagePull": 'failed to pull and unpack image "ghcr.io/x/llama:1": not found',
           "CreateContainerConfigError": 'secret "llm-token" not found'}[reason]
    assert pod_problem(pod(phase="Pending", ready=False, containers=waiting(reason, msg))) == (
        reason, f"container server: {msg}")


def test_pod_problem_unschedulable_has_scheduler_message_and_since():
    p = pod(phase="Pending", ready=False, containers=[], conditions=[
        cond("PodScheduled", "False", "Unschedulable", "0/2 nodes are available: 1 node(s) had untolerated taint")])
    reason, message = pod_problem(p)
    assert reason == "Unschedulable"
    assert "untolerated taint" in message and T in message


def test_no_problem_for_healthy_or_starting_pods():
    assert pod_problem(pod()) is None
    assert pod_problem(pod(ready=False, containers=waiting("ContainerCreating", ""))) is None


def test_k3s_helm_install_pods():
    by_label = pod(name="helm-install-traefik-x7k2p", namespace="kube-system", owner=("Job", "helm-install-traefik"),
                   labels={"helmcharts.helm.cattle.io/chart": "traefik"})
    by_owner = pod(name="whatever", namespace="kube-system", owner=("Job", "helm-install-traefik-crd"))
    assert is_k3s_helm_install_pod(by_label) and is_k3s_helm_install_pod(by_owner)
    assert not is_k3s_helm_install_pod(pod())
    assert not is_k3s_helm_install_pod(pod(owner=("Job", "db-migrate")))


@pytest.mark.parametrize("conditions,expected", [
    ([cond("Stalled", "True", "RetriesExceeded", "Failed to install after 3 attempt(s)")], "RetriesExceeded"),
    ([cond("Ready", "False", "BuildFailed", "kustomize build failed")], "BuildFailed"),
    ([cond("Ready", "False", "ReconciliationFailed",
           'decryption secret error: Secret "sops-age" not found')], "ReconciliationFailed"),
    ([cond("Ready", "False", "InstallFailed", "install retries exhausted")], "RetriesExceeded"),
    ([cond("Ready", "False", "DependencyNotReady", "dependency 'flux-system/infrastructure' is not ready")], None),
    ([cond("Ready", "False", "ArtifactFailed", "artifact not found")], None),
    ([cond("Ready", "True", "ReconciliationSucceeded")], None),
])
def test_flux_fatal(conditions, expected):
    got = flux_fatal(kustomization(conditions))
    assert (got[0] if got else None) == expected


@pytest.mark.parametrize("api,extra,expected", [
    ("v2", {"history": [{"chartName": "loki", "chartVersion": "6.21.0", "status": "deployed", "version": 2},
                        {"chartName": "loki", "chartVersion": "6.20.0", "status": "superseded", "version": 1}],
            "lastAttemptedRevision": "6.21.0"}, "6.21.0"),
    ("v2", {"lastAttemptedRevision": "6.21.0+0123456789ab"}, "6.21.0"),
    ("v2beta1", {"lastAppliedRevision": "6.21.0", "lastAttemptedRevision": "6.22.0", "lastReleaseRevision": 3},
     "6.21.0"),
    ("v2beta1", {"lastReleaseRevision": 3}, None),
])
def test_helmrelease_chart_version(api, extra, expected):
    hr = helmrelease([cond("Ready", "True", "InstallSucceeded")], api=api, status_extra=extra)
    assert helmrelease_chart_version(hr) == expected
