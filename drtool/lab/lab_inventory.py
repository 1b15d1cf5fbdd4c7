"""The inventory a lab rebuild uses: written by ``inv lab.up`` to ``<lab>/inventory.yaml``.

It is ``inventory/lab.yaml`` (the documented lab inventory) with what this lab actually
is: its nodes (names, addresses, roles), the lab's files, and the GitOps repository it
serves (``flux.path`` and ``expectations``). So ``inv lab.up --gitops PATH --path P`` followed
by ``inv rebuild -i .lab/inventory.yaml`` bootstraps P and waits for that repository's
Kustomizations, not the fixture's.

Node names may be an operator's own (``lab.up --names`` or ``--inventory``): PersistentVolumes
and nodeSelectors in real repositories pin them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from drtool.errors import BadInput

TEMPLATE = Path(__file__).resolve().parents[2] / "inventory" / "lab.yaml"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_FLUX_KS = ("kustomize.toolkit.fluxcd.io/",)


@dataclass(frozen=True)
class NodePlan:
    """One lab node as the operator's inventory describes it."""

    name: str
    role: str = "agent"
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[str, ...] = ()
    protected_paths: tuple[str, ...] = ()
    from_inventory: bool = False        # labels/taints/paths given (else the template's apply)


def parse_names(text: str, source: str = "--names") -> list[NodePlan]:
    """``"cp-1,worker-1"`` → nodes; the first is the server, as in a one-server cluster."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise BadInput("command line", source, "expected node names separated by commas")
    for n in names:
        if not _NAME.match(n):
            raise BadInput("command line", source, f"{n!r}: a node name must be a lowercase hostname label")
    if len(set(names)) != len(names):
        raise BadInput("command line", source, "node names repeat")
    return [NodePlan(n, "server" if i == 0 else "agent") for i, n in enumerate(names)]


def nodes_from_inventory(path: str | Path) -> list[NodePlan]:
    """The nodes (name, role, labels, taints, protected paths) of a drtool inventory file."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise BadInput(str(p), "", f"cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise BadInput(str(p), "", f"not valid YAML ({exc.__class__.__name__})") from None
    nodes = (data or {}).get("nodes") if isinstance(data, dict) else None
    if not isinstance(nodes, list) or not nodes:
        raise BadInput(str(p), "nodes", "expected a non-empty list of nodes")
    out: list[NodePlan] = []
    for i, n in enumerate(nodes):
        where = f"nodes[{i}]"
        if not isinstance(n, dict):
            raise BadInput(str(p), where, "expected a mapping")
        name = n.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise BadInput(str(p), f"{where}.name", "expected a lowercase hostname label")
        role = n.get("role", "agent")
        if role not in ("server", "agent"):
            raise BadInput(str(p), f"{where}.role", "expected server or agent")
        labels = n.get("labels") or {}
        if not isinstance(labels, dict):
            raise BadInput(str(p), f"{where}.labels", "expected a mapping")
        out.append(NodePlan(name, role, {str(k): str(v) for k, v in labels.items()},
                            tuple(str(t) for t in n.get("taints") or ()),
                            tuple(str(x) for x in n.get("protected_paths") or ()), from_inventory=True))
    if [x.name for x in out if x.role == "server"][:1] != [out[0].name]:
        raise BadInput(str(p), "nodes[0].role", "the lab starts the first node as the (first) server")
    if len({x.name for x in out}) != len(out):
        raise BadInput(str(p), "nodes", "node names repeat")
    return out


def _flux_kustomizations(repo: Path, cluster_path: str) -> list[str]:
    """``ns/name`` (or ``name`` in flux-system) of every Flux Kustomization defined under the
    cluster path, which is what ``flux-system`` applies; its own ``flux-system`` first."""
    found = ["flux-system"]
    base = repo / cluster_path
    for f in sorted(base.rglob("*")):
        if f.suffix not in (".yaml", ".yml") or ".git" in f.parts:
            continue
        try:
            docs = list(yaml.safe_load_all(f.read_text()))
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            continue
        for d in docs:
            if not (isinstance(d, dict) and d.get("kind") == "Kustomization"
                    and str(d.get("apiVersion", "")).startswith(_FLUX_KS)):
                continue
            meta = d.get("metadata") or {}
            name, ns = meta.get("name"), meta.get("namespace") or "flux-system"
            ref = name if ns == "flux-system" else f"{ns}/{name}"
            if name and ref not in found:
                found.append(ref)
    return found


def build_inventory(root: Path, nodes: Sequence[Any], gitops: dict[str, Any],
                    plans: Sequence[NodePlan] | None = None, template: Path = TEMPLATE) -> dict[str, Any]:
    """The lab inventory as a mapping. ``nodes`` are the lab's NodeSpecs (name, address,
    ssh_port); ``plans`` the operator's roles/labels/taints (default: the first node is the
    server; with the fixture, the second carries the template's labels, taints and data)."""
    data = yaml.safe_load(template.read_text())
    fixture = not gitops.get("source")
    t_server, t_agent = data["nodes"][0], data["nodes"][1]
    by_name = {p.name: p for p in plans or ()}
    out_nodes = []
    for i, spec in enumerate(nodes):
        plan = by_name.get(spec.name)
        base = dict(t_server if (plan.role == "server" if plan else i == 0) else t_agent)
        given = plan is not None and plan.from_inventory
        if given or i > 1 or not fixture:
            # The template's heavy label and taint belong to the fixture's workloads.
            base = {k: v for k, v in base.items() if k not in ("labels", "taints", "protected_paths")}
            if i == 1 and not given:
                base["protected_paths"] = list(t_agent.get("protected_paths") or [])
        base.update(name=spec.name, host=spec.address, port=spec.ssh_port, ssh_key=str(root / "keys" / "id_ed25519"))
        if plan is not None:
            base["role"] = plan.role
        if given:
            if plan.labels:
                base["labels"] = dict(plan.labels)
            if plan.taints:
                base["taints"] = list(plan.taints)
            if plan.protected_paths:
                base["protected_paths"] = list(plan.protected_paths)
        out_nodes.append(base)
    data["nodes"] = out_nodes
    server = next(n for n in out_nodes if n["role"] == "server")
    data["cluster"]["api_endpoint"] = f"https://{server['host']}:6443"
    data["ssh"]["known_hosts"] = str(root / "known_hosts")
    data["k3s"]["install"] = {"method": "airgap", "script": str(root / "artifacts" / "install.sh"),
                              "binary": str(root / "artifacts" / "k3s"),
                              "images": str(root / "artifacts" / "k3s-airgap-images.tar")}
    data["flux"]["cli"] = str(root / "bin" / "flux")
    data["flux"]["git_config_file"] = str(root / "gitconfig")   # written by lab_up (drtool.lab.git_remote)
    if data.get("runs_dir"):
        # Relative to the template, not to this lab's folder: runs stay where the template keeps them.
        data["runs_dir"] = str((TEMPLATE.parent / data["runs_dir"]).resolve())
    data["flux"]["path"] = gitops["path"]
    data["flux"]["owner"] = gitops.get("owner", data["flux"]["owner"])
    data["flux"]["repository"] = gitops.get("repository", data["flux"]["repository"])
    data["flux"]["branch"] = gitops.get("branch", data["flux"]["branch"])
    data["flux"]["checkout"] = gitops["default"]  # the repo lab.up serves: what `inv gitops.check` reads
    for s in data.get("secrets") or []:
        if s.get("from_file"):
            s["from_file"] = str(root / "secrets" / Path(s["from_file"]).name)
    if not fixture:
        # The fixture's HelmReleases and Kustomizations are not this repository's.
        data["expectations"] = {"kustomizations": _flux_kustomizations(Path(gitops["default"]), gitops["path"])}
    return data


def write_inventory(root: Path, nodes: Sequence[Any], gitops: dict[str, Any],
                    plans: Sequence[NodePlan] | None = None) -> Path:
    """Write ``<root>/inventory.yaml`` and return its path."""
    data = build_inventory(root, nodes, gitops, plans)
    head = ("# Written by `inv lab.up` for this lab; rebuild it with `inv rebuild -i " + str(root / "inventory.yaml")
            + " --yes`.\n# Edit inventory/lab.yaml (the template) instead: this file is rewritten on every lab.up.\n")
    dest = root / "inventory.yaml"
    tmp = dest.with_suffix(".tmp")
    tmp.write_text(head + yaml.safe_dump(data, sort_keys=False))
    tmp.replace(dest)
    return dest
