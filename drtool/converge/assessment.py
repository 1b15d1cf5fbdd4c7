"""Pure policy: how one object counts towards convergence, when nothing pending can move any
more, and which expected objects are still missing. No I/O, no clock."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from drtool.converge.options import ConvergeOptions
from drtool.kube.readiness import (CONFIG_ERROR_REASONS, FLUX_KINDS, IMAGE_PULL_REASONS, Status, condition, flux_fatal,
                                   helmrelease_chart_version, is_k3s_helm_install_pod, pod_problem,
                                   restart_count)
from drtool.kube.watcher import ObjectRecord

# --- policy: how one object counts -------------------------------------------------------

@dataclass(frozen=True)
class Assessment:
    """The engine's verdict on one object."""

    counted: bool
    """False for objects that never block (ignored namespace, finished helm-install pods...)."""
    done: bool
    problem: tuple[str, str] | None = None
    """``(reason, message)`` of something that may warrant failing fast."""
    fatal_now: bool = False
    """The problem is fatal already (no grace period applies)."""
    graced: bool = False
    """The problem becomes fatal after ``unschedulable_grace_s``."""


_NOT_COUNTED = Assessment(counted=False, done=True)


def assess(kind: str, obj: Mapping, status: Status, options: ConvergeOptions) -> Assessment:
    """Classify one object for convergence (pure; the grace period is applied by the caller)."""
    meta = obj.get("metadata") or {}
    if meta.get("namespace") and meta["namespace"] in options.ignore_namespaces:
        return _NOT_COUNTED
    if kind == "Pod":
        return _assess_pod(obj, status, options)
    if kind in ("Kustomization", "HelmRelease", "GitRepository", "HelmRepository", "OCIRepository"):
        if (obj.get("spec") or {}).get("suspend"):
            return _NOT_COUNTED  # suspended on purpose: its controller will not reconcile it
        fatal = flux_fatal(obj)
        if fatal and status.state != "Terminating":
            return Assessment(True, False, fatal, fatal_now=True)
        return Assessment(True, status.current)
    if status.state == "Failed":  # Job failed, Deployment past its progress deadline
        return Assessment(True, False, (status.reason, status.message), fatal_now=True)
    return Assessment(True, status.current)


def _assess_pod(pod: Mapping, status: Status, options: ConvergeOptions) -> Assessment:
    phase = (pod.get("status") or {}).get("phase")
    owners = {r.get("kind") for r in (pod.get("metadata") or {}).get("ownerReferences") or ()}
    if is_k3s_helm_install_pod(pod):
        # K3s retries these Jobs itself; only a completed one is done, none is ever Ready.
        if phase == "Failed":
            return _NOT_COUNTED
        return Assessment(True, phase == "Succeeded")
    if phase == "Failed" and owners & {"Job", "ReplicaSet", "StatefulSet", "DaemonSet"}:
        return _NOT_COUNTED  # replaced by its controller, whose own status is what counts
    if status.current:
        return Assessment(True, True)
    problem = pod_problem(pod)
    if problem is None:
        return Assessment(True, False)
    reason = problem[0]
    if reason == "CrashLoopBackOff":
        return Assessment(True, False, problem, fatal_now=restart_count(pod) >= options.crashloop_restarts)
    if reason in IMAGE_PULL_REASONS:
        return Assessment(True, False, problem, fatal_now=True)
    if reason == "Unschedulable" or reason in CONFIG_ERROR_REASONS:
        # A Secret applied a moment later or a node still joining heals these: allow a grace.
        return Assessment(True, False, problem, graced=True)
    return Assessment(True, False, problem)


# --- stuck: nothing pending can make progress ---------------------------------------------------

# kustomize-controller v1.4.0 (internal/controller/kustomization_controller.go, reconcile → apply)
# marks Ready=False ReconciliationFailed with the server-side apply error, whose text for a kind
# the API does not serve is "<Kind>/<ns>/<name> dry-run failed: no matches for kind ...". Only a
# CRD applied by something else heals it; DependencyNotReady ("dependency 'ns/name' is not
# ready", checkDependencies) heals only when the dependency does.
NO_MATCHES = "no matches for kind"
DEPENDENCY_NOT_READY = "DependencyNotReady"


def _dependencies(oid: str, obj: Mapping) -> list[str]:
    kind, ns, _ = split_id(oid)
    return [f"{kind}/{d.get('namespace') or ns}/{d.get('name', '')}"
            for d in (obj.get("spec") or {}).get("dependsOn") or () if isinstance(d, Mapping)]


def stuck_causes(pending: Mapping[str, Mapping]) -> dict[str, tuple[str, str]]:
    """``{id: (reason, message)}`` of the objects everything pending waits on, when every pending
    object is either a Flux object whose apply hit ``no matches for kind`` or DependencyNotReady
    behind one; empty as soon as one pending object could still make progress (a pending
    HelmRelease that may install the CRD, a pod starting, a Kustomization applying). Pure."""
    roots: dict[str, tuple[str, str]] = {}
    for oid, obj in pending.items():
        ready = condition(obj, "Ready") or {}
        if ready.get("status") == "False" and NO_MATCHES in (ready.get("message") or ""):
            roots[oid] = (ready.get("reason") or "ReconciliationFailed", ready.get("message") or "")
    if not roots:
        return {}
    blocked = set(roots)
    for _ in range(len(pending)):
        grew = False
        for oid, obj in pending.items():
            ready = condition(obj, "Ready") or {}
            if oid in blocked or ready.get("status") != "False" or ready.get("reason") != DEPENDENCY_NOT_READY:
                continue
            deps = _dependencies(oid, obj)
            if deps and any(d in blocked for d in deps):
                blocked.add(oid)
                grew = True
        if not grew:
            break
    return roots if blocked >= set(pending) else {}


def settled_fingerprint(kind: str, obj: Mapping, done: bool) -> tuple | None:
    """What must change for an object to count as having moved; None while a Flux controller is
    mid-reconcile (Reconciling=True / Ready=Unknown), which a retry of a failing apply shows each
    time without changing anything."""
    if kind in FLUX_KINDS and not done:
        ready = condition(obj, "Ready") or {}
        reconciling = condition(obj, "Reconciling") or {}
        if ready.get("status") != "False" or reconciling.get("status") == "True":
            return None
        return (False, ready.get("reason"), ready.get("message"))
    return (done,)


# --- expectations ----------------------------------------------------------------------------

def _norm_version(v: str | None) -> str:
    return (v or "").strip().lstrip("v")


def unmet_expectations(lookup: Callable[[str, str, str], ObjectRecord | None],
                       options: ConvergeOptions) -> list[str]:
    """Pending entries for expected Kustomizations/HelmReleases that are missing, not Ready or at
    another chart version."""
    pending = []
    for ref in options.expected_kustomizations:
        ns, _, name = ref.partition("/")
        rec = lookup("Kustomization", ns, name)
        if rec is None:
            pending.append(f"Kustomization/{ns}/{name} (not found)")
    for ns, name, version in options.expected_helmreleases:
        rec = lookup("HelmRelease", ns, name)
        if rec is None:
            pending.append(f"HelmRelease/{ns}/{name} (not found)")
        elif version and rec.status.current:
            got = helmrelease_chart_version(rec.obj)
            if _norm_version(got) != _norm_version(version):
                pending.append(f"HelmRelease/{ns}/{name} (chart {got or 'unknown'}, expected {version})")
    return pending


def required_kinds(options: ConvergeOptions) -> set[str]:
    required = {"Pod", "Deployment", "StatefulSet", "DaemonSet", "Job", "Node"}
    if options.expected_kustomizations:
        required.add("Kustomization")
    if options.expected_helmreleases:
        required.add("HelmRelease")
    return required


def split_id(oid: str) -> tuple[str, str, str]:
    parts = oid.split("/")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else (parts[0], "", parts[-1])
