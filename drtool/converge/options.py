"""What "converged" means for one cluster and how long to wait for it (``ConvergeOptions``)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConvergeOptions:
    """What "converged" means for one cluster and how long to wait for it."""

    deadline_s: float
    """Give up (not converged) after this many seconds."""
    ignore_namespaces: tuple[str, ...] = ()
    """Objects in these namespaces are neither waited on nor reported."""
    crashloop_restarts: int = 3
    """Fail once a CrashLoopBackOff container has restarted this many times."""
    unschedulable_grace_s: float = 30
    """Fail once a pod stays Unschedulable (or misses a Secret/ConfigMap) this long."""
    keep_waiting: bool = False
    """Never fail fast: report problems but wait until converged or the deadline."""
    expected_kustomizations: tuple[str, ...] = ()
    """``namespace/name`` of Kustomizations that must exist and be Ready."""
    expected_helmreleases: tuple[tuple[str, str, str | None], ...] = ()
    """``(namespace, name, chart version or None)`` of HelmReleases that must be Ready."""
    stuck_grace_s: float = 60
    """Fail once nothing changed this long and every pending object waits on a kind no pending
    object can install (``no matches for kind``), directly or through ``dependsOn``."""
    nudge: bool = True
    """Request a reconcile (as ``flux reconcile`` does) the moment an object's dependencies are
    Ready, instead of letting it wait for its controller's requeue timer (``drtool.kube.nudge``)."""
