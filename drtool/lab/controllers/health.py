"""kstatus-style health of an object, as kustomize-controller's health checks see it.

Pure: dict in, ``Health`` out. The rules are the kstatus ones (DOMAIN.md, "Readiness"):
terminating → InProgress; observedGeneration behind → InProgress; Stalled → Failed;
Reconciling → InProgress; kind rules for workloads and pods; Ready False/Unknown →
InProgress; no conditions → Current.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

CURRENT, IN_PROGRESS, FAILED = "Current", "InProgress", "Failed"


@dataclass(frozen=True)
class Health:
    status: str          # Current | InProgress | Failed
    message: str = ""

    @property
    def current(self) -> bool:
        return self.status == CURRENT


def _conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []}


def _workload(obj: Mapping[str, Any]) -> Health | None:
    kind = obj.get("kind")
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        want = int(spec.get("replicas", 1))
        fields = ["readyReplicas", "availableReplicas", "updatedReplicas"]
        if kind == "StatefulSet":
            fields = ["readyReplicas", "availableReplicas", "currentReplicas"]
        if kind == "ReplicaSet":
            fields = ["readyReplicas", "availableReplicas"]
        for field in fields:
            have = int(status.get(field) or 0)
            if have < want:
                return Health(IN_PROGRESS, f"{field}: {have}/{want}")
        if kind == "StatefulSet" and status.get("currentRevision") != status.get("updateRevision"):
            return Health(IN_PROGRESS, "partitioned roll out in progress")
        return Health(CURRENT, f"{kind} is available. Replicas: {want}")
    if kind == "DaemonSet":
        want = int(status.get("desiredNumberScheduled") or 0)
        have = int(status.get("numberAvailable") or 0)
        if have < want:
            return Health(IN_PROGRESS, f"Available: {have}/{want}")
        return Health(CURRENT, "All replicas scheduled as expected")
    if kind == "Pod":
        phase = status.get("phase")
        if phase == "Succeeded":
            return Health(CURRENT, "Pod has completed successfully")
        if phase == "Failed":
            return Health(FAILED, "Pod has completed, but not successfully")
        ready = _conditions(obj).get("Ready")
        if phase == "Running" and ready and ready.get("status") == "True":
            return Health(CURRENT, "Pod is Ready")
        for cs in status.get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull",
                                         "CreateContainerConfigError"):
                return Health(FAILED, f"{waiting['reason']}: {waiting.get('message', '')}".rstrip(": "))
        return Health(IN_PROGRESS, f"Pod phase is {phase}")
    if kind == "Job":
        conds = _conditions(obj)
        if (conds.get("Complete") or {}).get("status") == "True":
            return Health(CURRENT, "Job Completed")
        if (conds.get("Failed") or {}).get("status") == "True":
            return Health(FAILED, "Job Failed")
        return Health(IN_PROGRESS, "Job in progress")
    return None


def health(obj: Mapping[str, Any] | None) -> Health:
    """The kstatus of ``obj``; a missing object is InProgress (not found)."""
    if obj is None:
        return Health(IN_PROGRESS, "object not found")
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    if meta.get("deletionTimestamp"):
        return Health(IN_PROGRESS, "object is being deleted")
    observed = status.get("observedGeneration")
    if observed is not None and int(observed) != int(meta.get("generation") or 1):
        return Health(IN_PROGRESS, "observedGeneration is behind generation")
    conds = _conditions(obj)
    if (conds.get("Stalled") or {}).get("status") == "True":
        return Health(FAILED, conds["Stalled"].get("message", "stalled"))
    if (conds.get("Reconciling") or {}).get("status") == "True":
        return Health(IN_PROGRESS, conds["Reconciling"].get("message", "reconciling"))
    by_kind = _workload(obj)
    if by_kind is not None:
        return by_kind
    ready = conds.get("Ready")
    if ready is not None:
        if ready.get("status") == "True":
            return Health(CURRENT, ready.get("message", "Ready"))
        return Health(IN_PROGRESS, ready.get("message", "not ready"))
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    if group.endswith("toolkit.fluxcd.io"):
        # A Flux object with no status has simply not been reconciled yet.
        return Health(IN_PROGRESS, "not reconciled yet")
    return Health(CURRENT, "Resource is current")
