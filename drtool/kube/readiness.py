"""Readiness rules: one Kubernetes object (a dict as the API returns it) in, a ``Status`` out.

The rules follow kstatus (sigs.k8s.io/cli-utils/pkg/kstatus), which Flux objects also follow,
with one deliberate difference: a Flux object is only Current once its controller has reported
``Ready=True`` for the generation we see. kstatus calls an object without conditions Current,
but for Flux that only means nobody has reconciled it yet.

Everything here is pure and cheap: the watcher calls ``status_of`` on every event it receives.
Deciding what is *fatal* (fail fast) is the converge engine's policy, not a readiness rule;
``pod_problem`` and the ``FLUX_*`` helpers expose the facts it needs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

State = Literal["Current", "InProgress", "Failed", "Terminating"]

FLUX_KINDS = frozenset({
    "GitRepository", "HelmRepository", "OCIRepository", "Bucket", "HelmChart",
    "Kustomization", "HelmRelease",
})

# Container waiting reasons that mean "this will not start by itself".
IMAGE_PULL_REASONS = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName"})
CONFIG_ERROR_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError"})


@dataclass(frozen=True)
class Status:
    """The kstatus verdict on one object."""

    state: State
    """Current (done), InProgress (not yet), Failed (will not get there alone), Terminating."""
    reason: str
    """Short CamelCase reason, usually the controller's condition reason."""
    message: str
    """Human-readable detail, usually the controller's condition message."""

    @property
    def current(self) -> bool:
        return self.state == "Current"


def condition(obj: Mapping, ctype: str) -> dict | None:
    """The status condition of type ``ctype``, or None."""
    for c in (obj.get("status") or {}).get("conditions") or ():
        if c.get("type") == ctype:
            return c
    return None


def _is_true(obj: Mapping, ctype: str) -> bool:
    c = condition(obj, ctype)
    return c is not None and c.get("status") == "True"


def _common(obj: Mapping) -> Status | None:
    """kstatus rules 1-3, shared by every kind; None when they decide nothing."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    if meta.get("deletionTimestamp"):
        return Status("Terminating", "Terminating", "deletion in progress")
    observed = status.get("observedGeneration")
    generation = meta.get("generation")
    if observed is not None and generation is not None and observed != generation:
        return Status("InProgress", "ObservedGenerationMismatch",
                      f"controller observed generation {observed}, object is at {generation}")
    stalled = condition(obj, "Stalled")
    if stalled is not None and stalled.get("status") == "True":
        return Status("Failed", stalled.get("reason") or "Stalled", stalled.get("message") or "")
    reconciling = condition(obj, "Reconciling")
    if reconciling is not None and reconciling.get("status") == "True":
        return Status("InProgress", reconciling.get("reason") or "Reconciling",
                      reconciling.get("message") or "")
    return None


def _generic(obj: Mapping) -> Status:
    """kstatus for kinds without a specific rule (rules 5 and 6)."""
    common = _common(obj)
    if common:
        return common
    ready = condition(obj, "Ready")
    if ready is not None and ready.get("status") != "True":
        return Status("InProgress", ready.get("reason") or "NotReady", ready.get("message") or "")
    if ready is not None:
        return Status("Current", ready.get("reason") or "Ready", ready.get("message") or "")
    return Status("Current", "Current", "no conditions to wait on")


def _flux(obj: Mapping) -> Status:
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    if meta.get("deletionTimestamp"):
        return Status("Terminating", "Terminating", "deletion in progress")
    ready = condition(obj, "Ready")
    if not status or (ready is None and not status.get("conditions")):
        return Status("InProgress", "NotReconciled", "no status reported by its controller yet")
    if status.get("observedGeneration") is None:
        return Status("InProgress", "NotReconciled", "no observedGeneration reported yet")
    common = _common(obj)
    if common:
        return common
    if ready is None:
        return Status("InProgress", "NotReady", "no Ready condition yet")
    reason, message = ready.get("reason") or "", ready.get("message") or ""
    if ready.get("status") == "True":
        return Status("Current", reason or "Ready", message)
    return Status("InProgress", reason or "NotReady", message)


def _replicas(obj: Mapping) -> int:
    replicas = (obj.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def _deployment(obj: Mapping) -> Status:
    common = _common(obj)
    if common:
        return common
    st = obj.get("status") or {}
    progressing = condition(obj, "Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        return Status("Failed", "ProgressDeadlineExceeded", progressing.get("message") or "")
    want = _replicas(obj)
    updated, ready = st.get("updatedReplicas", 0), st.get("readyReplicas", 0)
    available, total = st.get("availableReplicas", 0), st.get("replicas", 0)
    if updated < want:
        return Status("InProgress", "LessUpdated", f"{updated}/{want} replicas updated")
    if total > updated:
        return Status("InProgress", "OldReplicasPending", f"{total - updated} old replicas pending termination")
    if ready < want:
        return Status("InProgress", "LessReady", f"{ready}/{want} replicas ready")
    if available < want:
        return Status("InProgress", "LessAvailable", f"{available}/{want} replicas available")
    return Status("Current", "Available", f"{ready}/{want} replicas ready")


def _replicaset(obj: Mapping) -> Status:
    common = _common(obj)
    if common:
        return common
    st = obj.get("status") or {}
    want = _replicas(obj)
    ready, available = st.get("readyReplicas", 0), st.get("availableReplicas", 0)
    if ready < want or available < want:
        return Status("InProgress", "LessReady", f"{ready}/{want} replicas ready")
    return Status("Current", "Available", f"{ready}/{want} replicas ready")


def _statefulset(obj: Mapping) -> Status:
    common = _common(obj)
    if common:
        return common
    st = obj.get("status") or {}
    want = _replicas(obj)
    ready = st.get("readyReplicas", 0)
    strategy = ((obj.get("spec") or {}).get("updateStrategy") or {}).get("type", "RollingUpdate")
    if ready < want:
        return Status("InProgress", "LessReady", f"{ready}/{want} replicas ready")
    if strategy == "RollingUpdate":
        if st.get("updatedReplicas", 0) < want:
            return Status("InProgress", "LessUpdated", f"{st.get('updatedReplicas', 0)}/{want} replicas updated")
        if st.get("currentRevision") != st.get("updateRevision"):
            return Status("InProgress", "RevisionMismatch",
                          f"current revision {st.get('currentRevision')} != update revision {st.get('updateRevision')}")
    return Status("Current", "Ready", f"{ready}/{want} replicas ready")


def _daemonset(obj: Mapping) -> Status:
    common = _common(obj)
    if common:
        return common
    st = obj.get("status") or {}
    desired = st.get("desiredNumberScheduled")
    if desired is None:
        return Status("InProgress", "NoStatus", "no status reported yet")
    for field in ("currentNumberScheduled", "updatedNumberScheduled", "numberAvailable", "numberReady"):
        if st.get(field, 0) < desired:
            return Status("InProgress", "LessReady", f"{field} {st.get(field, 0)}/{desired}")
    return Status("Current", "Ready", f"{desired}/{desired} pods ready")


def _job(obj: Mapping) -> Status:
    meta = obj.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return Status("Terminating", "Terminating", "deletion in progress")
    failed = condition(obj, "Failed")
    if failed and failed.get("status") == "True":
        return Status("Failed", failed.get("reason") or "JobFailed", failed.get("message") or "")
    complete = condition(obj, "Complete")
    if complete and complete.get("status") == "True":
        return Status("Current", "JobComplete", complete.get("message") or "")
    st = obj.get("status") or {}
    return Status("InProgress", "JobInProgress",
                  f"active {st.get('active', 0)}, succeeded {st.get('succeeded', 0)}, failed {st.get('failed', 0)}")


def _container_statuses(pod: Mapping) -> list[dict]:
    st = pod.get("status") or {}
    return list(st.get("initContainerStatuses") or ()) + list(st.get("containerStatuses") or ())


def pod_problem(pod: Mapping) -> tuple[str, str] | None:
    """The reason a pod will not become Ready by itself, as ``(reason, message)``, or None.

    Covers CrashLoopBackOff (message carries the restart count), image pull errors,
    container config errors (e.g. a missing Secret) and ``PodScheduled=False/Unschedulable``
    (message carries the scheduler's explanation and since when).
    """
    for cs in _container_statuses(pod):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason") or ""
        message = waiting.get("message") or ""
        name = cs.get("name", "?")
        if reason == "CrashLoopBackOff":
            restarts = int(cs.get("restartCount") or 0)
            last = ((cs.get("lastState") or {}).get("terminated") or {})
            detail = f", last exit code {last['exitCode']}" if "exitCode" in last else ""
            return reason, f"container {name} restarted {restarts} times{detail}: {message}".rstrip(": ")
        if reason in IMAGE_PULL_REASONS or reason in CONFIG_ERROR_REASONS:
            return reason, f"container {name}: {message}".rstrip(": ")
    scheduled = condition(pod, "PodScheduled")
    if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        since = scheduled.get("lastTransitionTime")
        msg = scheduled.get("message") or ""
        return "Unschedulable", (f"{msg} (since {since})" if since else msg)
    return None


def restart_count(pod: Mapping) -> int:
    """The highest restart count among the pod's containers."""
    return max((int(cs.get("restartCount") or 0) for cs in _container_statuses(pod)), default=0)


def is_k3s_helm_install_pod(pod: Mapping) -> bool:
    """True for pods of K3s's own ``helm-install-*`` Jobs (HelmChart controller).

    They run to completion and are never Ready; waiting for Ready would hang forever.
    """
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    if "helmcharts.helm.cattle.io/chart" in labels:
        return True
    for ref in meta.get("ownerReferences") or ():
        if ref.get("kind") == "Job" and str(ref.get("name", "")).startswith("helm-install-"):
            return True
    return str(meta.get("name", "")).startswith("helm-install-") and meta.get("namespace") == "kube-system"


def _pod(obj: Mapping) -> Status:
    meta = obj.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return Status("Terminating", "Terminating", "deletion in progress")
    st = obj.get("status") or {}
    phase = st.get("phase") or "Pending"
    if phase == "Succeeded":
        return Status("Current", "PodCompleted", "pod completed")
    if phase == "Failed":
        return Status("Failed", st.get("reason") or "PodFailed", st.get("message") or "pod failed")
    problem = pod_problem(obj)
    if problem:
        return Status("InProgress", problem[0], problem[1])
    if phase == "Running":
        ready = condition(obj, "Ready")
        if ready and ready.get("status") == "True":
            return Status("Current", "PodRunning", "pod running and ready")
        return Status("InProgress", "PodNotReady", (ready or {}).get("message") or "containers not ready")
    return Status("InProgress", "PodPending", st.get("message") or f"pod phase {phase}")


def _node(obj: Mapping) -> Status:
    meta = obj.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return Status("Terminating", "Terminating", "deletion in progress")
    ready = condition(obj, "Ready")
    if ready and ready.get("status") == "True":
        return Status("Current", ready.get("reason") or "KubeletReady", ready.get("message") or "")
    if ready is None:
        return Status("InProgress", "NodeNotReady", "no Ready condition yet")
    return Status("InProgress", ready.get("reason") or "NodeNotReady", ready.get("message") or "")


_RULES = {
    "Deployment": _deployment,
    "StatefulSet": _statefulset,
    "DaemonSet": _daemonset,
    "ReplicaSet": _replicaset,
    "Job": _job,
    "Pod": _pod,
    "Node": _node,
}


def status_of(obj: Mapping) -> Status:
    """The readiness of ``obj`` (any kind) according to the rules above."""
    kind = obj.get("kind") or ""
    if kind in FLUX_KINDS and "fluxcd.io" in str(obj.get("apiVersion", "fluxcd.io")):
        return _flux(obj)
    rule = _RULES.get(kind)
    return rule(obj) if rule else _generic(obj)


# --- Flux facts the converge policy needs --------------------------------------------------

# Ready=False reasons after which kustomize-controller will not succeed without a new commit
# or a new Secret: retrying the same revision fails the same way.
FLUX_FATAL_READY_REASONS = frozenset({"BuildFailed", "DecryptionFailed", "ValidationFailed"})


def flux_fatal(obj: Mapping) -> tuple[str, str] | None:
    """``(reason, message)`` when a Flux object failed in a way that will not heal by waiting.

    Stalled=True (e.g. HelmRelease ``RetriesExceeded``), Kustomization build/validation and
    SOPS decryption failures, and v2beta1 HelmReleases whose retries are exhausted.
    """
    if (obj.get("kind") or "") not in FLUX_KINDS:
        return None
    stalled = condition(obj, "Stalled")
    if stalled and stalled.get("status") == "True":
        return stalled.get("reason") or "Stalled", stalled.get("message") or ""
    ready = condition(obj, "Ready")
    if not ready or ready.get("status") != "False":
        return None
    reason, message = ready.get("reason") or "", ready.get("message") or ""
    if reason in FLUX_FATAL_READY_REASONS or "decryption" in message.lower() or "decrypt" in reason.lower():
        return reason or "DecryptionFailed", message
    if "retries exhausted" in message.lower():  # helm-controller v2beta1 wording
        return "RetriesExceeded", message
    return None


def helmrelease_chart_version(hr: Mapping) -> str | None:
    """The chart version the HelmRelease last released (or attempted), or None.

    helm.toolkit.fluxcd.io/v2 keeps ``status.history`` newest first with ``chartVersion``;
    v2beta1 has ``lastAppliedRevision`` (last successful) and ``lastAttemptedRevision``.
    (``lastReleaseRevision`` is Helm's release number, not a chart version.) OCI-sourced
    revisions carry a ``+digest`` suffix, which is dropped.
    """
    st = hr.get("status") or {}
    candidates = []
    history = st.get("history") or ()
    if history and isinstance(history[0], Mapping):
        candidates.append(history[0].get("chartVersion"))
    candidates += [st.get("lastAppliedRevision"), st.get("lastAttemptedRevision")]
    for value in candidates:
        if value:
            return str(value).split("+", 1)[0]
    return None
