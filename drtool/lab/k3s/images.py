"""Image archives K3s imports at start from ``<data-dir>/agent/images/``, chosen by file suffix.

Follows k3s-io/k3s ``pkg/agent/containerd/containerd.go`` ``preloadFile`` (the same rule lives in
``watcher.go`` and rancher/wharfie ``pkg/tarfile`` from v1.29 on, so v1.31.4+k3s1 too): the
decompressor comes from the name, never from the content. ``.tar`` is read as it is, ``.tar.gz``/
``.tgz`` through gzip, ``.tar.bz2``/``.tbz`` through bzip2, ``.tar.zst``/``.tzst`` through zstd,
``.tar.lz4`` through lz4; ``.txt`` lists images to pre-pull; anything else is skipped. A
compressed archive uploaded under a ``.tar`` name fails to import ("Error encountered while
importing ...") and K3s carries on without those images. The lab keeps what it imported in
``<data-dir>/agent/containerd/lab-images.json``, which ``k3s crictl images`` lists.
"""
from __future__ import annotations

import bz2
import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Callable

from drtool.lab.k3s import proc
from drtool.lab.k3s.rootfs import RootFS

STORE = "agent/containerd/lab-images.json"


def _zstd(data: bytes) -> bytes:
    try:
        import zstandard  # optional: the lab's own artifacts are plain .tar
    except ImportError as exc:
        raise ValueError("zstd decoder not available in the lab") from exc
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()


# (suffixes, decompressor) in the order preloadFile tests them.
_DECODERS: tuple[tuple[tuple[str, ...], Callable[[bytes], bytes]], ...] = (
    ((".tar",), lambda b: b),
    ((".tar.bz2", ".tbz"), bz2.decompress),
    ((".tar.gz", ".tgz"), gzip.decompress),
    ((".tar.zst", ".tzst"), _zstd),
)
SUPPORTED = tuple(s for suffixes, _ in _DECODERS for s in suffixes) + (".tar.lz4",)


def _repo_tags(archive: bytes) -> list[str]:
    """RepoTags of a docker-save archive (``manifest.json``); raises ValueError when it is no tar."""
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
            member = tar.extractfile("manifest.json")
            manifest = json.loads(member.read()) if member else []
    except (tarfile.TarError, KeyError, ValueError, OSError) as exc:
        raise ValueError(f"unexpected archive content: {exc}") from None
    return [tag for entry in manifest for tag in entry.get("RepoTags") or []]


def import_file(path: Path) -> list[str]:
    """Images imported from one file; raises ValueError as K3s's import would fail."""
    name = path.name.lower()
    for suffixes, decode in _DECODERS:
        if name.endswith(suffixes):
            data = path.read_bytes()
            try:
                plain = decode(data)
            except (OSError, EOFError, ValueError) as exc:
                raise ValueError(str(exc)) from None
            return _repo_tags(plain)
    if name.endswith(".tar.lz4"):
        raise ValueError("lz4 archives are not modelled by the lab")
    raise ValueError("unhandled file type")


def preload(fs: RootFS, data_dir: str) -> list[str]:
    """Import every archive in ``<data_dir>/agent/images`` by suffix, log as K3s does; returns the image names."""
    images_dir, store = fs.path(f"{data_dir}/agent/images"), fs.path(f"{data_dir}/{STORE}")
    if not images_dir.is_dir():
        return []
    imported: list[str] = []
    for path in sorted(images_dir.iterdir()):
        if path.is_dir() or path.name.lower().endswith(".txt"):
            continue   # .txt lists images to pull from a registry: the lab has none
        try:
            tags = import_file(path)
        except (ValueError, OSError) as exc:
            proc.error(f"Error encountered while importing {data_dir}/agent/images/{path.name}: {exc}")
            continue
        proc.info(f"Imported images from {data_dir}/agent/images/{path.name}")
        imported += tags
    try:
        known = json.loads(store.read_text())
    except (OSError, ValueError):
        known = []
    merged = sorted(set(known) | set(imported))
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_text(json.dumps(merged, indent=1))
    return imported


def crictl_images(store: Path) -> str:
    """``crictl images``: one line per imported image, as the real table's first columns."""
    try:
        names = json.loads(store.read_text())
    except (OSError, ValueError):
        names = []
    lines = [f"{'IMAGE':<60} {'TAG':<28}"]
    for ref in names:
        repo, _, tag = ref.rpartition(":")
        lines.append(f"{repo:<60} {tag:<28}")
    return "\n".join(lines)
