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
    """node2 keeps the users' data outside K3s's dirs, as in the reference homelab (once)."""
    names = [n.name for n in lab.nodes]
    if "node2" not in names:
        return
    base = lab.node_dir("node2") / "mnt" / "k8s-storage"
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


def lab_up(lab: Lab, n: int | None = None, *, gitops: str | None = None, path: str | None = None,
           scenario: str | None = None) -> LabState:
    """Start (or keep) the nodes and lay out everything a lab rebuild needs."""
    from drtool.lab.flux import flux_program
    from drtool.lab.gitops_repo import prepare_gitops
    from drtool.lab.k3s.artifacts import build_artifacts, node_os_programs

    python = str(lab.python)
    lab.root.mkdir(parents=True, exist_ok=True)
    state = lab.up(n, extra_bin=node_os_programs(lab.root, python))
    build_artifacts(lab.root, python)
    flux = lab.root / "bin" / "flux"
    flux.parent.mkdir(parents=True, exist_ok=True)
    flux.write_text(flux_program(lab.root, python))
    flux.chmod(0o755)
    _age_key(lab.root / "secrets" / "age.agekey")
    seed_protected_data(lab)
    existing = json.loads(lab.lab_json_path.read_text()) if lab.lab_json_path.exists() else {}
    keys = {"scenario": str(scenario_path(scenario)) if scenario or "scenario" not in existing else existing["scenario"]}
    if gitops or "gitops" not in existing:
        keys["gitops"] = prepare_gitops(lab.root, Path(gitops).resolve() if gitops else None, path)
    update_lab_json(lab, **keys)
    from drtool.lab.git_remote import write_git_remote

    gitops_cfg = keys.get("gitops") or existing.get("gitops") or {}
    write_git_remote(lab.root, gitops_cfg.get("url_map") or {})
    return state
