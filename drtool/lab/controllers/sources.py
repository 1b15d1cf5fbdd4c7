"""Simulated source-controller: GitRepository from the lab's local Git repos, HelmRepository.

A GitRepository's URL is mapped to a local repo through lab.json's ``gitops.url_map``;
the branch tip becomes the artifact revision ``<branch>@sha1:<sha>`` and its tree is
extracted (``git archive``) into an artifact directory that kustomize-controller builds from.
"""
from __future__ import annotations

import asyncio
import hashlib
import io
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any, Mapping

from drtool.lab.api.objects import now_rfc3339
from drtool.lab.gitops_repo import GitError, git, resolve_repo

from .conditions import flux_not_ready, flux_progressing, flux_ready, status_copy
from .durations import parse_duration
from .runtime import DONE, Key, Result, Runtime, StatelessReconciler, flux_gate, key_of

SOURCE_GROUP = "source.toolkit.fluxcd.io"
MAX_POLL = 60.0          # seconds: poll Git at most this often whatever spec.interval says


class ArtifactStore:
    """Extracted Git trees by commit sha (what source-controller serves as tarballs)."""

    def __init__(self, root: Path):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._by_revision: dict[str, Path] = {}

    def path_for(self, revision: str) -> Path | None:
        """The extracted tree of an artifact revision (``main@sha1:<sha>``), if stored."""
        return self._by_revision.get(revision)

    def store(self, repo: Path, revision: str, sha: str) -> Path:
        if revision in self._by_revision:
            return self._by_revision[revision]
        dest = self.root / sha
        if not dest.is_dir():
            tmp = self.root / f".{sha}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            data = _archive(repo, sha)
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                tar.extractall(tmp, filter="data")
            tmp.rename(dest)
        self._by_revision[revision] = dest
        return dest

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _archive(repo: Path, sha: str) -> bytes:
    proc = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", sha],
                          capture_output=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise GitError(proc.stderr.decode(errors="replace").strip())
    return proc.stdout


def _ref(spec: Mapping[str, Any]) -> tuple[str, str]:
    """(git rev to resolve, revision prefix) for ``spec.ref``."""
    ref = spec.get("ref") or {}
    if ref.get("commit"):
        return ref["commit"], ref.get("branch") or "HEAD"
    if ref.get("tag"):
        return f"refs/tags/{ref['tag']}", ref["tag"]
    branch = ref.get("branch") or "master"
    return f"refs/heads/{branch}", branch


class GitRepositoryReconciler:
    component = "source-controller"
    owns = ((SOURCE_GROUP, "GitRepository"),)
    watches = (("apps", "Deployment"),)

    def __init__(self, runtime: Runtime, url_map: Mapping[str, str], artifacts: ArtifactStore):
        self.rt, self.url_map, self.artifacts = runtime, url_map, artifacts
        self._fetched: set[tuple[Key, Any]] = set()

    def forget(self, key: Key) -> None:
        self._fetched = {f for f in self._fetched if f[0] != key}

    async def reconcile(self, obj: dict[str, Any]) -> Result:
        if (gate := flux_gate(self.rt, self.component, obj)) is not None:
            return gate
        spec, meta = obj.get("spec") or {}, obj["metadata"]
        key, gen = key_of(obj), int(meta.get("generation") or 1)
        token = ("fetch", gen, (meta.get("annotations") or {}).get("reconcile.fluxcd.io/requestedAt"))
        # The scenario's delay plays the first clone of a generation; later polls are instant.
        delay = 0.0 if (key, token) in self._fetched else self.rt.scenario.delay(
            "GitRepository", meta.get("namespace"), meta["name"], self.rt.scenario.defaults.git_repository)
        status = status_copy(obj)
        advertised = (status.get("artifact") or {}).get("revision")
        if advertised and self.artifacts.path_for(advertised) is None:
            # The status names an artifact this controller's storage does not hold: the
            # controller restarted (its storage is an emptyDir) or the datastore was restored.
            # Like source-controller's reconcileStorage, stop advertising it and build it again;
            # the new artifact's status change is what wakes the Kustomizations using it.
            status.pop("artifact", None)
            flux_progressing(status, gen, "building artifact: disappeared from storage")
            self.rt.write_status(obj, status)
        left = self.rt.remaining(key, token, delay)
        if left > 0:
            if not status.get("artifact"):
                if not any(c.get("type") == "Reconciling" for c in status.get("conditions") or []):
                    flux_progressing(status, gen, "building artifact: new upstream revision")
                    self.rt.write_status(obj, status)
            return Result(requeue_after=left)
        url = str(spec.get("url") or "")
        poll = min(parse_duration(spec.get("interval"), MAX_POLL), MAX_POLL)
        repo = resolve_repo(self.url_map, url) if url else None
        rev, prefix = _ref(spec)
        if repo is None or not (repo / ".git").exists() and not (repo / "HEAD").exists():
            return self._fail(obj, status, gen, "GitOperationFailed",
                              f"failed to checkout and determine revision: unable to clone '{url}': "
                              "repository not found")
        try:
            sha = (await asyncio.to_thread(git, repo, "rev-parse", "--verify", f"{rev}^{{commit}}")).strip()
        except GitError:
            return self._fail(obj, status, gen, "GitOperationFailed",
                              f"failed to checkout and determine revision: unable to clone '{url}': "
                              f"couldn't find remote ref \"{rev}\"")
        revision = f"{prefix}@sha1:{sha}"
        try:
            await asyncio.to_thread(self.artifacts.store, repo, revision, sha)
        except (GitError, OSError, tarfile.TarError) as exc:
            return self._fail(obj, status, gen, "StorageOperationFailed", f"failed to store artifact: {exc}")
        old_revision = (status.get("artifact") or {}).get("revision")
        ns, name = meta.get("namespace"), meta["name"]
        status["artifact"] = {
            "path": f"gitrepository/{ns}/{name}/{sha}.tar.gz",
            "url": f"http://source-controller.flux-system.svc.cluster.local./gitrepository/{ns}/{name}/{sha}.tar.gz",
            "revision": revision,
            "digest": "sha256:" + hashlib.sha256(revision.encode()).hexdigest(),
            "lastUpdateTime": (status.get("artifact") or {}).get("lastUpdateTime") if old_revision == revision
            else now_rfc3339(),
            "size": 1024,
        }
        flux_ready(status, gen, "Succeeded", f"stored artifact for revision '{revision}'")
        self.rt.write_status(obj, status)
        if old_revision != revision:
            subject = await asyncio.to_thread(git, repo, "log", "-1", "--format=%s", sha)
            self.rt.emit(obj, "NewArtifact", f"stored artifact for commit '{subject.strip()}'", self.component)
        self._fetched.add((key, token))
        # Poll the branch like source-controller does every spec.interval.
        return Result(requeue_after=poll)

    def _fail(self, obj: dict[str, Any], status: dict[str, Any], gen: int, reason: str, message: str) -> Result:
        before = (status.get("conditions") or [])
        flux_not_ready(status, gen, reason, message)
        written = self.rt.write_status(obj, status)
        if written is not None and before != status.get("conditions"):
            self.rt.emit(obj, reason, message, self.component, "Warning")
        return Result(requeue_after=self.rt.scenario.defaults.retry_interval * 4)


class SimpleSourceReconciler(StatelessReconciler):
    """HelmRepository, OCIRepository, HelmChart, Bucket: Ready after the scenario's delay."""

    component = "source-controller"
    owns = ((SOURCE_GROUP, "HelmRepository"), (SOURCE_GROUP, "OCIRepository"),
            (SOURCE_GROUP, "HelmChart"), (SOURCE_GROUP, "Bucket"))
    watches = (("apps", "Deployment"),)

    async def reconcile(self, obj: dict[str, Any]) -> Result:
        if (gate := flux_gate(self.rt, self.component, obj)) is not None:
            return gate
        spec, meta = obj.get("spec") or {}, obj["metadata"]
        key, gen = key_of(obj), int(meta.get("generation") or 1)
        status = status_copy(obj)
        if int(status.get("observedGeneration") or 0) == gen and status.get("artifact"):
            return DONE
        delay = self.rt.scenario.delay(obj["kind"], meta.get("namespace"), meta["name"],
                                       self.rt.scenario.defaults.helm_repository)
        left = self.rt.remaining(key, ("fetch", gen), delay)
        if left > 0:
            return Result(requeue_after=left)
        source = str(spec.get("url") or spec.get("chart") or meta["name"])
        digest = hashlib.sha256(f"{source}@{gen}".encode()).hexdigest()
        ns, name = meta.get("namespace"), meta["name"]
        kind_path = obj["kind"].lower()
        if obj["kind"] == "HelmRepository" and spec.get("type") == "oci":
            # OCI HelmRepositories have no index and no artifact in real Flux: Ready is enough.
            flux_ready(status, gen, "Succeeded", "Helm repository is Ready")
            status["url"] = source
            status["artifact"] = {"revision": "oci", "digest": f"sha256:{digest}"}
        else:
            revision = f"sha256:{digest}"
            status["artifact"] = {
                "path": f"{kind_path}/{ns}/{name}/index-{digest[:16]}.yaml",
                "url": f"http://source-controller.flux-system.svc.cluster.local./{kind_path}/{ns}/{name}/"
                       f"index-{digest[:16]}.yaml",
                "revision": revision, "digest": revision, "lastUpdateTime": now_rfc3339(), "size": 4096,
            }
            status["url"] = status["artifact"]["url"]
            flux_ready(status, gen, "Succeeded", f"stored artifact: revision '{revision}'")
        self.rt.write_status(obj, status)
        self.rt.emit(obj, "NewArtifact", f"stored fetched index of size 4.1kB from '{source}'"
                     if obj["kind"] == "HelmRepository" else "stored artifact", self.component)
        return DONE
