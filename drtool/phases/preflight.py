"""Preflight: everything that can be checked before anything is destroyed.

Node checks run in parallel (one SSH connection and two commands per node);
local checks look at the flux CLI, tokens (presence only, never values),
secret files and install artifacts. Any ``fail`` blocks a rebuild.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass
from typing import Literal, Mapping

from drtool.errors import DrtoolError, HostKeyError
from drtool.inventory import Inventory, Node
from drtool.remote.facts import facts_command, parse_facts
from drtool.remote.runner import Runner

State = Literal["pass", "warn", "fail"]
MIN_FREE_GIB = 2.0
MAX_SKEW_WARN_S = 2.0
MAX_SKEW_FAIL_S = 30.0
SUPPORTED_ARCH = {"x86_64", "aarch64", "armv7l", "s390x"}


@dataclass(frozen=True)
class Check:
    target: str
    """Node name, or ``local`` for this machine."""
    name: str
    state: State
    detail: str


@dataclass(frozen=True)
class PreflightResult:
    checks: tuple[Check, ...]
    duration: float

    @property
    def ok(self) -> bool:
        return not any(c.state == "fail" for c in self.checks)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.state == "fail"]

    def to_dict(self) -> dict:
        return {"ok": self.ok, "duration_s": round(self.duration, 3), "checks": [asdict(c) for c in self.checks]}


def _node_checks(runner: Runner, inv: Inventory, node: Node) -> list[Check]:
    checks: list[Check] = []

    def add(name: str, state: State, detail: str) -> None:
        checks.append(Check(node.name, name, state, detail))

    try:
        runner.connection(node)
    except HostKeyError as exc:
        add("ssh", "fail", str(exc))
        return checks
    except DrtoolError as exc:
        add("ssh", "fail", str(exc))
        return checks
    add("ssh", "pass", f"connected to {node.address}")
    add("host key", "pass", f"verified against {runner.known_hosts}")

    if node.sudo:
        res = runner.run(node, "sudo -n true", check=False, step="preflight", timeout=inv.timeouts.ssh_connect * 2)
        if res.ok:
            add("sudo", "pass", "passwordless sudo works")
        else:
            why = "asks for a password" if "password" in (res.stderr + res.stdout) else res.tail(1) or f"exit {res.exit_code}"
            add("sudo", "fail", f"sudo -n failed: {why}; drtool needs NOPASSWD sudo")

    sent = time.time()
    res = runner.run(node, facts_command(inv.k3s.data_dir, node.protected_paths), check=False, step="preflight")
    received = time.time()
    facts = parse_facts(res.stdout)
    add("os", "pass" if facts.os == "Linux" else "fail", f"{facts.distro} ({facts.os})")
    add("arch", "pass" if facts.arch in SUPPORTED_ARCH else "fail", facts.arch)
    if facts.disk_free_kb is None:
        add("disk", "warn", f"could not read free space at {facts.disk_path}")
    else:
        gib = facts.disk_free_kb / 1024 / 1024
        add("disk", "pass" if gib >= MIN_FREE_GIB else "fail", f"{gib:.1f} GiB free at {facts.disk_path}")
    # The node's clock is compared with the midpoint of the round trip.
    skew = abs(facts.clock - (sent + received) / 2) if facts.clock else None
    if skew is None:
        add("clock", "warn", "could not read the node's clock")
    else:
        state: State = "pass" if skew <= MAX_SKEW_WARN_S else "warn" if skew <= MAX_SKEW_FAIL_S else "fail"
        add("clock", state, f"skew {skew:.2f}s")
    for path, exists in facts.protected.items():
        add("protected path", "pass" if exists else "fail", f"{path} {'exists' if exists else 'is missing'}")
    selinux = selinux_check(inv, facts)
    if selinux is not None:
        add("selinux", *selinux)
    if set(facts.k3s_units) == {"k3s", "k3s-agent"}:
        add("k3s units", "warn", "both k3s and k3s-agent units exist: uninstall would skip the data wipe; teardown handles it")
    return checks


def selinux_check(inv: Inventory, facts) -> tuple[State, str] | None:
    """An enforcing RPM-family node needs the k3s-selinux policy, which an air-gapped install skips.

    k3s-io/k3s install.sh (setup_selinux): with ``INSTALL_K3S_SKIP_DOWNLOAD=true`` it prints
    "Skipping installation of SELinux RPM" and checks nothing, so the install succeeds and
    K3s's containers then run without their policy.
    """
    if not facts.rpm_family or facts.selinux in ("absent", "disabled"):
        return None
    if facts.k3s_selinux:
        return "pass", f"SELinux {facts.selinux}; k3s-selinux policy installed"
    if inv.k3s.install.method != "airgap":
        return "pass", f"SELinux {facts.selinux}; the online install script installs k3s-selinux"
    state: State = "fail" if facts.selinux == "enforcing" else "warn"
    return state, (f"SELinux is {facts.selinux} on this RPM-family node and k3s-selinux is not installed: the "
                   "air-gapped install (INSTALL_K3S_SKIP_DOWNLOAD=true) skips that policy. Install container-selinux "
                   "and k3s-selinux (RPMs from the K3s air-gap artifacts) on the node first")


def _flux_version(runner: Runner, cli: str, timeout: float) -> str | None:
    """The flux CLI's own version, or None when it is missing or does not answer in time.

    Sent through ``Runner.local`` so it is logged, bounded and recorded in dry runs and unit
    tests like every other command. fluxcd/flux2 cmd/flux/version.go (v2.4.0): ``flux version
    --client`` prints YAML ``flux: <version>``, the version with or without its leading ``v``.
    """
    try:
        out = runner.local([cli, "version", "--client"], timeout=timeout, step="preflight", check=False)
    except DrtoolError:  # not found or not runnable (PermanentError), or past the bound (LocalCommandTimedOut)
        return None
    m = re.search(r"flux:\s*(v?\d+\.\d+\.\d+)", out.stdout + out.stderr)
    return (m.group(1) if m.group(1).startswith("v") else "v" + m.group(1)) if m else None


def flux_cli(inv: Inventory) -> str:
    """The flux CLI to run: a path relative to the inventory, or a name on PATH."""
    cli = inv.flux.cli
    if "/" in cli:
        return str(inv.resolve(cli))
    return cli


def repository_checks(inv: Inventory, env: dict[str, str], runner: Runner) -> list[tuple[str, State, str]]:
    """The repository, branch and path exist, and its flux-system manifests say what the
    inventory says: the next bootstrap regenerates them from the inventory's options and
    flux-system prunes what they leave out (see drtool.flux_system)."""
    from drtool.flux_system import (COMPONENTS_FILE, KUSTOMIZATION_FILE, SYNC_FILE, component_differences,
                                    kustomization_patches, parse_components, sync_differences)
    from drtool.gitrepo import read_flux_system

    f = inv.flux
    view = read_flux_system(inv, env, runner, timeout=max(5.0, inv.timeouts.preflight))
    if view.problem:
        return [("gitops repo", "fail", view.problem)]
    out: list[tuple[str, State, str]] = [("gitops repo", "pass", f"{view.url} branch {f.branch} path {f.path}")]
    if COMPONENTS_FILE not in view.files:
        out.append(("flux options", "pass", f"no {f.path}/flux-system/{COMPONENTS_FILE} yet: bootstrap writes it from the inventory"))
        return out
    where = f"{f.path}/flux-system"
    try:
        diffs = component_differences(inv, parse_components(view.files[COMPONENTS_FILE]))
        diffs += sync_differences(inv, view.files.get(SYNC_FILE, ""))
        patches = kustomization_patches(view.files.get(KUSTOMIZATION_FILE, ""))
    except ValueError as exc:
        return out + [("flux options", "fail", f"{where}: {exc}")]
    if diffs:
        out.append(("flux options", "fail", f"{where} differs from the inventory, and bootstrap would rewrite it: "
                    + "; ".join(diffs) + ". Set these in the inventory's flux section"))
    else:
        kept = f"; {patches} patch(es) in kustomization.yaml are kept by bootstrap" if patches else ""
        out.append(("flux options", "pass", f"{where} matches the inventory's bootstrap options{kept}"))
    return out


def local_checks(inv: Inventory, environ: Mapping[str, str] | None = None, runner: Runner | None = None) -> list[Check]:
    """Checks of this machine; local commands go through ``runner`` (a plain ``Runner`` when None:
    building one connects to nothing)."""
    env = os.environ if environ is None else environ
    runner = runner if runner is not None else Runner(inv)
    checks: list[Check] = []

    def add(name: str, state: State, detail: str) -> None:
        checks.append(Check("local", name, state, detail))

    cli = flux_cli(inv)
    version = _flux_version(runner, cli, timeout=inv.timeouts.ssh_connect * 2)
    if version is None:
        add("flux cli", "fail", f"{cli} not found or not runnable")
    elif version != inv.flux.version:
        add("flux cli", "fail", f"{cli} is {version}, the inventory pins {inv.flux.version}")
    else:
        add("flux cli", "pass", f"{cli} {version}")

    var = inv.flux.token_variable
    if var:
        add("git token", "pass" if env.get(var) else "fail", f"{var} is {'set' if env.get(var) else 'not set'}")
    if inv.flux.private_key_file is not None:
        key = inv.resolve(inv.flux.private_key_file)
        add("git key", "pass" if key and os.access(key, os.R_OK) else "fail", f"{key} {'readable' if key and os.access(key, os.R_OK) else 'not readable'}")
    if inv.flux.provider == "git" and inv.flux.url and not re.match(r"^(ssh|https?)://", inv.flux.url):
        add("gitops repo", "fail", "url must start with ssh://, https:// or http://")
    else:
        for name, state, detail in repository_checks(inv, dict(env), runner):
            add(name, state, detail)

    token = inv.k3s.token
    if token is None:
        add("k3s token", "pass", "a new token will be generated and kept in the run's backup dir")
    elif token.token_env:
        add("k3s token", "pass" if env.get(token.token_env) else "fail", f"{token.token_env} is {'set' if env.get(token.token_env) else 'not set'}")
    else:
        path = inv.resolve(token.token_file)
        add("k3s token", "pass" if path and os.access(path, os.R_OK) else "fail", f"{path} {'readable' if path and os.access(path, os.R_OK) else 'not readable'}")

    for i, secret in enumerate(inv.secrets):
        path = inv.resolve(secret.from_file)
        readable = path is not None and path.is_file() and os.access(path, os.R_OK)
        add("secret file", "pass" if readable else "fail", f"{secret.namespace}/{secret.name} from {path} {'readable' if readable else 'not readable'}")

    if inv.k3s.install.method == "airgap":
        for what in ("script", "binary", "images"):
            p = inv.resolve(getattr(inv.k3s.install, what))
            if p is None:
                continue
            add("airgap artifact", "pass" if p.is_file() else "fail", f"{what} {p} {'present' if p.is_file() else 'missing'}")
    return checks


def run_preflight(inv: Inventory, runner: Runner, environ: Mapping[str, str] | None = None) -> PreflightResult:
    """Run every check; never raises for a failing check (the caller decides). ``environ`` is
    where token variables are looked up (this process's environment when None)."""
    start = time.monotonic()
    per_node = runner.fan_out(inv.nodes, lambda n: _node_checks(runner, inv, n))
    checks: list[Check] = []
    for node in inv.nodes:
        res = per_node[node.name]
        if isinstance(res, DrtoolError):
            checks.append(Check(node.name, "ssh", "fail", str(res).splitlines()[0]))
        else:
            checks.extend(res)
    checks.extend(local_checks(inv, environ, runner=runner))
    return PreflightResult(tuple(checks), time.monotonic() - start)
