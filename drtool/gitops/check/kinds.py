"""Findings 1, 2 and part of 7: kinds and API versions a fresh cluster cannot apply in order.

kustomize-controller v1.4.0 dry-runs a Kustomization's whole build server-side before applying
it (``apply`` in internal/controller/kustomization_controller.go, staged: CRDs and Namespaces
first, then the rest); one object of a kind the cluster does not serve fails the entire
Kustomization ("no matches for kind"), so a HelmRelease in the same build that would install
that CRD is never created. A Kustomization's ``dependsOn`` holds it back until the dependency
is Ready (``checkDependencies``), which is what orders a CRD before its custom resources.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from drtool.gitops import sources
from drtool.gitops.check.findings import CheckResult, Finding
from drtool.gitops.check.live import LiveSnapshot
from drtool.gitops.check.repo import Kustomization, Repo, group_of, is_kustomization, ref

_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")
# helm-controller v1.1.0 internal/action/diff.go: the annotations Helm puts on what it installs.
HELM_RELEASE_NAME = "meta.helm.sh/release-name"
HELM_RELEASE_NAMESPACE = "meta.helm.sh/release-namespace"


def version_rank(version: str) -> tuple[int, int, int]:
    """Kubernetes version priority: v2 > v1 > v1beta2 > v1beta1 > v1alpha1; unknown forms lowest."""
    m = _VERSION.match(version)
    if not m:
        return (-1, 0, 0)
    stage = {"alpha": 0, "beta": 1, None: 2}[m.group(2)]
    return (int(m.group(1)), stage, int(m.group(3) or 0))


def release_of(hr: dict[str, Any]) -> tuple[str, str]:
    """(release name, release namespace) of a HelmRelease (helm-controller v1.1.0
    api/v2/helmrelease_types.go GetReleaseName / GetReleaseNamespace)."""
    meta = hr.get("metadata") or {}
    spec = hr.get("spec") or {}
    target = spec.get("targetNamespace") or ""
    name = spec.get("releaseName") or (f"{target}-{meta.get('name')}" if target else str(meta.get("name")))
    return name, target or str(meta.get("namespace") or "")


class _Lazy:
    """The providers map, computed the first time a custom kind needs it (reading the chart catalog costs)."""

    def __init__(self, make):
        self._make, self._value = make, None

    def get(self, key=None, default=None):
        """The value for ``key``, or the whole map when no key is given."""
        if self._value is None:
            self._value = self._make()
        return self._value if key is None else self._value.get(key, default)

    def __contains__(self, key) -> bool:
        return self.get(key) is not None


@dataclass(frozen=True)
class Provider:
    """Something that makes a custom kind available: a CRD in Git or a HelmRelease's chart."""

    ks: str
    what: str
    """``CustomResourceDefinition/x`` or ``HelmRelease/ns/name``."""
    via_helm: bool


def _crd_kinds(obj: dict[str, Any]) -> tuple[str, str, set[str]]:
    spec = obj.get("spec") or {}
    versions = {str(v.get("name")) for v in spec.get("versions") or [] if isinstance(v, dict) and v.get("served", True)}
    return str(spec.get("group", "")), str((spec.get("names") or {}).get("kind", "")), versions


def providers(repo: Repo, live: LiveSnapshot | None) -> dict[tuple[str, str], list[Provider]]:
    """(group, kind) → what in Git brings it: CRDs applied, charts installed by HelmReleases."""
    out: dict[tuple[str, str], list[Provider]] = {}
    live_helm: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for crd in (live.of("CustomResourceDefinition") if live else []):
        meta = crd.get("metadata") or {}
        notes = meta.get("annotations") or {}
        if (meta.get("labels") or {}).get("app.kubernetes.io/managed-by") == "Helm" and HELM_RELEASE_NAME in notes:
            group, kind, _ = _crd_kinds(crd)
            live_helm.setdefault((notes[HELM_RELEASE_NAME], notes.get(HELM_RELEASE_NAMESPACE, "")), set()).add((group, kind))
    for ks, b in repo.objects():
        obj = b.obj
        if obj.get("kind") == "CustomResourceDefinition":
            group, kind, _ = _crd_kinds(obj)
            out.setdefault((group, kind), []).append(Provider(ks.key, ref(obj), False))
        elif obj.get("kind") == "HelmRelease" and group_of(str(obj.get("apiVersion"))) == "helm.toolkit.fluxcd.io":
            chart = ((obj.get("spec") or {}).get("chart") or {}).get("spec") or {}
            values = (obj.get("spec") or {}).get("values")
            kinds = set(sources.crds_for_chart(str(chart.get("chart", "")), str(chart.get("version", "")),
                                               values if isinstance(values, dict) else None)) \
                if chart.get("chart") else set()
            # Learned from the live cluster: the CRDs Helm installed for this very release.
            kinds |= live_helm.get(release_of(obj), set())
            for gk in kinds:
                out.setdefault(gk, []).append(Provider(ks.key, ref(obj), True))
    return out


def check_kinds(repo: Repo, surface: sources.Surface, live: LiveSnapshot | None, result: CheckResult,
                flux_version: str, k3s_version: str) -> None:
    provided = _Lazy(lambda: providers(repo, live))
    unknown_charts = _Lazy(lambda: _unknown_charts(repo))
    live_crds = {(_crd_kinds(c)[0], _crd_kinds(c)[1]) for c in (live.of("CustomResourceDefinition") if live else [])}
    for ks in repo.kustomizations.values():
        deps = repo.dependencies(ks.key)
        for b in ks.objects:
            obj = b.obj
            api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
            _one(repo, ks, deps, api_version, kind, ref(obj), ks.file_of(b), surface, provided, live_crds, result,
                 flux_version, k3s_version, unknown_charts)
        for hc in ks.spec.get("healthChecks") or []:
            if not isinstance(hc, dict):
                continue
            api_version, kind = str(hc.get("apiVersion", "")), str(hc.get("kind", ""))
            if not api_version or surface.serves(api_version, kind):
                continue
            group = group_of(api_version)
            version = api_version.rpartition("/")[2]
            crd_versions = _git_crd_versions(repo, group, kind)
            if version in crd_versions or ((group, kind) in provided and not surface.knows_group(group)):
                continue
            served = surface.versions_of(group, kind)
            result.add(Finding(
                "api-version", "blocker", f"healthCheck {kind}/{hc.get('namespace', '')}/{hc.get('name')}",
                f"Kustomization {ks.key} health-checks {api_version} {kind}, which Flux {flux_version} / "
                f"K3s {k3s_version} does not serve" + (f" (served: {', '.join(served)})" if served else ""),
                f"set healthChecks apiVersion to {group + '/' if group else ''}{served[-1] if served else '<served version>'}"
                if served else "health-check a kind the cluster serves",
                kustomization=ks.key, file=ks.file))


def _unknown_charts(repo: Repo) -> dict[str, list[str]]:
    """Kustomization key → its HelmReleases whose chart the catalog does not know."""
    out: dict[str, list[str]] = {}
    for ks, b in repo.objects():
        if b.obj.get("kind") != "HelmRelease" or group_of(str(b.obj.get("apiVersion"))) != "helm.toolkit.fluxcd.io":
            continue
        chart = (((b.obj.get("spec") or {}).get("chart") or {}).get("spec") or {}).get("chart")
        if not chart or not sources.chart_known(str(chart)):
            out.setdefault(ks.key, []).append(ref(b.obj))
    return out


def _git_crd_versions(repo: Repo, group: str, kind: str) -> set[str]:
    out: set[str] = set()
    for _, b in repo.objects():
        if b.obj.get("kind") == "CustomResourceDefinition":
            g, k, versions = _crd_kinds(b.obj)
            if (g, k) == (group, kind):
                out |= versions
    return out


def _one(repo: Repo, ks: Kustomization, deps: set[str], api_version: str, kind: str, subject: str, file: str,
         surface: sources.Surface, provided: "_Lazy", live_crds: set, result: CheckResult,
         flux_version: str, k3s_version: str, unknown_charts: "_Lazy") -> None:
    if surface.serves(api_version, kind):
        return
    group = group_of(api_version)
    version = api_version.rpartition("/")[2]
    served = surface.versions_of(group, kind)
    is_flux = group.endswith(sources.FLUX_GROUP_SUFFIX)
    if is_flux and not served and not surface.knows_group(group):
        # A Flux group none of the bootstrapped controllers serves (image automation is not default).
        result.add(Finding(
            "api-version", "blocker", subject,
            f"{subject} uses {api_version}, which none of the Flux {flux_version} controllers the inventory "
            "bootstraps serves (flux.components and flux.components_extra)",
            "add the controller that serves it to flux.components_extra (e.g. image-reflector-controller, "
            "image-automation-controller), or drop the object",
            kustomization=ks.key, file=file))
        return
    if served or surface.knows_group(group) or not group:
        newer = bool(served) and all(version_rank(version) > version_rank(v) for v in served)
        if is_flux and newer:
            result.add(Finding(
                "repository", "blocker", subject,
                f"{subject} uses {api_version}, newer than the pinned Flux {flux_version} serves "
                f"({', '.join(group + '/' + v for v in served)}): the repository moved to a newer Flux than the inventory pins",
                f"pin the Flux version the repository was written for in flux.version (and flux.cli), "
                f"or write {group}/{max(served, key=version_rank)}",
                kustomization=ks.key, file=file))
            return
        where = f"Flux {flux_version}" if is_flux else f"K3s {k3s_version}"
        result.add(Finding(
            "api-version", "blocker", subject,
            f"{subject} uses {api_version}, which {where} does not serve"
            + (f" (served: {', '.join(served)})" if served else "") + "; the Kustomization's dry-run fails",
            f"change apiVersion to {group + '/' if group else ''}{max(served, key=version_rank)}" if served
            else f"use a kind {where} serves",
            kustomization=ks.key, file=file))
        return
    # A custom kind: someone must install its CRD first.
    crd_versions_in_git = _git_crd_versions(repo, group, kind)
    if crd_versions_in_git and version not in crd_versions_in_git:
        result.add(Finding(
            "api-version", "blocker", subject,
            f"{subject} uses {api_version}, but the CRD in Git serves only {', '.join(sorted(crd_versions_in_git))}",
            f"change apiVersion to {group}/{max(crd_versions_in_git, key=version_rank)}",
            kustomization=ks.key, file=file))
        return
    found = provided.get((group, kind), [])
    if any(p.ks == ks.key and not p.via_helm for p in found) or any(p.ks in deps for p in found):
        return  # its CRD is applied first in the same build, or by a dependency
    dependents_of_self = {k for k in repo.kustomizations if ks.key in repo.dependencies(k)}
    same = [p for p in found if p.ks == ks.key and p.via_helm]
    if same:
        p = same[0]
        result.add(Finding(
            "crd-ordering", "blocker", subject,
            f"{subject} ({api_version}) needs the CRD that {p.what} installs, and both are in Kustomization "
            f"{ks.key}: on an empty cluster the dry-run fails on the unknown kind, so the HelmRelease is never "
            "created (a deadlock)",
            f"move {subject} to a Kustomization that dependsOn {ks.name} (e.g. a new '{ks.name}-config' with "
            f"dependsOn: [{{name: {ks.name}}}]) and keep {p.what} where it is",
            kustomization=ks.key, file=file))
        return
    cyclic = [p for p in found if p.ks in dependents_of_self]
    if cyclic:
        p = cyclic[0]
        result.add(Finding(
            "crd-ordering", "blocker", subject,
            f"{subject} needs the CRD from {p.what} in Kustomization {p.ks}, which itself dependsOn {ks.key}: "
            "neither can become Ready on an empty cluster",
            f"move {subject} to a Kustomization that dependsOn {p.ks.split('/')[-1]}",
            kustomization=ks.key, file=file))
        return
    if found:
        p = found[0]
        result.add(Finding(
            "repository", "warning", subject,
            f"{subject} needs the CRD from {p.what} in Kustomization {p.ks}, but {ks.key} has no dependsOn on it: "
            "on an empty cluster it fails until the CRD happens to exist (each retry waits retryInterval)",
            f"add dependsOn: [{{name: {p.ks.split('/')[-1]}}}] to Kustomization {ks.name}",
            kustomization=ks.key, file=file))
        return
    hint = " (the live cluster has this CRD, installed by hand or by a chart the check does not know)" \
        if (group, kind) in live_crds else ""
    unknown = unknown_charts.get()
    maybe = [hr for k in sorted(deps) for hr in unknown.get(k, [])]
    if maybe:
        # A chart the catalog does not know may well install it: say so, do not stop the rebuild.
        result.add(Finding(
            "crd-ordering", "warning", subject,
            f"{subject} ({api_version}) needs a CRD nothing in Git is known to install; "
            f"{', '.join(maybe)} in a Kustomization {ks.key} dependsOn may install it (its chart is not in the "
            f"catalog){hint}", "if none of them does, put the CRD in a Kustomization that "
            f"{ks.name} dependsOn; if one does, accept this finding", kustomization=ks.key, file=file))
        return
    same_unknown = unknown.get(ks.key, [])
    if same_unknown:
        result.add(Finding(
            "crd-ordering", "warning", subject,
            f"{subject} ({api_version}) needs a CRD nothing in Git is known to install; if {same_unknown[0]} in "
            f"the same Kustomization {ks.key} installs it, this is a deadlock on an empty cluster{hint}",
            f"move {subject} to a Kustomization that dependsOn {ks.name}", kustomization=ks.key, file=file))
        return
    result.add(Finding(
        "crd-ordering", "blocker", subject,
        f"{subject} ({api_version}) is not built into K3s {k3s_version} or Flux {flux_version}, and nothing in Git "
        f"applies its CRD before Kustomization {ks.key}{hint}",
        f"put the CRD (or the HelmRelease whose chart installs it) in a Kustomization that {ks.name} dependsOn",
        kustomization=ks.key, file=file))


__all__ = ["check_kinds", "providers", "release_of", "version_rank", "is_kustomization"]
