"""Wait until a rebuilt cluster has converged, or say precisely why it will not.

Converged means: every Flux object Ready for its current generation, every workload Current,
every pod Ready or Succeeded (K3s's ``helm-install-*`` pods only need to complete), every Node
Ready, and every expected Kustomization and HelmRelease present and Ready at the expected chart
version; objects in ignored namespaces do not count.

The engine fails fast, unless told to keep waiting, on what will not heal by waiting: Stalled
Flux objects (``RetriesExceeded``), Kustomization build/decryption failures, CrashLoopBackOff past
a restart threshold, image pull errors, and pods Unschedulable (or missing a Secret/ConfigMap)
for longer than a grace period. A failure names the object, its condition message, its recent
Events and the chain of objects it blocks. Past the deadline the result lists what is pending.

State comes from ``drtool.kube.watcher.Watcher`` (one list + watch per kind), so waiting costs
the same number of requests for 10 objects or 12,000, and "ready at" times are when the API
said so, not when a poll happened to look.

The package splits into ``options``, ``assessment`` (pure policy), ``events``, ``results``,
``engine`` (``Converger``) and ``snapshot``; the names below are its public interface.
"""
from __future__ import annotations

from drtool.converge.assessment import Assessment, assess, settled_fingerprint, stuck_causes, unmet_expectations
from drtool.converge.engine import Converger
from drtool.converge.events import fetch_events
from drtool.converge.options import ConvergeOptions
from drtool.converge.results import ConvergeResult, Failure, ObjectReport, Progress
from drtool.converge.snapshot import Snapshot, SnapshotRow, snapshot

__all__ = ["Assessment", "ConvergeOptions", "ConvergeResult", "Converger", "Failure", "ObjectReport", "Progress",
           "Snapshot", "SnapshotRow", "assess", "fetch_events", "settled_fingerprint", "snapshot", "stuck_causes",
           "unmet_expectations"]
