"""A whole lab (nodes, K3s artifacts, flux CLI, GitOps repo) plus an inventory pointing at it.

Used by the rebuild, drill and fault tests. Each lab gets its own loopback subnet and temp dir.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from drtool.lab.nodes import Lab
from drtool.lab.setup import lab_up

from .subnets import for_worker

REPO = Path(__file__).resolve().parents[2]
LAB_INVENTORY = REPO / "inventory" / "lab.yaml"
GIT_TOKEN = "ghp_labSECRETtoken0123456789abcdef"


@dataclass
class FullLab:
    lab: Lab
    inventory: Path
    runs: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"GITHUB_TOKEN": GIT_TOKEN, "DRTOOL_RUNS_DIR": str(self.runs), "NO_COLOR": "1",
                    "COLUMNS": "200", "DRTOOL_DEBUG_LOG": str(self.runs / "debug.log")})
        env.update(extra)
        return env

    def inv(self, *args: str, timeout: float = 240, env: dict | None = None, **popen) -> subprocess.CompletedProcess:
        """Run `inv ARGS` from the repo as an operator would; bounded in time."""
        return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO, capture_output=True, text=True,
                              env=env or self.env(), timeout=timeout, stdin=subprocess.DEVNULL, **popen)

    def node_file(self, node: str, path: str) -> Path:
        return self.lab.node_root(node) / path.lstrip("/")

    def tree_digest(self, node: str, *paths: str) -> dict[str, str]:
        """SHA-256 of every file under the given node paths (host view), for before/after checks."""
        out = {}
        for p in paths:
            base = self.node_file(node, p)
            if not base.exists():
                continue
            for f in sorted(base.rglob("*")) if base.is_dir() else [base]:
                if f.is_file() and not f.is_symlink():
                    try:
                        out[str(f.relative_to(self.lab.node_root(node)))] = hashlib.sha256(f.read_bytes()).hexdigest()
                    except OSError:
                        pass
        return out

    def runs_list(self) -> list[Path]:
        return sorted(p for p in self.runs.iterdir() if p.is_dir() and not p.name.startswith("."))


def write_inventory(lab: Lab, dest: Path, agents: int = 1, mutate=None) -> Path:
    data = yaml.safe_load(LAB_INVENTORY.read_text())
    nodes = lab.nodes
    template_agent = data["nodes"][1]
    data["nodes"] = [{**data["nodes"][0], "host": nodes[0].address}]
    for i, spec in enumerate(nodes[1 : 1 + agents]):
        agent = {**template_agent, "name": spec.name, "host": spec.address}
        if i > 0:  # only node2 carries the heavy label/taint and protected data
            agent = {k: v for k, v in agent.items() if k not in ("labels", "taints", "protected_paths")}
        data["nodes"].append(agent)
    root = lab.root
    for node in data["nodes"]:
        node["ssh_key"] = str(root / "keys" / "id_ed25519")
    data["cluster"]["api_endpoint"] = f"https://{nodes[0].address}:6443"
    data["ssh"]["known_hosts"] = str(root / "known_hosts")
    data["k3s"]["install"] = {"method": "airgap", "script": str(root / "artifacts" / "install.sh"),
                              "binary": str(root / "artifacts" / "k3s"), "images": str(root / "artifacts" / "k3s-airgap-images.tar")}
    data["flux"]["cli"] = str(root / "bin" / "flux")
    data["flux"]["git_config_file"] = str(root / "gitconfig")
    # The repo lab_up serves (lab.json), which `inv gitops.check` and preflight read.
    data["flux"]["checkout"] = json.loads(lab.lab_json_path.read_text())["gitops"]["default"]
    data["secrets"][0]["from_file"] = str(root / "secrets" / "age.agekey")
    data["runs_dir"] = str(dest.parent / "runs")  # the FullLab's runs, also without $DRTOOL_RUNS_DIR
    if mutate:
        mutate(data)
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def start_full_lab(subnet: str, nodes: int = 2, scenario: str | None = None, mutate=None,
                   gitops: str | None = None, path: str | None = None) -> FullLab:
    subnet = for_worker(subnet)
    root = Path(tempfile.mkdtemp(prefix="drtool-fulllab-"))
    root.chmod(0o755)
    lab = Lab(root, subnet=subnet)
    try:
        lab_up(lab, nodes, scenario=scenario, gitops=gitops, path=path)
        # node2 keeps users' data outside K3s's dirs, as in the reference homelab.
        data = lab.node_root("node2") / "mnt" / "k8s-storage" / "loki"
        data.mkdir(parents=True, exist_ok=True)
        (data / "chunks.bin").write_bytes(os.urandom(4096))
        runs = root / "runs"
        runs.mkdir()
        inventory = write_inventory(lab, root / "inventory.yaml", agents=nodes - 1, mutate=mutate)
    except BaseException:
        stop_full_lab_dir(lab)
        raise
    return FullLab(lab, inventory, runs)


@contextlib.contextmanager
def full_lab_with_scenario(subnet: str, name: str, scenario: dict, **kwargs) -> Iterator[FullLab]:
    """A full lab playing ``scenario`` (a scenario document), stopped and its file removed after.

    The file lives inside the repo (``.lab/``, ignored by git): the nodes' K3s read it from their
    own mount namespace, where the test's tmp dir is not visible."""
    path = REPO / ".lab" / f"test-{name}-{os.getpid()}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    try:
        full = start_full_lab(subnet, scenario=str(path), **kwargs)
        try:
            yield full
        finally:
            stop_full_lab_dir(full.lab)
    finally:
        path.unlink(missing_ok=True)


def stop_full_lab_dir(lab: Lab) -> None:
    try:
        lab.down(purge=True)
    finally:
        shutil.rmtree(lab.root, ignore_errors=True)
