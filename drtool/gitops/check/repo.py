"""The repository as Flux sees it: every Flux Kustomization reachable from the cluster path, built.

Bootstrap creates the ``flux-system`` Kustomization on the cluster path (flux2 v2.4.0
``pkg/manifestgen/sync``); its build applies the child Kustomizations, whose builds may apply
more. Each one is built the way kustomize-controller v1.4.0 builds it (``generate`` then
``build`` in internal/controller/kustomization_controller.go: a generated kustomization.yaml
when the path has none), then postBuild substitution is applied with the variables Git holds.
Kustomizations that read another source than the bootstrap repository are noted and not built.
"""
from __future__ import annotations

import base64
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from drtool.gitops import sources
from drtool.gitops.check.findings import CheckResult, Finding

KS_GROUP = "kustomize.toolkit.fluxcd.io"
ROOT = "flux-system/flux-system"
BOOTSTRAP_SOURCE = ("GitRepository", "flux-system", "flux-system")
_KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def ref(obj: dict[str, Any]) -> str:
    """``Kind/namespace/name`` (``Kind/name`` when cluster-scoped), as Flux names objects."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind')}/{ns}/{meta.get('name')}" if ns else f"{obj.get('kind')}/{meta.get('name')}"


def is_kustomization(obj: dict[str, Any]) -> bool:
    return obj.get("kind") == "Kustomization" and group_of(str(obj.get("apiVersion", ""))) == KS_GROUP


@dataclass
class Kustomization:
    """One Flux Kustomization, where it is declared, and what its path builds to."""

    namespace: str
    name: str
    spec: dict[str, Any]
    file: str = ""
    """File declaring it ("" for the flux-system Kustomization bootstrap creates)."""
    path: str = ""
    """Repository-relative path it builds ("" is the repository root)."""
    objects: list[sources.Built] = field(default_factory=list)
    built: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def depends_on(self) -> list[str]:
        # A dependsOn entry without a namespace means the Kustomization's own
        # (kustomize-controller v1.4.0 checkDependencies).
        out = []
        for d in self.spec.get("dependsOn") or []:
            if isinstance(d, dict) and d.get("name"):
                out.append(f"{d.get('namespace') or self.namespace}/{d['name']}")
        return out

    @property
    def source(self) -> tuple[str, str, str]:
        s = self.spec.get("sourceRef") or {}
        return (str(s.get("kind", "")), str(s.get("namespace") or self.namespace), str(s.get("name", "")))

    def file_of(self, built: sources.Built) -> str:
        return built.source or self.file


@dataclass
class Repo:
    root: Path
    cluster_path: str
    kustomizations: dict[str, Kustomization] = field(default_factory=dict)
    files: int = 0
    _index: dict | None = field(default=None, repr=False)

    def objects(self):
        """(Kustomization, built object) for every object every Kustomization applies."""
        for ks in self.kustomizations.values():
            for b in ks.objects:
                yield ks, b

    def dependencies(self, key: str) -> set[str]:
        """Every Kustomization ``key`` depends on, transitively (``key`` excluded)."""
        seen: set[str] = set()
        todo = list(self.kustomizations[key].depends_on) if key in self.kustomizations else []
        while todo:
            k = todo.pop()
            if k in seen or k == key:
                continue
            seen.add(k)
            if k in self.kustomizations:
                todo.extend(self.kustomizations[k].depends_on)
        return seen

    def find(self, kind: str, namespace: str | None, name: str) -> list[tuple[Kustomization, sources.Built]]:
        """Objects of ``kind`` named ``name`` (in ``namespace`` when given) anywhere in the builds."""
        if self._index is None:
            self._index = {}
            for ks, b in self.objects():
                meta = b.obj.get("metadata") or {}
                self._index.setdefault((str(b.obj.get("kind")), str(meta.get("name"))), []).append((ks, b))
        out = []
        for ks, b in self._index.get((kind, name), []):
            meta = b.obj.get("metadata") or {}
            if namespace is None or (meta.get("namespace") or ks.spec.get("targetNamespace")) == namespace:
                out.append((ks, b))
        return out


def _norm(path: str) -> str:
    p = str(PurePosixPath("/" + (path or "").strip()).as_posix())
    parts = [x for x in p.split("/") if x not in ("", ".")]
    return "/".join(parts)


def _count_files(root: Path) -> int:
    n = 0
    for _, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        n += len(files)
    return n


def load_repo(root: Path, cluster_path: str, result: CheckResult) -> Repo | None:
    """Build every Kustomization reachable from ``cluster_path``; problems become findings in ``result``."""
    root = Path(root)
    cluster = _norm(cluster_path)
    repo = Repo(root, cluster, files=_count_files(root))
    if not (root / cluster).is_dir():
        result.add(Finding("repository", "blocker", f"path {cluster}",
                           f"the cluster path {cluster!r} (flux.path) does not exist in the checkout {root}",
                           "fix flux.path in the inventory or check out the branch Flux bootstraps from",
                           file=cluster))
        return None
    top = Kustomization("flux-system", "flux-system", {"path": "./" + cluster, "sourceRef": {
        "kind": "GitRepository", "name": "flux-system"}}, path=cluster)
    repo.kustomizations[ROOT] = top
    builder = sources.Builder(root)
    wave = [top]
    while wave:
        # Plain paths build in-process at once; the others need a kustomize process each, run
        # side by side. The children of this wave form the next one.
        real = [ks for ks in wave if not _build_one(repo, builder, ks, result, plain_only=True)]
        if len(real) > 1:
            with ThreadPoolExecutor(max_workers=min(4, len(real))) as pool:
                list(pool.map(lambda k: _build_one(repo, builder, k, result), real))
        elif real:
            _build_one(repo, builder, real[0], result)
        current, wave = wave, []
        for ks in current:
            wave.extend(_children(repo, ks, top, result))
    _other_sources(repo, result)
    _substitute(repo, result)
    return repo


def _other_sources(repo: Repo, result: CheckResult) -> None:
    for ks in repo.kustomizations.values():
        for dep in ks.depends_on:
            if dep not in repo.kustomizations:
                # kustomize-controller v1.4.0 checkDependencies: "dependency '...' not found", retried forever.
                result.add(Finding("repository", "blocker", f"dependsOn {dep}",
                                   f"Kustomization {ks.key} dependsOn {dep}, which nothing in Git declares: "
                                   "it waits for it forever",
                                   f"declare Kustomization {dep}, or fix the dependsOn entry (a missing namespace "
                                   f"means {ks.namespace})", kustomization=ks.key, file=ks.file))
        kind, ns, name = ks.source
        if ks.source == BOOTSTRAP_SOURCE:
            continue
        if not kind or not repo.find(kind, ns, name):
            result.add(Finding("repository", "blocker", f"{kind or 'source'}/{ns}/{name}",
                               f"Kustomization {ks.key} reads source {kind}/{ns}/{name}, which nothing in Git declares",
                               "declare the source in Git, or point sourceRef at the flux-system GitRepository",
                               kustomization=ks.key, file=ks.file))
        else:
            result.notes.append(f"Kustomization {ks.key} reads {kind}/{ns}/{name}, another source than the "
                                "bootstrap repository: its content is not checked")


def _children(repo: Repo, ks: Kustomization, top: Kustomization, result: CheckResult) -> list[Kustomization]:
    found = []
    for b in ks.objects:
        if not is_kustomization(b.obj):
            continue
        meta = b.obj.get("metadata") or {}
        namespace = meta.get("namespace") or ks.spec.get("targetNamespace") or "default"
        problem = _malformed(b.obj.get("spec"))
        if problem:
            # The API server's schema validation would refuse it: it never reconciles.
            result.add(Finding("repository", "blocker", f"Kustomization/{namespace}/{meta.get('name')}",
                               f"Kustomization {namespace}/{meta.get('name')}: {problem}",
                               "fix the field to match the Kustomization API (kustomize.toolkit.fluxcd.io/v1)",
                               kustomization=ks.key, file=ks.file_of(b)))
            continue
        child = Kustomization(namespace, str(meta.get("name")), dict(b.obj.get("spec") or {}),
                              file=ks.file_of(b), path=_norm(str((b.obj.get("spec") or {}).get("path") or "")))
        if child.key == ROOT:
            # gotk-sync.yaml: the real definition of the bootstrap Kustomization.
            top.spec, top.file = child.spec, child.file
            continue
        if child.key in repo.kustomizations:
            other = repo.kustomizations[child.key]
            result.add(Finding("repository", "warning", f"Kustomization/{child.key}",
                               f"Kustomization {child.key} is declared twice ({other.file} and {child.file}); "
                               "Flux applies whichever comes last", "keep one declaration",
                               kustomization=ks.key, file=child.file))
            continue
        repo.kustomizations[child.key] = child
        found.append(child)
    return found


_MAPPINGS = ("sourceRef", "decryption", "postBuild", "kubeConfig")
_LISTS = ("dependsOn", "healthChecks")


def _malformed(spec: Any) -> str:
    """What in a Flux Kustomization's spec has the wrong shape ("" when nothing)."""
    if not isinstance(spec, dict):
        return "spec: expected a mapping"
    for key in _MAPPINGS:
        if key in spec and not isinstance(spec[key], dict):
            return f"spec.{key}: expected a mapping"
    for key in _LISTS:
        value = spec.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, dict) for v in value)):
            return f"spec.{key}: expected a list of mappings"
    post = spec.get("postBuild") or {}
    if not isinstance(post.get("substitute") or {}, dict) or not isinstance(post.get("substituteFrom") or [], list):
        return "spec.postBuild: substitute must be a mapping and substituteFrom a list"
    if not isinstance(spec.get("path") or "", str):
        return "spec.path: expected a string"
    return ""


def _build_one(repo: Repo, builder: sources.Builder, ks: Kustomization, result: CheckResult,
               plain_only: bool = False) -> bool:
    """Build ``ks`` (problems become findings); with ``plain_only``, False when it needs the real kustomize."""
    if ks.source != BOOTSTRAP_SOURCE:
        return True  # another source: its content is not here (see _other_sources)
    if not (repo.root / ks.path).is_dir():
        result.add(Finding("repository", "blocker", f"path {ks.path or '.'}",
                           f"Kustomization {ks.key} builds path {ks.path or '.'!r}, which does not exist",
                           "fix spec.path (relative to the repository root) or add the directory",
                           kustomization=ks.key, file=ks.file))
        return True
    path = "./" + ks.path if ks.path else "./"
    if plain_only:
        objects = builder.build_plain(path, ks.spec)
        if objects is None:
            return False
        ks.objects, ks.built = objects, True
        return True
    try:
        ks.objects = builder.build_real(path, ks.spec)
        ks.built = True
    except sources.BuildError as exc:
        result.add(Finding("repository", "blocker", f"build {ks.path or '.'}",
                           f"Kustomization {ks.key} does not build: {exc}",
                           "fix the file named in the message; kustomize-controller fails the same way",
                           kustomization=ks.key, file=ks.file))
    return True


def substitution_values(repo: Repo, ks: Kustomization) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Variables for ``ks``'s postBuild from Git, and the ``substituteFrom`` refs Git cannot satisfy."""
    post = ks.spec.get("postBuild") or {}
    values: dict[str, str] = {}
    missing: list[dict[str, Any]] = []
    for entry in post.get("substituteFrom") or []:
        if not isinstance(entry, dict):
            continue
        found = repo.find(str(entry.get("kind")), ks.namespace, str(entry.get("name")))
        if not found:
            missing.append(entry)
            continue
        obj = found[0][1].obj
        if obj.get("sops"):
            continue  # encrypted in Git: present, values unknown here
        for k, v in (obj.get("data") or {}).items():
            if entry.get("kind") == "Secret":
                try:
                    v = base64.b64decode(str(v)).decode()
                except (ValueError, UnicodeDecodeError):
                    continue
            values[str(k)] = str(v)
        for k, v in (obj.get("stringData") or {}).items():
            values[str(k)] = str(v)
    # Inline values win over substituteFrom (kustomize-controller v1.4.0 PostBuild.Substitute).
    values.update({str(k): str(v) for k, v in (post.get("substitute") or {}).items()})
    return values, missing


def _substitute(repo: Repo, result: CheckResult) -> None:
    for ks in repo.kustomizations.values():
        if not ks.objects or not ks.spec.get("postBuild"):
            continue
        values, _ = substitution_values(repo, ks)
        try:
            done = sources.substitute([b.obj for b in ks.objects], values)
        except sources.BuildError as exc:
            result.add(Finding("repository", "blocker", f"postBuild {ks.path or '.'}",
                               f"Kustomization {ks.key}: {exc}",
                               "fix the variable or the value named in the message; kustomize-controller fails the same way",
                               kustomization=ks.key, file=ks.file))
            continue
        ks.objects = [sources.Built(o, b.source) for o, b in zip(done, ks.objects)]
    repo._index = None  # names may have changed
