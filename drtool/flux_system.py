"""What a repository's ``<path>/flux-system/`` declares, against what the next bootstrap would write.

``flux bootstrap`` regenerates ``gotk-components.yaml`` from its own flags and pushes it when it
differs (flux2 v2.4.0 pkg/bootstrap/bootstrap_plain_git.go ReconcileComponents), and rewrites
``gotk-sync.yaml`` (ReconcileSyncConfig); flux-system (``prune: true``) then deletes whatever the
new file leaves out: the image-automation controllers and their objects, tolerations that let the
controllers run on tainted nodes, the NetworkPolicies. An existing ``kustomization.yaml`` is
kept (pkg/manifestgen/kustomization Generate only writes one when it is missing), so patches in it
survive. Pure code: parse the files, list the differences with the inventory.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

import yaml

from drtool.inventory import FLUX_DEFAULT_COMPONENTS, Inventory

COMPONENTS_FILE = "gotk-components.yaml"
SYNC_FILE = "gotk-sync.yaml"
KUSTOMIZATION_FILE = "kustomization.yaml"


@dataclass(frozen=True)
class Declared:
    """The bootstrap options a gotk-components.yaml shows; None where the file does not say."""

    components: tuple[str, ...] | None = None
    toleration_keys: tuple[str, ...] | None = None
    network_policy: bool | None = None
    watch_all_namespaces: bool | None = None
    log_level: str | None = None
    cluster_domain: str | None = None
    registry: str | None = None
    image_pull_secret: str | None = None


def _docs(text: str) -> list[dict[str, Any]]:
    try:
        return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML: {str(exc).splitlines()[0]}") from None


def _arg(args: Iterable[str], flag: str) -> str | None:
    for a in args:
        if isinstance(a, str) and a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def parse_components(text: str) -> Declared:
    """Read the options back from gotk-components.yaml (flux2 v2.4.0 pkg/manifestgen/install:
    the ``# Components:`` header, NetworkPolicies when --network-policy, tolerations from
    --toleration-keys, the controllers' args and images). Raises ValueError for bad YAML."""
    header = re.search(r"^#\s*Components:\s*(.+)$", text, re.MULTILINE)
    docs = _docs(text)
    deployments = [d for d in docs if d.get("kind") == "Deployment"]
    names = tuple(c.strip() for c in header.group(1).split(",") if c.strip()) if header else \
        tuple(d["metadata"]["name"] for d in deployments if (d.get("metadata") or {}).get("name"))
    keys: set[str] = set()
    pull: set[str] = set()
    watch = level = domain = registry = None
    for d in deployments:
        pod = ((d.get("spec") or {}).get("template") or {}).get("spec") or {}
        keys |= {t.get("key") for t in pod.get("tolerations") or () if t.get("operator") == "Exists" and t.get("key")}
        pull |= {s.get("name") for s in pod.get("imagePullSecrets") or () if s.get("name")}
        for c in pod.get("containers") or ():
            args = c.get("args") or ()
            watch = watch or _arg(args, "--watch-all-namespaces")
            level = level or _arg(args, "--log-level")
            adv = _arg(args, "--storage-adv-addr")
            if adv and ".svc." in adv:
                domain = domain or adv.split(".svc.", 1)[1].rstrip(".")
            image = str(c.get("image") or "")
            name = (d.get("metadata") or {}).get("name", "")
            if name and f"/{name}:" in image:
                registry = registry or image.split(f"/{name}:", 1)[0]
    return Declared(
        components=names or None,
        toleration_keys=tuple(sorted(keys)) if deployments else None,
        network_policy=any(d.get("kind") == "NetworkPolicy" for d in docs) if deployments else None,
        watch_all_namespaces=None if watch is None else watch.lower() == "true",
        log_level=level, cluster_domain=domain, registry=registry,
        image_pull_secret=sorted(pull)[0] if pull else ("" if deployments else None),
    )


def component_differences(inv: Inventory, declared: Declared) -> list[str]:
    """One line per option the next bootstrap would change in the repository (empty: none)."""
    f = inv.flux
    out: list[str] = []

    def differ(field_name: str, repo: object, ours: object, effect: str) -> None:
        out.append(f"flux.{field_name}: the repository has {_show(repo)}, the inventory {_show(ours)} ({effect})")

    if declared.components is not None:
        ours = f.components + f.components_extra
        if set(declared.components) != set(ours):
            gone = [c for c in declared.components if c not in ours]
            effect = (f"bootstrap would remove {', '.join(gone)} and flux-system would prune them" if gone
                      else "bootstrap would add controllers the repository does not run")
            # Name the field an operator would edit: extras live in components_extra.
            changed = set(declared.components) ^ set(ours)
            name = "components" if changed <= set(FLUX_DEFAULT_COMPONENTS) else "components_extra"
            differ(name, ",".join(declared.components), ",".join(ours), effect)
    if declared.toleration_keys is not None and set(declared.toleration_keys) != set(f.toleration_keys):
        differ("toleration_keys", list(declared.toleration_keys), list(f.toleration_keys),
               "the controllers' tolerations would change")
    if declared.network_policy is not None and declared.network_policy != f.network_policy:
        differ("network_policy", declared.network_policy, f.network_policy,
               "bootstrap would " + ("remove" if declared.network_policy else "add") + " the NetworkPolicies")
    if declared.watch_all_namespaces is not None and declared.watch_all_namespaces != f.watch_all_namespaces:
        differ("watch_all_namespaces", declared.watch_all_namespaces, f.watch_all_namespaces,
               "the controllers' --watch-all-namespaces would change")
    if declared.log_level is not None and declared.log_level != f.log_level:
        differ("log_level", declared.log_level, f.log_level, "the controllers' --log-level would change")
    if declared.cluster_domain is not None and declared.cluster_domain != f.cluster_domain:
        differ("cluster_domain", declared.cluster_domain, f.cluster_domain, "source-controller's address would change")
    if declared.registry is not None and declared.registry != f.registry:
        differ("registry", declared.registry, f.registry, "the controller images would change")
    if declared.image_pull_secret is not None and declared.image_pull_secret != (f.image_pull_secret or ""):
        differ("image_pull_secret", declared.image_pull_secret or None, f.image_pull_secret,
               "the controllers' imagePullSecrets would change")
    return out


def sync_differences(inv: Inventory, text: str) -> list[str]:
    """Branch and path of gotk-sync.yaml against the inventory (flux2 v2.4.0 pkg/manifestgen/sync)."""
    out = []
    for d in _docs(text):
        spec = d.get("spec") or {}
        if d.get("kind") == "GitRepository" and (d.get("metadata") or {}).get("name") == "flux-system":
            branch = (spec.get("ref") or {}).get("branch")
            if branch and branch != inv.flux.branch:
                out.append(f"flux.branch: gotk-sync.yaml syncs branch {branch}, the inventory {inv.flux.branch}")
        if d.get("kind") == "Kustomization" and (d.get("metadata") or {}).get("name") == "flux-system":
            path = str(spec.get("path") or "").removeprefix("./").strip("/")
            if path and path != inv.flux.path.removeprefix("./").strip("/"):
                out.append(f"flux.path: gotk-sync.yaml syncs path ./{path}, the inventory {inv.flux.path}")
    return out


def kustomization_patches(text: str) -> int:
    """How many patches flux-system/kustomization.yaml carries (bootstrap keeps them)."""
    docs = _docs(text)
    return sum(len(d.get("patches") or ()) + len(d.get("patchesStrategicMerge") or ()) +
               len(d.get("patchesJson6902") or ()) for d in docs)


def _show(value: object) -> str:
    if value is None or value == "" or value == []:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)
