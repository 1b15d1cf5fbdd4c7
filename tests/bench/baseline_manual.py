"""The users' manual recovery procedure, as a script: the baseline drtool's recovery time is compared with.

    .venv/bin/python -m tests.bench.baseline_manual --inventory LAB/inventory.yaml [--timeout 120]

It follows "Pattern 3: Disaster Recovery" of the users' Flux notes and DOMAIN.md's description of
what they do today, step by step and one node at a time, with stock tools only: OpenSSH ``ssh``
and ``scp`` with the lab key, the K3s install script, ``flux bootstrap github`` and real
``kubectl`` (``/usr/bin/kubectl``). It reads the node list, key and artifact paths from a lab
inventory file as plain YAML (the operator's notes), never through drtool.

Where the written procedure cannot work as written, the script does what a careful user does
and says so in a comment marked ``MANUAL FIX``:
- the lab has no internet, so the install script, binary and images are copied with ``scp``
  and installed with ``INSTALL_K3S_SKIP_DOWNLOAD=true`` (the air-gapped install), like drtool;
- ``/etc/rancher/node/password`` survives the uninstall script and makes the fresh server reject
  the agent, so it is removed after uninstalling;
- the agent needs its labels and taints again (``--node-label``/``--node-taint``), or the
  heavy workloads stay Pending forever;
- the ``sops-age`` Secret is not in Git: it is created before bootstrap;
- ``kubectl wait --for=condition=ready pod --all -A`` never returns for K3s's Completed
  ``helm-install-*`` pods, so Succeeded pods are excluded with
  ``--field-selector=status.phase!=Succeeded``;
- ``kubectl wait --all`` fails at once with "no matching resources found" when the objects do
  not exist yet (HelmReleases right after bootstrap), so each wait is retried until they do.

Prints one JSON object on stdout: ``ok``, ``total_s`` (first uninstall to the last wait
returning: the same span as drtool's ``recovery_s``) and per-step seconds. Progress goes to
stderr. Every command has a timeout; every retry loop is bounded.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

KUBECTL = "/usr/bin/kubectl"
UNINSTALL = {"server": "/usr/local/bin/k3s-uninstall.sh", "agent": "/usr/local/bin/k3s-agent-uninstall.sh"}
NODE_PASSWORD = "/etc/rancher/node/password"
IMAGES_DIR = "/var/lib/rancher/k3s/agent/images"


class StepFailed(Exception):
    """A command of the procedure failed: what a user would see on their terminal."""


@dataclass(frozen=True)
class ManualNode:
    """One node as the operator's notes describe it."""

    name: str
    address: str
    port: int
    user: str
    role: str
    labels: tuple[tuple[str, str], ...]
    taints: tuple[str, ...]


@dataclass(frozen=True)
class Notes:
    """Everything the manual procedure needs, read from a lab inventory file."""

    nodes: tuple[ManualNode, ...]
    key: Path
    known_hosts: Path
    install_script: Path
    binary: Path
    images: Path | None
    k3s_version: str
    server_args: tuple[str, ...]
    flux_cli: Path
    flux: dict
    age_key: Path | None

    @classmethod
    def load(cls, inventory: Path) -> "Notes":
        data = yaml.safe_load(inventory.read_text())
        base = inventory.resolve().parent

        def path(value: str) -> Path:
            p = Path(value)
            return p if p.is_absolute() else (base / p).resolve()

        nodes = tuple(ManualNode(n["name"], n["host"], int(n.get("port", 22)), n.get("user", "root"), n["role"],
                                 tuple(sorted((n.get("labels") or {}).items())), tuple(n.get("taints") or ()))
                      for n in data["nodes"])
        install = data["k3s"]["install"]
        age = next((s["from_file"] for s in data.get("secrets") or [] if s.get("name") == "sops-age"), None)
        return cls(nodes=nodes, key=path(data["nodes"][0]["ssh_key"]), known_hosts=path(data["ssh"]["known_hosts"]),
                   install_script=path(install["script"]), binary=path(install["binary"]),
                   images=path(install["images"]) if install.get("images") else None,
                   k3s_version=data["k3s"]["version"], server_args=tuple(data["k3s"].get("server_args") or ()),
                   flux_cli=path(data["flux"]["cli"]), flux=data["flux"], age_key=path(age) if age else None)


class Procedure:
    """Runs the manual steps in order and times each one."""

    def __init__(self, notes: Notes, workdir: Path, timeout_s: float):
        self.notes = notes
        self.workdir = workdir
        self.timeout_s = timeout_s
        self.kubeconfig = workdir / "kubeconfig"
        self.steps: list[dict] = []

    # -- plumbing --

    def _ssh_opts(self, node: ManualNode, port_flag: str) -> list[str]:
        return ["-i", str(self.notes.key), port_flag, str(node.port), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={self.notes.known_hosts}",
                "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"]

    def _run(self, argv: list[str], *, stdin: str | None = None, timeout: float | None = None,
             env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
        try:
            res = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env,
                                 timeout=timeout or self.timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise StepFailed(f"{argv[0]} timed out after {exc.timeout:.0f}s") from None
        if check and res.returncode != 0:
            tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
            raise StepFailed(f"{Path(argv[0]).name} exited {res.returncode}: {' | '.join(tail)}")
        return res

    def ssh(self, node: ManualNode, command: str, *, stdin: str | None = None, check: bool = True):
        return self._run(["ssh", *self._ssh_opts(node, "-p"), f"{node.user}@{node.address}", command],
                         stdin=stdin, check=check)

    def scp(self, node: ManualNode, files: list[Path]) -> None:
        self._run(["scp", "-q", *self._ssh_opts(node, "-P"), *map(str, files), f"{node.user}@{node.address}:/tmp/"])

    def kubectl(self, *args: str, timeout: float | None = None, check: bool = True):
        return self._run([KUBECTL, "--kubeconfig", str(self.kubeconfig), *args], timeout=timeout, check=check)

    def step(self, name: str, fn, *args) -> None:
        start = time.monotonic()
        print(f"  manual: {name} ...", file=sys.stderr, flush=True)
        try:
            fn(*args)
        finally:
            self.steps.append({"step": name, "seconds": round(time.monotonic() - start, 3)})

    # -- the procedure --

    def uninstall(self, node: ManualNode) -> None:
        script = UNINSTALL[node.role]
        # MANUAL FIX: the node password file survives the uninstall and breaks the next join.
        self.ssh(node, f"if [ -x {script} ]; then sudo {script}; fi; sudo rm -f {NODE_PASSWORD}")

    def upload(self, node: ManualNode) -> None:
        # MANUAL FIX: air-gapped install (no internet in the lab): copy the release artifacts over.
        files = [self.notes.install_script, self.notes.binary] + ([self.notes.images] if self.notes.images else [])
        self.scp(node, files)
        names = [shlex.quote(f.name) for f in files]
        cmd = (f"sudo install -m 0755 /tmp/{names[0]} /tmp/k3s-install.sh && "
               f"sudo install -m 0755 /tmp/{names[1]} /usr/local/bin/k3s")
        if self.notes.images:
            cmd += f" && sudo mkdir -p {IMAGES_DIR} && sudo install -m 0644 /tmp/{names[2]} {IMAGES_DIR}/"
        self.ssh(node, cmd)

    def _install_env(self, node: ManualNode, words: list[str]) -> str:
        for key, value in node.labels:
            words += ["--node-label", f"{key}={value}"]
        for taint in node.taints:
            words += ["--node-taint", taint]
        return (f"INSTALL_K3S_SKIP_DOWNLOAD=true INSTALL_K3S_VERSION={shlex.quote(self.notes.k3s_version)} "
                f"INSTALL_K3S_EXEC={shlex.quote(shlex.join(words))}")

    def install_server(self, node: ManualNode) -> None:
        env = self._install_env(node, ["server", *self.notes.server_args])
        self.ssh(node, f"sudo env {env} sh /tmp/k3s-install.sh")

    def server_token(self, server: ManualNode) -> str:
        # The token file appears once the server is up: the user re-runs `cat` until it does.
        for _ in range(60):
            res = self.ssh(server, "sudo cat /var/lib/rancher/k3s/server/node-token", check=False)
            if res.returncode == 0 and res.stdout.strip():
                return res.stdout.strip()
            time.sleep(0.5)
        raise StepFailed("the server's node-token never appeared")

    def install_agent(self, node: ManualNode, server: ManualNode, token: str) -> None:
        # MANUAL FIX: labels and taints again, or the heavy workloads stay Pending.
        env = self._install_env(node, ["agent"])
        # The token goes on stdin, not the command line, so it stays out of process lists.
        self.ssh(node, f"IFS= read -r K3S_TOKEN; sudo env K3S_TOKEN=\"$K3S_TOKEN\" "
                       f"K3S_URL=https://{server.address}:6443 {env} sh /tmp/k3s-install.sh", stdin=token + "\n")

    def fetch_kubeconfig(self, server: ManualNode) -> None:
        text = self.ssh(server, "sudo cat /etc/rancher/k3s/k3s.yaml").stdout
        self.kubeconfig.write_text(text.replace("127.0.0.1", server.address).replace("localhost", server.address))
        self.kubeconfig.chmod(0o600)
        for _ in range(60):   # until the API answers
            if self.kubectl("get", "nodes", timeout=10, check=False).returncode == 0:
                return
            time.sleep(0.5)
        raise StepFailed("the API never answered")

    def sops_secret(self) -> None:
        # MANUAL FIX: the decryption key is not in Git; it must exist before Flux decrypts.
        if self.notes.age_key is None:
            return
        self.kubectl("create", "namespace", "flux-system")
        self.kubectl("create", "secret", "generic", "sops-age", "-n", "flux-system",
                     f"--from-file=age.agekey={self.notes.age_key}")

    def bootstrap(self) -> None:
        f = self.notes.flux
        argv = [str(self.notes.flux_cli), "bootstrap", "github", f"--owner={f['owner']}",
                f"--repository={f['repository']}", f"--branch={f.get('branch', 'main')}", f"--path={f['path']}"]
        if f.get("personal"):
            argv.append("--personal")
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig))
        self._run(argv, env=env, timeout=self.timeout_s + 60)

    def wait(self, *what: str) -> None:
        """``kubectl wait --for=condition=ready WHAT``, re-run while nothing matches yet."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            left = max(1, int(deadline - time.monotonic()))
            res = self.kubectl("wait", "--for=condition=ready", *what, f"--timeout={left}s",
                               timeout=left + 15, check=False)
            if res.returncode == 0:
                return
            # MANUAL FIX: the objects do not exist yet; a user waits a moment and re-runs.
            if "no matching resources found" in res.stderr.lower() and time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            tail = (res.stderr or res.stdout).strip().splitlines()[-2:]
            raise StepFailed(f"kubectl wait {' '.join(what)}: {' | '.join(tail)}")

    def run(self) -> dict:
        servers = [n for n in self.notes.nodes if n.role == "server"]
        agents = [n for n in self.notes.nodes if n.role == "agent"]
        server = servers[0]
        started = time.time()
        t0 = time.monotonic()
        error = None
        try:
            for node in self.notes.nodes:          # Pattern 3, step 1: one node after another
                self.step(f"uninstall {node.name}", self.uninstall, node)
            self.step(f"upload {server.name}", self.upload, server)
            self.step(f"install {server.name}", self.install_server, server)
            box: dict = {}
            self.step("read node-token", lambda: box.setdefault("token", self.server_token(server)))
            for node in agents:
                self.step(f"upload {node.name}", self.upload, node)
                self.step(f"install {node.name}", self.install_agent, node, server, box["token"])
            self.step("fetch kubeconfig", self.fetch_kubeconfig, server)
            self.step("sops-age secret", self.sops_secret)
            self.step("flux bootstrap github", self.bootstrap)
            self.step("wait kustomizations", self.wait, "kustomization", "--all", "-n", "flux-system")
            self.step("wait helmreleases", self.wait, "helmrelease", "--all", "-A")
            # MANUAL FIX: Completed helm-install pods never turn Ready.
            self.step("wait pods", self.wait, "pod", "--all", "-A", "--field-selector=status.phase!=Succeeded")
        except StepFailed as exc:
            error = str(exc)
        total = round(time.monotonic() - t0, 3)
        return {"ok": error is None, "error": error, "started_at": round(started, 3), "total_s": total,
                "steps": self.steps}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", required=True, type=Path, help="a lab inventory file (read as plain YAML)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds for each command and each wait")
    args = parser.parse_args(argv)
    if not os.environ.get("GITHUB_TOKEN"):
        print("error: GITHUB_TOKEN is not set (flux bootstrap github needs it)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="manual-") as tmp:
        result = Procedure(Notes.load(args.inventory), Path(tmp), args.timeout).run()
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
