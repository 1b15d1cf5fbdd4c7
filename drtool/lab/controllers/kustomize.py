"""Build a Flux Kustomization's path into objects, the way kustomize-controller does.

Pure code over a directory tree: no API, no Git. Rules followed:

* a directory with a ``kustomization.yaml`` (or ``.yml`` / ``Kustomization``) contributes
  exactly its ``resources`` (files and directories, recursively), plus its ``namespace``;
* the top path without one gets a generated kustomization: every ``.yaml``/``.yml``
  manifest under it, recursively, and every subdirectory that has its own kustomization
  file as one resource; other files (``*.yaml.backup``, READMEs) are ignored;
* kustomize's own ``Kustomization`` documents are configuration, never objects.

Errors raise ``BuildError`` naming the file, so the controller can put the message on
the Kustomization's ``Ready`` condition (reason ``BuildFailed``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
KUSTOMIZE_GROUP = "kustomize.config.k8s.io"
MANIFEST_SUFFIXES = (".yaml", ".yml")
# Kinds that never carry a namespace (for kustomize's ``namespace:`` transformer).
CLUSTER_SCOPED = frozenset({
    "Namespace", "Node", "PersistentVolume", "CustomResourceDefinition", "ClusterRole",
    "ClusterRoleBinding", "StorageClass", "PriorityClass", "APIService",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "IngressClass",
})


class BuildError(Exception):
    """The path cannot be built; ``str()`` is the message for the Ready condition."""


@dataclass(frozen=True)
class Manifest:
    """One object of the build and the repo-relative file it came from."""

    obj: dict[str, Any]
    source: str

    @property
    def ref(self) -> str:
        """``Kind/namespace/name`` (or ``Kind/name``) as Flux names objects in messages."""
        meta = self.obj.get("metadata") or {}
        ns = meta.get("namespace")
        return f"{self.obj.get('kind')}/{ns}/{meta.get('name')}" if ns else f"{self.obj.get('kind')}/{meta.get('name')}"


def _kustomization_file(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def build(root: Path, path: str) -> list[Manifest]:
    """Objects of ``path`` (``./infrastructure``) inside the checked-out repo ``root``.

    Raises ``BuildError`` for a missing path, unparsable YAML or a malformed object.
    """
    root = Path(root)
    rel = (path or ".").strip()
    target = (root / rel.lstrip("/")).resolve() if rel not in ("", ".", "./") else root.resolve()
    if not _inside(root, target):
        raise BuildError(f"kustomization path {rel!r} is outside the source")
    if not target.is_dir():
        raise BuildError(f"kustomization path not found: stat {rel}: no such file or directory")
    builder = _Builder(root.resolve())
    if _kustomization_file(target) is not None:
        return builder.kustomize_dir(target, ())
    return builder.generated(target)


class _Builder:
    def __init__(self, root: Path):
        self.root = root

    def rel(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.root))
        except ValueError:
            return str(path)

    def generated(self, directory: Path) -> list[Manifest]:
        """What kustomize-controller's generated kustomization.yaml would include."""
        out: list[Manifest] = []
        for entry in sorted(directory.iterdir()):
            if entry.is_dir():
                if _kustomization_file(entry) is not None:
                    out.extend(self.kustomize_dir(entry, ()))
                else:
                    out.extend(self.generated(entry))
            elif entry.is_file() and entry.name.endswith(MANIFEST_SUFFIXES):
                out.extend(self.load_file(entry))
        return out

    def kustomize_dir(self, directory: Path, stack: tuple[Path, ...]) -> list[Manifest]:
        if directory in stack:
            raise BuildError(f"{self.rel(directory)}: cycle in kustomization resources")
        kfile = _kustomization_file(directory)
        assert kfile is not None
        spec = self.load_yaml_mapping(kfile)
        resources = spec.get("resources") or []
        if not isinstance(resources, list):
            raise BuildError(f"{self.rel(kfile)}: resources: expected a list")
        out: list[Manifest] = []
        for item in resources:
            if not isinstance(item, str) or not item.strip():
                raise BuildError(f"{self.rel(kfile)}: resources: expected file or directory names, got {item!r}")
            if "://" in item:
                raise BuildError(f"{self.rel(kfile)}: remote resource {item!r} is not supported offline")
            target = (directory / item).resolve()
            if not _inside(self.root, target):
                raise BuildError(f"{self.rel(kfile)}: resource {item!r} is outside the source")
            if target.is_dir():
                if _kustomization_file(target) is None:
                    raise BuildError(
                        f"{self.rel(kfile)}: accumulating resources: '{self.rel(target)}' must contain "
                        f"one of {list(KUSTOMIZATION_FILES)}")
                out.extend(self.kustomize_dir(target, stack + (directory,)))
            elif target.is_file():
                out.extend(self.load_file(target))
            else:
                raise BuildError(f"{self.rel(kfile)}: accumulating resources: '{item}': no such file or directory")
        namespace = spec.get("namespace")
        if namespace:
            for m in out:
                if m.obj.get("kind") not in CLUSTER_SCOPED:
                    m.obj.setdefault("metadata", {})["namespace"] = namespace
        return out

    def load_yaml_mapping(self, path: Path) -> dict[str, Any]:
        docs = self.load_documents(path)
        if len(docs) != 1 or not isinstance(docs[0], dict):
            raise BuildError(f"{self.rel(path)}: expected one YAML mapping")
        return docs[0]

    def load_documents(self, path: Path) -> list[Any]:
        try:
            return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise BuildError(f"failed to decode {self.rel(path)}{where}: yaml: {problem}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise BuildError(f"{self.rel(path)}: cannot read: {exc}") from None

    def load_file(self, path: Path) -> list[Manifest]:
        out = []
        for index, doc in enumerate(self.load_documents(path)):
            where = f"{self.rel(path)}" + (f" (document {index + 1})" if index else "")
            if not isinstance(doc, dict):
                raise BuildError(f"{where}: expected a Kubernetes object, got {type(doc).__name__}")
            api_version, kind = doc.get("apiVersion"), doc.get("kind")
            if not api_version or not kind:
                raise BuildError(f"{where}: missing apiVersion or kind")
            if kind == "Kustomization" and str(api_version).startswith(KUSTOMIZE_GROUP + "/"):
                continue
            name = (doc.get("metadata") or {}).get("name") if isinstance(doc.get("metadata"), dict) else None
            if not name:
                raise BuildError(f"{where}: {kind} has no metadata.name")
            out.append(Manifest(doc, self.rel(path)))
        return out
