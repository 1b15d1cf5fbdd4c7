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
import hashlib
import io
import json
import re
import sys
import tarfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from drtool.lab.k3s import proc
from drtool.lab.k3s.rootfs import RootFS

if TYPE_CHECKING:
    # pydantic (the scenario models) costs ~0.2 s to import: `k3s ctr`, which drtool's image
    # cache runs once per image, must not pay it; only preload (the K3s start) needs the costs.
    from drtool.lab.scenarios.costs import ImageCosts

STORE = "agent/containerd/lab-images.json"
PINNED = "agent/containerd/lab-images-pinned.json"
"""What K3s imported at start: it labels those ``io.cri-containerd.pinned=pinned`` (k3s
``pkg/agent/containerd/containerd.go`` labelImages), which ``ctr images ls`` filters on."""
PINNED_FILTER = 'labels."io.cri-containerd.pinned"==pinned'


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


def preload(fs: RootFS, data_dir: str, costs: ImageCosts | None = None, time_scale: float = 1.0) -> list[str]:
    """Import every archive in ``<data_dir>/agent/images`` by suffix, log as K3s does; returns the image names.

    With the scenario's cost model, each archive takes its import time (read and unpack at disk
    speed, ``ImageCosts.import_seconds``) played at ``time_scale``; the log line keeps the model's
    figure, in the form of k3s v1.31.4 pkg/agent/containerd/containerd.go preloadImages
    (``Imported images from %s in %s``)."""
    from drtool.lab.scenarios.costs import go_duration

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
        took = costs.import_seconds(tags) if costs is not None else 0.0
        if took > 0:
            time.sleep(took * time_scale)
        proc.info(f"Imported images from {data_dir}/agent/images/{path.name} in {go_duration(took)}")
        imported += tags
    try:
        known = json.loads(store.read_text())
    except (OSError, ValueError):
        known = []
    merged = sorted(set(known) | set(imported))
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_text(json.dumps(merged, indent=1))
    pinned = fs.path(f"{data_dir}/{PINNED}")
    pinned.write_text(json.dumps(sorted(set(_load(pinned)) | set(imported)), indent=1))
    return imported


def held(fs: RootFS, data_dir: str) -> list[str]:
    """The images the node's containerd holds (what its kubelet reports in ``Node.status.images``)."""
    return _load(fs.path(f"{data_dir}/{STORE}"))


def record_pulled(fs: RootFS, data_dir: str, refs: list[str]) -> list[str]:
    """Add images the node's kubelet pulled to its store (containerd keeps what it pulls);
    returns the ones that were new. Nothing is written while K3s never ran (no store yet)."""
    store = fs.path(f"{data_dir}/{STORE}")
    if not store.exists():
        return []
    known = _load(store)
    new = sorted(set(refs) - set(known))
    if new:
        store.write_text(json.dumps(sorted(set(known) | set(new)), indent=1))
    return new


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


# -- ``k3s ctr``: the subset the image cache uses ------------------------------------------
# containerd cmd/ctr (v1.7.23, the version K3s v1.31.4+k3s1 embeds): ``-n`` is a global flag
# before the command; ``images ls -q`` prints one name a line (commands/images/images.go
# listCommand); ``images export [--platform p]... <out> <ref>...`` creates ``<out>`` first, then
# writes an uncompressed OCI tar with a Docker ``manifest.json`` (commands/images/export.go) and
# fails on a name the store does not hold; ``images import <file>`` adds the archive's names.
# Only the CRI namespace (``k8s.io``) holds images on a K3s node.

_PLATFORM = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(/v[0-9]+)?$")


def _load(store: Path) -> list[str]:
    try:
        return list(json.loads(store.read_text()))
    except (OSError, ValueError):
        return []


def tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """Add ``data`` as ``name``: mode 0644, mtime 0, so the archive's bytes are reproducible."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def export_archive(refs: list[str], platform: str) -> bytes:
    """An OCI-layout tar naming ``refs`` (``index.json``, ``oci-layout``) plus a Docker ``manifest.json``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, data: bytes) -> None:
            tar_member(tar, name, data)
        os_name, _, arch = platform.partition("/")
        blobs, index, manifest = {}, [], []
        for ref in refs:
            config = json.dumps({"architecture": arch.split("/")[0], "os": os_name,
                                 "config": {"Labels": {"io.drtool.lab.image": ref}}}).encode()
            digest = hashlib.sha256(config).hexdigest()
            blobs[f"blobs/sha256/{digest}"] = config
            index.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": f"sha256:{digest}",
                          "size": len(config), "annotations": {"io.containerd.image.name": ref}})
            manifest.append({"Config": f"blobs/sha256/{digest}", "RepoTags": [ref], "Layers": []})
        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        for name, data in sorted(blobs.items()):
            add(name, data)
        add("index.json", json.dumps({"schemaVersion": 2, "manifests": index}).encode())
        add("manifest.json", json.dumps(manifest).encode())
    return buf.getvalue()


def ctr(argv: list[str], store: Path, fs: RootFS | None = None) -> int:
    """``k3s ctr [-n ns] images ls -q | export | import`` against the node's lab image store."""
    fs = fs or RootFS()
    ns = "default"
    while argv[:1] and argv[0].startswith("-"):
        flag, _, value = argv[0].partition("=")
        if flag in ("-n", "--namespace"):
            ns, argv = (value, argv[1:]) if value else (argv[1] if len(argv) > 1 else "", argv[2:])
        else:
            argv = argv[1:]
    if argv[:1] not in (["images"], ["image"], ["i"]) or len(argv) < 2:
        print("ctr: only `images ls|export|import` is modelled on lab nodes", file=sys.stderr)
        return 1
    if not store.exists():   # K3s never started here: no containerd socket to dial
        print("ctr: failed to dial \"/run/k3s/containerd/containerd.sock\": connection refused", file=sys.stderr)
        return 1
    held = _load(store) if ns == "k8s.io" else []
    cmd, rest = argv[1], argv[2:]
    if cmd in ("ls", "list"):
        quiet = "-q" in rest or "--quiet" in rest
        # Filters (containerd `filters` syntax, matched by metadata/adaptors.go adaptImage): the
        # pinned label and an exact name are modelled; the listing is their union, as ctr ORs them.
        filters = [a for a in rest if not a.startswith("-")]
        if filters:
            pinned = set(_load(store.with_name(Path(PINNED).name))) if ns == "k8s.io" else set()
            chosen: set[str] = set()
            for f in filters:
                if f == PINNED_FILTER:
                    chosen |= pinned
                elif f.startswith("name=="):
                    chosen.add(f[len("name=="):])
                else:
                    print(f"ctr: failed to list images: filter {f!r} is not modelled on lab nodes", file=sys.stderr)
                    return 1
            held = [ref for ref in held if ref in chosen]
        print("\n".join(held) if quiet else crictl_images(store) if held else "REF TYPE DIGEST SIZE PLATFORMS LABELS")
        return 0
    if cmd == "export":
        platforms, args = [], []
        i = 0
        while i < len(rest):
            if rest[i] == "--platform" and i + 1 < len(rest):
                platforms.append(rest[i + 1])
                i += 2
                continue
            if rest[i].startswith("--platform="):
                platforms.append(rest[i].split("=", 1)[1])
            elif not rest[i].startswith("-"):
                args.append(rest[i])
            i += 1
        if len(args) < 2:
            print("ctr: please provide both an output filename and an image reference to export", file=sys.stderr)
            return 1
        for p in platforms:
            if not _PLATFORM.match(p):
                print(f"ctr: invalid platform \"{p}\"", file=sys.stderr)
                return 1
        out, refs = fs.path(args[0]), args[1:]
        out.write_bytes(b"")       # created before the export, as the real one does
        missing = [r for r in refs if r not in held]
        if missing:
            print(f"ctr: image \"{missing[0]}\": not found", file=sys.stderr)
            return 1
        out.write_bytes(export_archive(refs, platforms[0] if platforms else "linux/amd64"))
        return 0
    if cmd == "import" and rest:
        try:
            tags = import_file(fs.path(rest[-1]))
        except (ValueError, OSError) as exc:
            print(f"ctr: {exc}", file=sys.stderr)
            return 1
        if ns == "k8s.io":
            store.write_text(json.dumps(sorted(set(held) | set(tags)), indent=1))
        for tag in tags:
            print(f"unpacking {tag} (sha256:...)...done")
        return 0
    print(f"ctr: images {cmd}: not modelled on lab nodes", file=sys.stderr)
    return 1
