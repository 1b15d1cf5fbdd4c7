"""Simulated cluster controllers that run inside the lab API server's event loop.

The K3s simulation's server calls ``await start_controllers(store, lab_config)`` once
its ``Store`` is up; the returned ``Controllers`` runs until ``await stop()``. Together
they play Flux's source-, kustomize- and helm-controllers, the Deployment/ReplicaSet/
StatefulSet controllers, the scheduler and the kubelets, with the delays and faults of
the lab's scenario (``lab_config["scenario"]``, default: the shipped ``homelab``).
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from drtool.errors import BadInput
from drtool.lab.scenarios import Scenario, builtin_scenario_path, load_scenario

from .chartcrds import lab_catalog
from .helmreleases import HelmReleaseReconciler
from .kustomizations import KustomizationReconciler
from .pods import PodReconciler
from .runtime import Runtime
from .sources import ArtifactStore, GitRepositoryReconciler, SimpleSourceReconciler
from .workloads import DeploymentReconciler, ReplicaSetReconciler, StatefulSetReconciler

__all__ = ["Controllers", "start_controllers", "scenario_from_config"]

log = logging.getLogger(__name__)


def scenario_from_config(lab_config: dict[str, Any]) -> Scenario:
    """The scenario lab.json names, the shipped ``homelab`` one when it names none.

    A scenario file that does not validate raises ``BadInput``: running the lab with
    silently different faults than asked would make results meaningless.
    """
    path = lab_config.get("scenario")
    if not path:
        return load_scenario(builtin_scenario_path("homelab"))
    return load_scenario(path)


class Controllers:
    """The running controllers; ``await stop()`` ends them and removes their artifacts."""

    def __init__(self, runtime: Runtime, artifacts: ArtifactStore):
        self.runtime = runtime
        self.artifacts = artifacts

    @property
    def scenario(self) -> Scenario:
        return self.runtime.scenario

    async def stop(self) -> None:
        await self.runtime.stop()
        self.artifacts.cleanup()


def _artifact_root(lab_config: dict[str, Any]) -> Path:
    root = lab_config.get("root")
    if root and Path(root).is_dir():
        base = Path(root) / "flux-artifacts"
        base.mkdir(exist_ok=True)
        # Servers of several nodes may share the lab dir and PID numbers (PID namespaces).
        path = base / f"{socket.gethostname()}-{os.getpid()}"
        shutil.rmtree(path, ignore_errors=True)
        return path
    return Path(tempfile.mkdtemp(prefix="lab-flux-artifacts-"))


async def start_controllers(store: Any, lab_config: dict[str, Any]) -> Controllers:
    """Start every simulated controller on ``store`` in the running event loop.

    ``lab_config`` is the parsed lab.json: ``gitops.url_map`` locates the Git repos
    behind GitRepository URLs, ``scenario`` the delays and faults, ``root`` the lab dir.
    Raises ``BadInput`` for an invalid scenario file.
    """
    try:
        scenario = scenario_from_config(lab_config)
    except BadInput:
        log.error("invalid lab scenario %s", lab_config.get("scenario"))
        raise
    try:
        catalog = lab_catalog(lab_config, scenario.chart_crd_entries())
    except ValueError as exc:                   # ChartCatalogError names the file and field
        raise BadInput(str(lab_config.get("chart_crds") or "chart_crds"), "", str(exc)) from None
    url_map = dict((lab_config.get("gitops") or {}).get("url_map") or {})
    artifacts = ArtifactStore(_artifact_root(lab_config))
    runtime = Runtime(store, scenario)
    for reconciler in (GitRepositoryReconciler(runtime, url_map, artifacts), SimpleSourceReconciler(runtime),
                       KustomizationReconciler(runtime, artifacts),
                       HelmReleaseReconciler(runtime, catalog),
                       DeploymentReconciler(runtime), ReplicaSetReconciler(runtime),
                       StatefulSetReconciler(runtime), PodReconciler(runtime)):
        runtime.add(reconciler)
    runtime.start()
    return Controllers(runtime, artifacts)
