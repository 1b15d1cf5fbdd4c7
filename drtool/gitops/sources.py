"""The check's single door to the kustomize builder, the API surface and the chart catalog.

The check builds a repository exactly the way Flux does, with the same code the lab's
kustomize-controller uses (``drtool.gitops.kustomize``: the real kustomize, postBuild
substitution), and judges kinds against what the pinned K3s and Flux versions serve
(``drtool.kube.apisurface``) and what charts install (``drtool.gitops.charts``). Only this
module imports them. Plain paths are built in-process (``drtool.gitops.plainbuild``) because a
kustomize process per Flux Kustomization is too slow for a large repository; the rest, and
every error, goes to the real builder.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from drtool.gitops import charts, kustomize
from drtool.gitops.kustomize import BuildError
from drtool.gitops.plainbuild import NotPlain, PlainBuilder
from drtool.inputs import SAFE_LOADER
from drtool.kube import apisurface

__all__ = ["BuildError", "Built", "Builder", "Surface", "api_surface", "chart_known", "crds_for_chart", "substitute"]

FLUX_GROUP_SUFFIX = ".toolkit.fluxcd.io"


@dataclass(frozen=True)
class Built:
    """One object of a build and the repository-relative file it came from ("" when unknown)."""

    obj: dict[str, Any]
    source: str


class Builder:
    """Builds Flux Kustomization paths of one checkout, the way kustomize-controller does."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.plain = PlainBuilder(self.root)
        self._provenance: Provenance | None = None

    def build(self, path: str, spec: dict[str, Any] | None = None) -> list[Built]:
        """The objects Flux would build from ``path`` with Kustomization ``spec``; raises ``BuildError``."""
        plain = self.build_plain(path, spec)
        return plain if plain is not None else self.build_real(path, spec)

    def build_plain(self, path: str, spec: dict[str, Any] | None = None) -> list[Built] | None:
        """The in-process build, or None when this path needs the real kustomize."""
        try:
            return [Built(obj, src) for obj, src in self.plain.build(path, spec)]
        except NotPlain:
            return None

    def build_real(self, path: str, spec: dict[str, Any] | None = None) -> list[Built]:
        """The build by the real kustomize (a process); raises ``BuildError``."""
        if self._provenance is None:
            self._provenance = Provenance(self.root)
        prefix, suffix = str((spec or {}).get("namePrefix") or ""), str((spec or {}).get("nameSuffix") or "")
        return [Built(dict(obj), self._provenance.file_of(obj, prefix, suffix))
                for obj in kustomize.build_kustomization(self.root, path, spec or {})]


def substitute(objects: list[dict[str, Any]], variables: dict[str, str]) -> list[dict[str, Any]]:
    """Flux's postBuild substitution (``drtool.gitops.kustomize.substitute``); raises ``BuildError``."""
    return kustomize.substitute(objects, variables)


class Provenance:
    """Which repository file declares an object, for the real builder's output (kind and name match)."""

    def __init__(self, root: Path):
        self.index: dict[tuple[str, str], list[tuple[str, str]]] = {}
        root = Path(root)
        for path in sorted(root.rglob("*")):
            if path.suffix not in (".yaml", ".yml") or ".git" in path.parts or not path.is_file():
                continue
            try:
                docs = list(yaml.load_all(path.read_bytes(), Loader=SAFE_LOADER))
            except (yaml.YAMLError, OSError, UnicodeDecodeError):
                continue
            rel = path.relative_to(root).as_posix()
            for doc in docs:
                if isinstance(doc, dict) and isinstance(doc.get("metadata"), dict):
                    meta = doc["metadata"]
                    self.index.setdefault((str(doc.get("kind")), str(meta.get("name"))), []).append(
                        (str(meta.get("namespace") or ""), rel))

    def file_of(self, obj: dict[str, Any], prefix: str = "", suffix: str = "") -> str:
        """The file declaring ``obj`` (its name with the Kustomization's namePrefix/nameSuffix taken off)."""
        meta = obj.get("metadata") or {}
        name = str(meta.get("name"))
        if prefix and name.startswith(prefix):
            name = name[len(prefix):]
        if suffix and name.endswith(suffix):
            name = name[: -len(suffix)]
        found = self.index.get((str(obj.get("kind")), name), []) or \
            self.index.get((str(obj.get("kind")), str(meta.get("name"))), [])
        same_ns = [f for ns, f in found if ns == str(meta.get("namespace") or "")]
        return (same_ns or [f for _, f in found] or [""])[0]


# --- API surface ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Surface:
    """The ``(group/version, kind)`` pairs a freshly installed cluster serves before any CRD of the repo."""

    served: frozenset[tuple[str, str]]
    source: str
    """Where the table came from, and any version it stands in for."""

    def serves(self, api_version: str, kind: str) -> bool:
        return (api_version, kind) in self.served

    def versions_of(self, group: str, kind: str) -> list[str]:
        """Served versions of ``kind`` in ``group`` (``""`` for core)."""
        return sorted(gv.rpartition("/")[2] for gv, k in self.served if k == kind and gv.rpartition("/")[0] == group)

    def knows_group(self, group: str) -> bool:
        return any(gv.rpartition("/")[0] == group for gv, _ in self.served)


def api_surface(k3s_version: str, flux_version: str, components_extra: Iterable[str] = (),
                server_args: Iterable[str] = ()) -> Surface:
    """What a fresh cluster at the pinned K3s and Flux versions serves before the repo's own CRDs.

    The recorded surface covers Kubernetes 1.31 and Flux v2.4.0 (the versions drtool pins); for
    another pin the nearest recorded one stands in and ``source`` says so. Unless the server runs
    with ``--disable traefik``, K3s installs its packaged Traefik chart, CRDs included (the chart
    catalog's ``traefik`` entry stands for it).
    """
    minor = ".".join(k3s_version.lstrip("v").split(".")[:2])
    source = []
    try:
        builtin = apisurface.builtin_resources(minor)
    except ValueError:
        builtin = apisurface.builtin_resources()
        source.append(f"Kubernetes 1.31 stands in for {minor}")
    try:
        flux = apisurface.flux_resources(flux_version, tuple(components_extra))
    except ValueError:
        flux = apisurface.flux_resources(components_extra=tuple(components_extra))
        source.append(f"Flux v2.4.0 stands in for {flux_version}")
    resources = (*builtin, *apisurface.k3s_resources(), *flux)
    served = {(f"{r.group}/{v}" if r.group else v, r.kind) for r in resources for v in r.versions}
    if not _disabled("traefik", list(server_args)):
        served |= {(f"{c.group}/{v}", c.kind) for c in charts.crds_for_chart("traefik", None) for v in c.versions}
    return Surface(frozenset(served), "drtool.kube.apisurface" + (f" ({'; '.join(source)})" if source else ""))


def _disabled(component: str, args: list[str]) -> bool:
    """Whether K3s server args (``--disable x,y`` / ``--disable=x``) disable a packaged component."""
    for i, arg in enumerate(args):
        value = arg.split("=", 1)[1] if arg.startswith("--disable=") else \
            args[i + 1] if arg == "--disable" and i + 1 < len(args) else ""
        if component in value.split(","):
            return True
    return False


def crds_for_chart(chart: str, version: str, values: dict[str, Any] | None = None) -> set[tuple[str, str]]:
    """``(group, kind)`` pairs the chart installs as CRDs with ``values``; empty when the chart is unknown."""
    return {(crd.group, crd.kind) for crd in charts.crds_for_chart(chart, version or None, values=values)}


def chart_known(chart: str) -> bool:
    """Whether the chart catalog has an entry for ``chart`` (so "no CRDs" is knowledge, not ignorance)."""
    return charts.default_catalog().entry_for(chart, None) is not None
