"""kube-system workloads a K3s server deploys itself, as finished objects (pure builders).

K3s ships CoreDNS, local-path-provisioner and metrics-server as Deployments, and Traefik
through its Helm controller: a ``helm-install-traefik-crd`` and a ``helm-install-traefik``
Job whose pods end ``Completed`` (never Ready: waiting tools must not wait for them),
then the Traefik Deployment. ``--disable <component>`` leaves a component out.
With the simulated controllers running, the K3s server only creates the Deployments
(their Deployment controller, scheduler and kubelets make the pods); without them it
writes the finished pods itself. helm-install Jobs and their pods are always its own.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

NAMESPACE = "kube-system"
SIMULATED_BY = "lab.drtool.io/simulated-by"


@dataclass(frozen=True)
class Workload:
    component: str           # the --disable name
    name: str
    labels: dict[str, str]
    image: str


WORKLOADS = (
    Workload("coredns", "coredns", {"k8s-app": "kube-dns"}, "rancher/mirrored-coredns-coredns:1.11.3"),
    Workload("local-storage", "local-path-provisioner", {"app": "local-path-provisioner"},
             "rancher/local-path-provisioner:v0.0.30"),
    Workload("metrics-server", "metrics-server", {"k8s-app": "metrics-server"},
             "rancher/mirrored-metrics-server:v0.7.2"),
    Workload("traefik", "traefik", {"app.kubernetes.io/instance": "traefik-kube-system",
                                    "app.kubernetes.io/name": "traefik"},
             "rancher/mirrored-library-traefik:2.11.10"),
)
TOLERATIONS = (
    {"key": "CriticalAddonsOnly", "operator": "Exists"},
    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"},
)
HELM_JOBS = {"traefik": ("helm-install-traefik-crd", "helm-install-traefik")}
HELM_IMAGE = "rancher/klipper-helm:v0.9.3-build20241008"


def _suffix(seed: str, length: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:length]


def _meta(name: str, labels: dict[str, str], owner: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NAMESPACE, "labels": dict(labels),
                            "annotations": {SIMULATED_BY: "k3s"}}
    if owner:
        meta["ownerReferences"] = [owner]
    return meta


def _container_status(name: str, image: str, now: str, running: bool) -> dict[str, Any]:
    state = ({"running": {"startedAt": now}} if running else
             {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}})
    return {"name": name, "image": f"docker.io/{image}", "imageID": f"docker.io/{image}@sha256:{_suffix(image, 64)}",
            "containerID": f"containerd://{_suffix(name + now, 64)}", "ready": running, "restartCount": 0,
            "started": running, "state": state}


def _pod_conditions(now: str, ready: bool, completed: bool = False) -> list[dict[str, Any]]:
    def c(type_: str, status: bool, reason: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {"type": type_, "status": "True" if status else "False", "lastProbeTime": None,
                               "lastTransitionTime": now}
        if reason:
            out["reason"] = reason
        return out
    reason = "PodCompleted" if completed else ""
    return [c("PodReadyToStartContainers", not completed), c("Initialized", True, reason),
            c("Ready", ready, reason), c("ContainersReady", ready, reason), c("PodScheduled", True)]


def running_pod(w: Workload, node: str, host_ip: str, now: str, index: int = 0) -> dict[str, Any]:
    """The Running, Ready pod of workload ``w`` on ``node``."""
    rs = f"{w.name}-{_suffix(w.name + 'rs', 10)}"
    name = f"{rs}-{_suffix(w.name + node + str(index), 5)}"
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs, "uid": _suffix(rs, 32),
             "controller": True, "blockOwnerDeletion": True}
    labels = {**w.labels, "pod-template-hash": rs.rsplit("-", 1)[1]}
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": _meta(name, labels, owner),
        "spec": {"nodeName": node, "containers": [{"name": w.name, "image": w.image}],
                 "priorityClassName": "system-cluster-critical",
                 "tolerations": list(TOLERATIONS)},
        "status": {"phase": "Running", "hostIP": host_ip, "podIP": f"10.42.0.{10 + index}", "startTime": now,
                   "qosClass": "Burstable", "conditions": _pod_conditions(now, True),
                   "containerStatuses": [_container_status(w.name, w.image, now, True)]},
    }


def deployment(w: Workload) -> dict[str, Any]:
    """The workload's Deployment (status filled in by ``deployment_status``)."""
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(w.name, w.labels),
        "spec": {"replicas": 1, "selector": {"matchLabels": dict(w.labels)},
                 "template": {"metadata": {"labels": dict(w.labels)},
                              "spec": {"containers": [{"name": w.name, "image": w.image}],
                                       "nodeSelector": {"kubernetes.io/os": "linux"},
                                       "priorityClassName": "system-cluster-critical",
                                       "tolerations": list(TOLERATIONS)}}},
    }


def deployment_status(generation: int, ready: bool, now: str) -> dict[str, Any]:
    n = 1 if ready else 0
    status: dict[str, Any] = {"observedGeneration": generation, "replicas": 1, "updatedReplicas": 1}
    if ready:
        status.update(readyReplicas=n, availableReplicas=n)
    else:
        status["unavailableReplicas"] = 1
    status["conditions"] = [
        {"type": "Available", "status": "True" if ready else "False",
         "reason": "MinimumReplicasAvailable" if ready else "MinimumReplicasUnavailable",
         "message": "Deployment has minimum availability." if ready else "Deployment does not have minimum availability.",
         "lastUpdateTime": now, "lastTransitionTime": now},
        {"type": "Progressing", "status": "True",
         "reason": "NewReplicaSetAvailable" if ready else "ReplicaSetUpdated",
         "message": "ReplicaSet has successfully progressed.", "lastUpdateTime": now, "lastTransitionTime": now},
    ]
    return status


def helm_job(name: str) -> dict[str, Any]:
    labels = {"helmcharts.helm.cattle.io/chart": name.removeprefix("helm-install-")}
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": _meta(name, labels),
        "spec": {"backoffLimit": 1000, "completions": 1, "parallelism": 1,
                 "template": {"metadata": {"labels": dict(labels)},
                              "spec": {"restartPolicy": "OnFailure",
                                       "containers": [{"name": "helm", "image": HELM_IMAGE}]}}},
    }


def job_complete_status(now: str) -> dict[str, Any]:
    cond = lambda t: {"type": t, "status": "True", "lastProbeTime": now, "lastTransitionTime": now}  # noqa: E731
    return {"succeeded": 1, "active": 0, "startTime": now, "completionTime": now, "ready": 0,
            "terminating": 0, "uncountedTerminatedPods": {}, "conditions": [cond("SuccessCriteriaMet"), cond("Complete")]}


def completed_job_pod(job: str, node: str, host_ip: str, now: str) -> dict[str, Any]:
    """The pod of a finished helm-install Job: phase Succeeded, Ready False (PodCompleted)."""
    name = f"{job}-{_suffix(job + node, 5)}"
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": job, "uid": _suffix(job, 32),
             "controller": True, "blockOwnerDeletion": True}
    labels = {"batch.kubernetes.io/job-name": job, "job-name": job}
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": _meta(name, labels, owner),
        "spec": {"nodeName": node, "restartPolicy": "OnFailure", "containers": [{"name": "helm", "image": HELM_IMAGE}]},
        "status": {"phase": "Succeeded", "hostIP": host_ip, "podIP": "10.42.0.5", "startTime": now,
                   "qosClass": "BestEffort", "conditions": _pod_conditions(now, False, completed=True),
                   "containerStatuses": [_container_status("helm", HELM_IMAGE, now, False)]},
    }


def enabled_workloads(disabled: tuple[str, ...]) -> list[Workload]:
    return [w for w in WORKLOADS if w.component not in disabled]


def helm_jobs(disabled: tuple[str, ...]) -> list[str]:
    return [job for component, jobs in HELM_JOBS.items() if component not in disabled for job in jobs]
