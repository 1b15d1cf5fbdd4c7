"""Bring the whole lab up: nodes, the K3s "release artifacts", the flux CLI, the GitOps remote.

This composes the lab's parts for ``inv lab.up`` and the test fixtures. None of
it is used by drtool's rebuild code, which only sees SSH, files and the API.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path

from drtool.lab.nodes import Lab, LabState

DEFAULT_SCENARIO = "homelab"


def scenario_path(name_or_path: str | None) -> Path:
    """A scenario by name (shipped in drtool/lab/scenarios/) or by path."""
    name = name_or_path or DEFAULT_SCENARIO
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p.resolve()
    shipped = Path(__file__).parent / "scenarios" / f"{name}.yaml"
    if not shipped.exists():
        from drtool.errors import BadInput

        names = sorted(x.stem for x in shipped.parent.glob("*.yaml"))
        raise BadInput("command line", "--scenario", f"no scenario {name!r}; shipped: {', '.join(names)}")
    return shipped


def _age_key(path: Path) -> None:
    """A stand-in SOPS age key (the lab only checks that the Secret exists)."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    body = base64.b32encode(secrets.token_bytes(32)).decode().rstrip("=")
    text = f"# created: by drtool lab\n# public key: age1lab{body[:50].lower()}\nAGE-SECRET-KEY-1{body}\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def seed_protected_data(lab: Lab) -> None:
    """The second node (node2) keeps the users' data outside K3s's dirs, as in the reference homelab (once)."""
    names = [n.name for n in lab.nodes]
    if len(names) < 2:
        return
    base = lab.node_dir(names[1]) / "mnt" / "k8s-storage"
    if base.exists():
        return
    for rel, size in (("loki/chunks/0001", 8192), ("models/llama-3.2-1b.gguf", 16384), ("grafana/grafana.db", 4096)):
        f = base / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(secrets.token_bytes(size))


def update_lab_json(lab: Lab, **keys) -> dict:
    path = lab.lab_json_path
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(keys)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
    return data


def describe_gitops(gitops: dict | None) -> str:
    """One line: which repository and path the lab serves, and how to go back to the fixture."""
    if not gitops:
        return "gitops: none yet (`inv lab.up` lays out the fixture)"
    url = f"https://github.com/{gitops.get('owner', 'lab')}/{gitops.get('repository', 'homelab-gitops')}"
    if gitops.get("source"):
        return (f"gitops: {gitops['source']} (path {gitops['path']}, copied at lab.up) served as {url}; "
                "`inv lab.up` without --gitops goes back to the fixture")
    return f"gitops: the lab fixture (path {gitops['path']}) served as {url}"


def lab_up(lab: Lab, n: int | None = None, *, gitops: str | None = None, path: str | None = None,
           scenario: str | None = None, names: str | None = None, inventory: str | None = None,
           chart_crds: str | None = None) -> LabState:
    """Start (or keep) the nodes and lay out everything a lab rebuild needs.

    ``names`` (comma-separated) or ``inventory`` (a drtool inventory file) give the nodes an
    operator's own names, roles, labels and taints. Without ``gitops`` the lab serves its
    fixture: a repository an earlier ``--gitops`` brought is dropped, never kept silently.
    ``chart_crds`` is a chart → CRDs catalog file that extends drtool's. Writes
    ``<lab>/inventory.yaml`` (see :mod:`drtool.lab.lab_inventory`).
    """
    from drtool.gitops.charts import ChartCatalogError, load_catalog
    from drtool.lab.flux import flux_program
    from drtool.lab.gitops_repo import prepare_gitops
    from drtool.lab.k3s.artifacts import build_artifacts, node_os_programs
    from drtool.lab.lab_inventory import nodes_from_inventory, parse_names, write_inventory

    if names and inventory:
        from drtool.errors import BadInput

        raise BadInput("command line", "--names", "give --names or --inventory, not both")
    plans = parse_names(names) if names else nodes_from_inventory(inventory) if inventory else None
    if chart_crds:
        try:
            load_catalog(chart_crds)
        except ChartCatalogError as exc:
            from drtool.errors import BadInput

            raise BadInput(chart_crds, "", str(exc).removeprefix(f"{chart_crds}: ")) from None
    if path and not gitops:
        from drtool.errors import BadInput

        raise BadInput("command line", "--path", "--path needs --gitops (the fixture's path is clusters/homelab)")
    python = str(lab.python)
    lab.root.mkdir(parents=True, exist_ok=True)
    state = lab.up(n if not plans else None, [p.name for p in plans] if plans else None,
                   extra_bin=node_os_programs(lab.root, python))
    build_artifacts(lab.root, python)
    flux = lab.root / "bin" / "flux"
    flux.parent.mkdir(parents=True, exist_ok=True)
    flux.write_text(flux_program(lab.root, python))
    flux.chmod(0o755)
    _age_key(lab.root / "secrets" / "age.agekey")
    seed_protected_data(lab)
    existing = json.loads(lab.lab_json_path.read_text()) if lab.lab_json_path.exists() else {}
    keys = {"scenario": str(scenario_path(scenario)) if scenario or "scenario" not in existing else existing["scenario"]}
    previous = existing.get("gitops") or {}
    if gitops:
        source = Path(gitops).expanduser().resolve()
        keys["gitops"] = {**prepare_gitops(lab.root, source, path), "source": str(source)}
    elif not previous or previous.get("source"):
        # The fixture again: a lab that served an operator's repository says it no longer does.
        keys["gitops"] = {**prepare_gitops(lab.root, None, None), "source": None}
        if previous.get("source"):
            print(f"note: the lab no longer serves {previous['source']} (no --gitops given); "
                  "it serves the fixture again", flush=True)
    keys["chart_crds"] = str(Path(chart_crds).resolve()) if chart_crds else None
    data = update_lab_json(lab, **keys)
    wanted = ({p.name for p in plans} if plans else {f"node{i}" for i in range(1, n + 1)} if n
              else {s.name for s in state.nodes})
    nodes = [s for s in state.nodes if s.name in wanted]
    write_inventory(lab.root, nodes, data["gitops"], plans)
    from drtool.lab.git_remote import write_git_remote

    write_git_remote(lab.root, (data.get("gitops") or {}).get("url_map") or {})
    return state
