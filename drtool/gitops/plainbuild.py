"""An in-process build for the plain kustomizations most repositories consist of.

Running the real kustomize costs a process and a copy of the source artifact per Flux
Kustomization; a check of a large repository must answer in well under two seconds. Most
kustomization files only list ``resources`` (files and folders), and most Flux Kustomizations
set none of the fields Flux writes into the kustomization it builds. For those, the build is
fully determined and cheap: this module does it, and refuses (``NotPlain``) everything else,
including every error, so the real builder decides and words the message. The rules followed:

* fluxcd/pkg kustomize v1.13.0 ``Generator.WriteFile`` / ``scanManifests``: a path without a
  kustomization file gets a generated one listing every ``.yaml``/``.yml`` file below it and
  every subfolder holding its own kustomization file (not descended into);
* fluxcd/pkg sourceignore v0.8.0 default patterns: files source-controller leaves out of the
  artifact (CI configs, ``.sops.yaml``...) are never part of a build; a ``.sourceignore`` file
  means rules this module does not model, so the real builder takes over;
* kustomize: ``resources`` entries are files or folders with their own kustomization file; one
  id (group, kind, namespace, name) may appear once.
"""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

import yaml

from drtool.inputs import SAFE_LOADER as _LOADER

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
PLAIN_KEYS = frozenset({"apiVersion", "kind", "resources"})
# Flux Kustomization fields that change the generated kustomization (Generator.WriteFile).
FLUX_BUILD_FIELDS = ("targetNamespace", "namePrefix", "nameSuffix", "patches", "patchesStrategicMerge",
                     "patchesJson6902", "images", "components")
# fluxcd/pkg sourceignore v0.8.0: the default exclusions that can hit a .yaml/.yml file.
IGNORED_DIRS = frozenset({".git", ".github", ".circleci"})
IGNORED_NAMES = frozenset({".gitlab-ci.yml", ".travis.yml", "appveyor.yml", ".drone.yml", "cloudbuild.yaml",
                           "codeship-services.yml", "codeship-steps.yml", ".goreleaser.yml", ".sops.yaml",
                           ".flux.yaml"})


class NotPlain(Exception):
    """This build needs the real kustomize (a feature not modelled here, or an error to word)."""


def _kfile(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        if (directory / name).is_file():
            return directory / name
    return None


class PlainBuilder:
    """Builds plain paths of one checkout; ``build`` returns ``[(object, repo-relative file)]``."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self._prefix = str(self.root) + os.sep
        self.has_sourceignore = any(".sourceignore" in files for _, _, files in os.walk(self.root))

    def rel(self, path: Path) -> str:
        return str(path)[len(self._prefix):].replace(os.sep, "/")

    def _inside(self, path: str) -> bool:
        # Paths are joined and normalised, not resolved: a symlink is left to the real builder.
        return path.startswith(self._prefix) and not os.path.islink(path)

    def build(self, path: str, spec: Mapping[str, Any] | None = None) -> list[tuple[dict[str, Any], str]]:
        spec = spec or {}
        if self.has_sourceignore or any(spec.get(f) for f in FLUX_BUILD_FIELDS):
            raise NotPlain("the build needs the real kustomize")
        parts = [p for p in PurePosixPath((path or ".").lstrip("/")).parts if p not in (".", "")]
        if ".." in parts:
            raise NotPlain("path leaves the root")
        target = self.root.joinpath(*parts)
        if not target.is_dir() or any(os.path.islink(self.root.joinpath(*parts[: i + 1])) for i in range(len(parts))):
            raise NotPlain("no such path")
        out: list[tuple[dict[str, Any], str]] = []
        if _kfile(target) is not None:
            self._kustomize(target, (), out)
        else:
            self._generated(target, out)
        seen: set[tuple[str, str, str, str]] = set()
        for obj, _ in out:
            meta = obj["metadata"]
            key = (str(obj["apiVersion"]).rpartition("/")[0], str(obj["kind"]), str(meta.get("namespace") or ""),
                   str(meta["name"]))
            if key in seen:
                raise NotPlain("duplicate id")
            seen.add(key)
        return out

    def _generated(self, directory: Path, out: list) -> None:
        for entry in sorted(directory.iterdir(), key=lambda p: p.name):
            if entry.is_symlink():
                raise NotPlain("a symlink")
            if entry.is_dir():
                if entry.name in IGNORED_DIRS:
                    continue
                if _kfile(entry) is not None:
                    self._kustomize(entry, (), out)
                else:
                    self._generated(entry, out)
            elif entry.suffix in (".yaml", ".yml") and entry.name not in IGNORED_NAMES and entry.is_file():
                self._file(entry, out)

    def _kustomize(self, directory: Path, stack: tuple[Path, ...], out: list) -> None:
        if directory in stack:
            raise NotPlain("cycle")
        kfile = _kfile(directory)
        assert kfile is not None
        spec = self._documents(kfile)
        if len(spec) != 1 or not isinstance(spec[0], dict) or not set(spec[0]) <= PLAIN_KEYS:
            raise NotPlain(f"{self.rel(kfile)} uses more than resources")
        resources = spec[0].get("resources") or []
        if not isinstance(resources, list):
            raise NotPlain("resources is not a list")
        for item in resources:
            if not isinstance(item, str) or "://" in item or item.startswith("/") or ":" in item.split("/")[0]:
                raise NotPlain("remote or malformed resource")
            joined = os.path.normpath(os.path.join(directory, item))
            if not self._inside(joined):
                raise NotPlain("resource outside the root, or a symlink")
            target = Path(joined)
            if target.is_dir() and _kfile(target) is not None:
                self._kustomize(target, stack + (directory,), out)
            elif target.is_file() and target.name not in IGNORED_NAMES:
                self._file(target, out)
            else:
                raise NotPlain("missing resource")

    def _documents(self, path: Path) -> list[Any]:
        try:
            return [d for d in yaml.load_all(path.read_bytes(), Loader=_LOADER) if d is not None]
        except (yaml.YAMLError, OSError, UnicodeDecodeError):
            raise NotPlain(f"{path.name} does not parse") from None

    def _file(self, path: Path, out: list) -> None:
        rel = self.rel(path)
        for doc in self._documents(path):
            if not isinstance(doc, dict):
                raise NotPlain("not an object")
            meta = doc.get("metadata")
            if not doc.get("apiVersion") or not doc.get("kind") or not isinstance(meta, dict) or not meta.get("name"):
                raise NotPlain("not an object")
            if str(doc["apiVersion"]).startswith("kustomize.config.k8s.io/"):
                raise NotPlain("kustomize configuration among resources")
            out.append((doc, rel))
