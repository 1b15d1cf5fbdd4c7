"""The CRDs a simulated Helm release installs, from drtool's chart catalog.

Real charts bring CRDs (cert-manager, kube-prometheus-stack, Traefik ...); later
Kustomizations apply custom resources of those kinds. The lab's helm-controller creates
them before the release's workload, as Helm installs a chart's ``crds/`` directory (and sorts
CRD templates) before the rest.

The policy for the ``crds/`` directory follows helm-controller v1.1.0
``api/v2/helmrelease_types.go``: ``install.crds`` default ``Create`` (``skipCRDs`` or
``Skip`` installs none), ``upgrade.crds`` default ``Skip``; ``Create`` never changes an existing
CRD, ``CreateReplace`` replaces it. CRDs a chart renders from ``templates/`` are ordinary
release objects: installed whenever the values that gate them are true, whatever that policy.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from drtool.gitops.charts import ChartCatalog, ChartEntry, default_catalog, load_catalog, parse_entries


def lab_catalog(lab_config: dict[str, Any], scenario_entries: Iterable[ChartEntry] = ()) -> ChartCatalog:
    """The built-in catalog, overridden by lab.json's ``chart_crds`` file (``inv lab.up --chart-crds``)
    and then by the scenario's ``chart_crds`` entries."""
    catalog = default_catalog()
    path = lab_config.get("chart_crds")
    if path:
        catalog = catalog.overlay(load_catalog(Path(path)))
    return catalog.overlay(tuple(scenario_entries))


def crd_policy(spec: dict[str, Any], action: str) -> str:
    """``Skip``, ``Create`` or ``CreateReplace`` for the chart's crds/ directory."""
    section = spec.get(action) or {}
    if action == "install" and section.get("skipCRDs"):
        return "Skip"
    return str(section.get("crds") or ("Create" if action == "install" else "Skip"))


def chart_crd_objects(catalog: ChartCatalog, chart: str, version: str, release: dict[str, Any],
                      action: str) -> list[tuple[dict[str, Any], bool]]:
    """(CRD object, replace existing?) for each CRD this install/upgrade creates."""
    spec = release.get("spec") or {}
    entry = catalog.entry_for(chart, version)
    if entry is None or not entry.enabled(spec.get("values") or {}):
        return []
    if entry.crds_dir:
        policy = crd_policy(spec, action)
        if policy == "Skip":
            return []
        replace = policy == "CreateReplace"
        labels = None
    else:
        replace = True                     # templates: Helm applies them like any release object
        meta = release["metadata"]
        labels = {"app.kubernetes.io/managed-by": "Helm",
                  "helm.toolkit.fluxcd.io/name": meta["name"],
                  "helm.toolkit.fluxcd.io/namespace": meta.get("namespace") or "default"}
    return [(crd.crd(labels), replace) for crd in entry.crds]


def scenario_chart_entries(raw: Iterable[dict[str, Any]], source: str) -> tuple[ChartEntry, ...]:
    return parse_entries(list(raw), source, "chart_crds")
