"""Will it come back? Find, before the wipe, what Git alone cannot rebuild.

``run_check(inv, checkout, live)`` builds the repository the way Flux will on the empty
cluster and reports findings of seven kinds (``findings.KINDS``), each with its severity, the
Kustomization and file it comes from, and what to change. It reads files only; the live
cluster, when given, is a read-only snapshot taken beforehand (``live.read_live``).
"""
from __future__ import annotations

import time
from pathlib import Path

from drtool.gitops import sources
from drtool.gitops.check.data import check_data
from drtool.gitops.check.drift import check_drift
from drtool.gitops.check.findings import KINDS, CheckResult, Finding
from drtool.gitops.check.inputs import check_inputs
from drtool.gitops.check.kinds import check_kinds
from drtool.gitops.check.live import LiveSnapshot
from drtool.gitops.check.nodes import check_nodes
from drtool.gitops.check.repo import ROOT, Repo, _KUSTOMIZATION_FILES, load_repo, ref
from drtool.inventory import Inventory

__all__ = ["KINDS", "CheckResult", "Finding", "LiveSnapshot", "checkout_of", "run_check"]


def checkout_of(inv: Inventory, repo: str | Path | None = None) -> Path | None:
    """The local checkout to read: ``--repo``, else the inventory's ``flux.checkout``, else None."""
    if repo:
        return Path(repo).expanduser().resolve()
    return inv.resolve(inv.flux.checkout) if inv.flux.checkout else None


def run_check(inv: Inventory, checkout: Path, live: LiveSnapshot | None = None) -> CheckResult:
    """Every finding for ``inv``'s cluster path in ``checkout`` (and ``live``, when the old cluster answered)."""
    t0 = time.monotonic()
    result = CheckResult(live=live is not None)
    if live is not None:
        result.notes += [f"live cluster: could not list {e}" for e in live.errors]
    else:
        result.notes.append("live cluster not read: drift and live data were not checked")
    if not Path(checkout).is_dir():
        result.add(Finding("repository", "blocker", "checkout", f"the checkout {checkout} is not a directory",
                           "pass --repo PATH or set flux.checkout in the inventory to a local clone"))
        result.duration_s = time.monotonic() - t0
        return result
    repo = load_repo(Path(checkout), inv.flux.path, result)
    if repo is not None:
        result.kustomizations = len(repo.kustomizations)
        result.files = repo.files
        surface = sources.api_surface(inv.k3s.version, inv.flux.version, inv.flux.components_extra,
                                      inv.k3s.server_args)
        if "stands in" in surface.source:
            result.notes.append(f"API surface: {surface.source}")
        rules = {
            "kinds": lambda: check_kinds(repo, surface, live, result, inv.flux.version, inv.k3s.version),
            "nodes": lambda: check_nodes(repo, inv, result),
            "inputs": lambda: check_inputs(repo, inv, live, result),
            "drift": lambda: check_drift(repo, inv, live, result),
            "data": lambda: check_data(repo, inv, live, result),
            "repository": lambda: _twice(repo, result),
        }
        for name, rule in rules.items():
            try:
                rule()
            except (AttributeError, TypeError, ValueError, KeyError) as exc:
                # An object of an unexpected shape (the API server would refuse it) must not hide
                # the other rules' findings; say which rule stopped early.
                result.notes.append(f"the {name} rule stopped early at an object it could not read "
                                    f"({type(exc).__name__}: {exc})")
    result.duration_s = time.monotonic() - t0
    return result


def _twice(repo: Repo, result: CheckResult) -> None:
    """Objects two Kustomizations apply (the generated build of a cluster path picks up child paths)."""
    root = repo.kustomizations[ROOT]
    generated = not any((repo.root / root.path / n).is_file() for n in _KUSTOMIZATION_FILES)
    for ks in repo.kustomizations.values():
        if ks.key == ROOT or not ks.built:
            continue
        inside = root.path == "" or ks.path == root.path or ks.path.startswith(root.path + "/")
        if generated and inside:
            result.add(Finding(
                "repository", "warning", f"path {ks.path}",
                f"the cluster path {root.path} has no kustomization.yaml, so its generated build applies every "
                f"manifest under it, including {ks.path}, which Kustomization {ks.key} applies too",
                f"move {ks.path} out of {root.path}, or add a kustomization.yaml to {root.path} listing only "
                "the Kustomization files", kustomization=ks.key, file=ks.file))
    owners: dict[tuple[str, str, str], str] = {}
    for ks, b in repo.objects():
        meta = b.obj.get("metadata") or {}
        key = (str(b.obj.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name")))
        first = owners.setdefault(key, ks.key)
        if first != ks.key and not any(f.kind == "repository" and f.subject == f"path {ks.path}" for f in result.findings):
            result.add(Finding(
                "repository", "warning", ref(b.obj),
                f"{ref(b.obj)} is applied by both Kustomization {first} and {ks.key}: they overwrite and prune "
                "each other", "keep the object in one Kustomization only", kustomization=ks.key, file=ks.file_of(b)))
