"""Keep a node's container images across the wipe: export before, give back to K3s after.

The uninstall deletes ``<data-dir>`` whole, and with it containerd's image store
(``<data-dir>/agent/containerd``), so every image is pulled again after a rebuild. Before the
wipe each node exports the named images of its CRI namespace (``k8s.io``: what its pods pulled,
and the imported system images) one archive per image into ``images.cache_dir`` (0700, outside
every wiped dir), at most ``images.max_bytes`` in all, with a SHA-256 manifest.

Facts followed:

- ``ctr images ls -q`` prints one image name a line (containerd ``cmd/ctr/commands/images/
  images.go`` listCommand, v1.7.23, the containerd K3s v1.31.4+k3s1 embeds); the CRI also
  records ``<repo>@sha256:`` and bare ``sha256:<id>`` names for the same image, which are skipped
  (the tagged name carries the content).
- ``ctr images export [--platform p] <out> <ref>...`` writes an uncompressed OCI tar with a Docker
  ``manifest.json`` (``cmd/ctr/commands/images/export.go``, v1.7.23); without ``--platform`` the
  local export keeps ``platforms.DefaultStrict()``; it names the node's own platform explicitly so
  the archive matches what the node runs. It creates ``<out>`` before exporting, so a failed export
  (disk full, image gone) leaves a partial file: removed here.
- K3s imports every file in ``<data-dir>/agent/images/`` when its containerd starts, choosing the
  decompressor by the name's suffix (``.tar`` read as is; k3s-io/k3s ``pkg/agent/containerd/
  containerd.go`` preloadFile, v1.31.4+k3s1). The install starts K3s, so the archives are placed
  there (a hard link, a copy across file systems) before the install script runs. The import
  walks all platforms but skips missing content (``containerd.WithAllPlatforms(true),
  containerd.WithSkipMissing()`` in preloadFile, the version with ``watcher.go`` and wharfie's
  ``tarfile.GetOpener``), so a one-platform export of a multi-platform image imports; it then
  tags each name with ``docker.ParseNormalizedNamed`` and needs a tag (``parseNamedTagged``), one
  more reason to export tagged names only. K3s pins what it imports (``labelImages``:
  ``io.cri-containerd.pinned``), so kubelet's image GC leaves these images alone.
- Which images: when the old cluster still answers, only those the node's pods use (their
  ``spec`` and ``status`` images, normalized as ``docker.ParseNormalizedNamed`` does: distribution/
  reference v0.6.0 ``normalize.go``) and the pinned ones (``ctr images ls -q
  'labels."io.cri-containerd.pinned"==pinned'``: the images K3s imported and the sandbox image,
  which containerd's CRI pins, ``pkg/cri/sbserver/image_pull.go`` getLabels, v1.7.23); images of
  old pods that the store still holds are left out (``unused``). When the API does not answer,
  every tagged image is kept, as nothing tells which are in use.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from drtool.inventory import Inventory
from drtool.remote.runner import q

MANIFEST = "manifest.tsv"
"""``<sha256>\\t<bytes>\\t<file>\\t<ref>`` per kept archive, in the cache dir."""
PREFIX = "drtool-cache-"
"""Name prefix of the archives placed in ``<data-dir>/agent/images/``."""
MARK = "drtool-images:"


PINNED_FILTER = 'labels."io.cri-containerd.pinned"==pinned'
DEFAULT_DOMAIN = "docker.io"


def normalized(image: str) -> str:
    """An image reference as containerd names it: ``nginx`` -> ``docker.io/library/nginx:latest``.

    distribution/reference v0.6.0 ``normalize.go``: the part before the first ``/`` is a registry
    only when it holds a ``.`` or ``:``, is ``localhost``, or has upper case letters; otherwise the
    name is on docker.io, under ``library/`` when it has one component; no tag and no digest means
    ``:latest``. A ``name:tag@digest`` keeps its tag (the tagged name is what gets exported)."""
    name, _, digest = image.partition("@")
    first, sep, rest = name.partition("/")
    if not sep or (not any(c in first for c in ".:") and first != "localhost" and first.lower() == first):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = ("docker.io" if first == "index.docker.io" else first), rest
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = f"library/{remainder}"
    tagged = ":" in remainder.rsplit("/", 1)[-1]
    if not tagged and not digest:
        remainder += ":latest"
    if tagged or not digest:
        return f"{domain}/{remainder}"
    return f"{domain}/{remainder}@{digest}"


def images_in_use(pods: Mapping) -> dict[str, list[str]]:
    """Node name -> the normalized images its pods use, from a ``PodList`` (all namespaces)."""
    by_node: dict[str, set[str]] = {}
    for pod in pods.get("items") or ():
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        node = spec.get("nodeName")
        if not node:
            continue   # not scheduled: it pulled nothing yet
        refs = [c.get("image") for key in ("initContainers", "containers", "ephemeralContainers")
                for c in spec.get(key) or ()]
        refs += [c.get("image") for key in ("initContainerStatuses", "containerStatuses")
                 for c in status.get(key) or ()]
        by_node.setdefault(node, set()).update(normalized(r) for r in refs if isinstance(r, str) and r)
    return {node: sorted(refs) for node, refs in by_node.items()}


def images_dir(inv: Inventory) -> str:
    return f"{inv.k3s.data_dir.rstrip('/')}/agent/images"


def export_command(inv: Inventory, in_use: Iterable[str] | None = None) -> str:
    """Export the node's named images into the cache; one ``drtool-images: ...`` line per outcome.

    ``in_use``: the images the node's pods use (None when the old cluster did not say): only
    those and the pinned images are kept, the rest are reported ``unused``.
    Never fails the backup: a node without K3s, a containerd that does not answer or a short disk
    end with ``skip``/``short`` lines (exit 0), and those images are pulled after the rebuild."""
    img = inv.images
    select = ""
    if in_use is not None:
        # Names between spaces (a reference holds none), so a `case` pattern matches whole names.
        wanted = " ".join(sorted({ref for ref in in_use if ref and not any(c.isspace() for c in ref)}))
        select = (
            f"pinned=$(k3s ctr -n k8s.io images ls -q {q(PINNED_FILTER)} 2>/dev/null | tr '\\n' ' '); "
            f"want=\" \"{q(wanted)}\" $pinned \"; "
        )
    return (
        f"dir={q(img.cache_dir)}; max={int(img.max_bytes)}; minfree={int(img.min_free_bytes)}; "
        f"command -v k3s >/dev/null 2>&1 || {{ echo '{MARK} skip k3s is not installed'; exit 0; }}; "
        "case \"$(uname -m)\" in x86_64|amd64) plat=linux/amd64;; aarch64|arm64) plat=linux/arm64;; "
        "armv7*) plat=linux/arm/v7;; s390x) plat=linux/s390x;; ppc64le) plat=linux/ppc64le;; *) plat=;; esac; "
        f"refs=$(k3s ctr -n k8s.io images ls -q 2>/dev/null) || {{ echo '{MARK} skip containerd is not answering'; exit 0; }}; "
        f"{select}"
        "umask 077; "
        f"mkdir -p \"$dir\" && chmod 0700 \"$dir\" || {{ echo \"{MARK} skip cannot create $dir\"; exit 0; }}; "
        f"rm -f \"$dir\"/*.tar \"$dir\"/{MANIFEST} \"$dir\"/.partial; : > \"$dir\"/{MANIFEST}; "
        "set -f; total=0; n=0; full=; "
        "for ref in $refs; do "
        "case \"$ref\" in sha256:*|*@sha256:*) continue;; esac; "
        + (f"case \"$want\" in *\" $ref \"*) ;; *) echo \"{MARK} unused $ref\"; continue;; esac; "
           if in_use is not None else "") +
        f"if [ -n \"$full\" ]; then echo \"{MARK} short $ref\"; continue; fi; "
        "free=$(df -P -k \"$dir\" | awk 'NR==2 {print $4}'); case \"$free\" in ''|*[!0-9]*) free=0;; esac; "
        f"if [ $((free * 1024)) -lt \"$minfree\" ]; then full=1; echo \"{MARK} short $ref\"; continue; fi; "
        "if k3s ctr -n k8s.io images export ${plat:+--platform \"$plat\"} \"$dir\"/.partial \"$ref\" >/dev/null 2>&1; then "
        "size=$(stat -c %s \"$dir\"/.partial); "
        f"if [ $((total + size)) -gt \"$max\" ]; then rm -f \"$dir\"/.partial; echo \"{MARK} over $size $ref\"; continue; fi; "
        "n=$((n + 1)); f=$(printf 'img-%04d.tar' \"$n\"); mv \"$dir\"/.partial \"$dir/$f\"; "
        "sum=$(sha256sum \"$dir/$f\" | cut -d' ' -f1); "
        f"printf '%s\\t%s\\t%s\\t%s\\n' \"$sum\" \"$size\" \"$f\" \"$ref\" >> \"$dir\"/{MANIFEST}; "
        f"total=$((total + size)); echo \"{MARK} kept $size $ref\"; "
        f"else rm -f \"$dir\"/.partial; echo \"{MARK} failed $ref\"; fi; "
        "done"
    )


def give_back_command(inv: Inventory) -> str:
    """Check each kept archive against the manifest and place the good ones where K3s imports
    them at start; a corrupt or missing one is reported (``corrupt``) and left to be pulled."""
    return (
        f"dir={q(inv.images.cache_dir)}; images={q(images_dir(inv))}; "
        f"[ -s \"$dir\"/{MANIFEST} ] || {{ echo '{MARK} none'; exit 0; }}; "
        f"mkdir -p \"$images\" || {{ echo '{MARK} skip cannot create the images dir'; exit 0; }}; "
        "tab=$(printf '\\t'); "
        "while IFS=\"$tab\" read -r sum size f ref; do "
        "case \"$f\" in ''|*/*|.*) continue;; esac; "
        "got=$(sha256sum \"$dir/$f\" 2>/dev/null | cut -d' ' -f1); "
        f"if [ \"$got\" != \"$sum\" ]; then echo \"{MARK} corrupt $size $ref\"; continue; fi; "
        f"dst=\"$images\"/{PREFIX}\"$f\"; "
        f"if ln -f \"$dir/$f\" \"$dst\" 2>/dev/null || cp \"$dir/$f\" \"$dst\"; then echo \"{MARK} reused $size $ref\"; "
        f"else rm -f \"$dst\"; echo \"{MARK} failed $size $ref\"; fi; "
        f"done < \"$dir\"/{MANIFEST}"
    )


@dataclass
class Outcome:
    """What one node's export or give-back said, by kind: ``kept``/``reused`` etc. -> [(bytes, ref)]."""

    lines: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def refs(self, kind: str) -> list[str]:
        return [ref for _, ref in self.lines.get(kind, [])]

    def count(self, kind: str) -> int:
        return len(self.lines.get(kind, []))

    def bytes(self, kind: str) -> int:
        return sum(b for b, _ in self.lines.get(kind, []))


def parse(stdout: str) -> Outcome:
    """The ``drtool-images:`` lines of :func:`export_command` or :func:`give_back_command`."""
    out = Outcome()
    for line in stdout.splitlines():
        if not line.startswith(MARK + " "):
            continue
        kind, _, rest = line[len(MARK) + 1:].partition(" ")
        if kind in ("skip", "none"):
            out.notes.append(rest or kind)
            continue
        size, _, ref = rest.partition(" ")
        if not size.isdigit():     # ``short <ref>``, ``failed <ref>``: no size
            size, ref = "0", rest
        out.lines.setdefault(kind, []).append((int(size), ref))
    return out


def human_bytes(n: int) -> str:
    value, unit = float(n), "B"
    for next_unit in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, next_unit
    return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
