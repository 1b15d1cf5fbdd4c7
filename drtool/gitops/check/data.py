"""Finding 6: data the wipe destroys, or that drtool does not protect.

K3s's uninstall removes the data dir whole (k3s-io/k3s install.sh ``create_uninstall``), and the
local-path provisioner K3s deploys keeps volumes under ``<data-dir>/storage`` unless the server
runs with ``--default-local-storage-path`` (k3s-io/k3s pkg/cli/server/server.go, read at commit
005499a: ``DefaultLocalStoragePath = filepath.Join(dataDir, "/storage")``; ``--disable`` values are
comma-separated, so ``--disable local-storage`` removes the class; manifests/local-storage.yaml
uses it as the ``DEFAULT_PATH_FOR_NON_LISTED_NODES`` path). ``local-path`` is K3s's default
StorageClass, so a PVC without ``storageClassName`` lands there too.
"""
from __future__ import annotations

from typing import Any

from drtool.gitops.check.findings import CheckResult, Finding
from drtool.gitops.check.live import LiveSnapshot
from drtool.gitops.check.repo import Repo, ref
from drtool.inventory import Inventory

LOCAL_PATH_CLASS = "local-path"


def storage_dir(inv: Inventory) -> str:
    args = list(inv.k3s.server_args)
    for i, arg in enumerate(args):
        if arg.startswith("--default-local-storage-path="):
            return arg.split("=", 1)[1].rstrip("/")
        if arg == "--default-local-storage-path" and i + 1 < len(args):
            return args[i + 1].rstrip("/")
    return inv.k3s.data_dir.rstrip("/") + "/storage"


def _under(path: str, base: str) -> bool:
    path, base = path.rstrip("/"), base.rstrip("/")
    return path == base or path.startswith(base + "/")


def _local_path_enabled(inv: Inventory) -> bool:
    args = list(inv.k3s.server_args)
    for i, arg in enumerate(args):
        value = arg.split("=", 1)[1] if arg.startswith("--disable=") else \
            args[i + 1] if arg == "--disable" and i + 1 < len(args) else ""
        if "local-storage" in value.split(","):
            return False
    return True


def _pv_path(pv: dict[str, Any]) -> str:
    spec = pv.get("spec") or {}
    return str((spec.get("local") or {}).get("path") or (spec.get("hostPath") or {}).get("path") or "")


def _pv_nodes(pv: dict[str, Any]) -> list[str]:
    terms = ((((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}).get("nodeSelectorTerms") or [])
    out = []
    for t in terms:
        for e in (t or {}).get("matchExpressions") or []:
            if isinstance(e, dict) and e.get("key") == "kubernetes.io/hostname" and e.get("operator") == "In":
                out += [str(v) for v in e.get("values") or []]
    return out


def _protected_for(inv: Inventory, nodes: list[str]) -> list[str]:
    # Pinned to names no node has (a node-reference finding already): judge against every node.
    wanted = [n for n in inv.nodes if n.name in nodes] or list(inv.nodes)
    return [p for n in wanted for p in n.protected_paths]


def check_data(repo: Repo, inv: Inventory, live: LiveSnapshot | None, result: CheckResult) -> None:
    archived = inv.backup.archive_volumes
    storage = storage_dir(inv)
    data_dir = inv.k3s.data_dir
    local_path = _local_path_enabled(inv)
    for ks, b in repo.objects():
        obj, file = b.obj, ks.file_of(b)
        kind = obj.get("kind")
        if kind == "PersistentVolume":
            _pv(obj, inv, data_dir, archived, result, ks.key, file, live=False)
        claims: list[tuple[str, dict[str, Any]]] = []
        if kind == "PersistentVolumeClaim":
            claims.append((ref(obj), obj.get("spec") or {}))
        elif kind == "StatefulSet":
            for t in (obj.get("spec") or {}).get("volumeClaimTemplates") or []:
                if isinstance(t, dict):
                    claims.append((f"{ref(obj)} volumeClaimTemplate {(t.get('metadata') or {}).get('name')}",
                                   t.get("spec") or {}))
        for subject, spec in claims:
            cls = spec.get("storageClassName")
            if archived or not local_path or spec.get("volumeName") or (cls is not None and cls != LOCAL_PATH_CLASS):
                continue
            result.add(Finding(
                "data", "warning", subject,
                f"{subject} uses the {LOCAL_PATH_CLASS} StorageClass (K3s's default), whose volumes live under "
                f"{storage}: the wipe deletes their data and no backup setting archives it",
                "set backup.archive_volumes: true in the inventory, or bind the claim to a PersistentVolume "
                "under a protected path",
                kustomization=ks.key, file=file))
    if live is None:
        return
    claimed = {(c.get("spec") or {}).get("volumeName"): c for c in live.of("PersistentVolumeClaim")}
    for pv in live.of("PersistentVolume"):
        name = (pv.get("metadata") or {}).get("name")
        path = _pv_path(pv)
        bound = (pv.get("status") or {}).get("phase") == "Bound" or name in claimed
        if path and bound and (_under(path, storage) or _under(path, data_dir)) and not archived:
            claim = ((pv.get("spec") or {}).get("claimRef") or {})
            result.add(Finding(
                "data", "blocker", f"PersistentVolume/{name}",
                f"PersistentVolume {name} (claim {claim.get('namespace', '?')}/{claim.get('name', '?')}) holds data "
                f"at {path}, under the K3s data dir the uninstall deletes, and no backup setting archives it",
                "set backup.archive_volumes: true in the inventory (drtool then archives local-path volumes "
                "before the wipe), or move the data under a protected path"))
        elif path:
            _pv(pv, inv, data_dir, archived, result, "", "", live=True)


def _pv(pv: dict[str, Any], inv: Inventory, data_dir: str, archived: bool, result: CheckResult,
        ks: str, file: str, *, live: bool) -> None:
    path = _pv_path(pv)
    if not path or "${" in path:
        return
    subject = f"PersistentVolume/{(pv.get('metadata') or {}).get('name')}"
    where = "in the live cluster" if live else "in Git"
    if _under(path, data_dir):
        if not archived and not live:
            result.add(Finding(
                "data", "warning", subject,
                f"{subject} ({where}) keeps its data at {path}, under the K3s data dir the uninstall deletes",
                "move the volume under a path outside the data dir and list it in the node's protected_paths, "
                "or set backup.archive_volumes: true",
                kustomization=ks, file=file))
        return
    protected = _protected_for(inv, _pv_nodes(pv))
    if not any(_under(path, p) for p in protected):
        nodes = ", ".join(_pv_nodes(pv)) or "any node"
        result.add(Finding(
            "data", "warning", subject,
            f"{subject} ({where}) keeps data at {path} on {nodes}, outside every protected path: drtool neither "
            "checks it before the wipe nor verifies it after",
            f"add {path} (or a parent) to protected_paths of the node(s) it is pinned to",
            kustomization=ks, file=file))
