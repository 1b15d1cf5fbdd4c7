"""Secrets never leave their sources, and inventory values never become shell code.

A rebuild runs with three known secrets: the Git token (GITHUB_TOKEN), the K3s token
(an inventory ``k3s.token.token_file``) and the SOPS age key (a ``secrets[].from_file``).
Then every file the run wrote, except the 0600 backup/ dir and kubeconfig which exist to
hold them, the debug log and the terminal output are searched for each secret, raw and
base64-encoded. Separately, inventory values full of shell metacharacters go through a
rebuild and a preflight: nothing they spell out is ever executed, on the host or a node.
"""
from __future__ import annotations

import base64
import secrets
import stat
from pathlib import Path

import pytest

from .faults_support import NODE_PATHS, assert_one_line_error, assert_partial_report, rebuild
from .fulllab import FullLab, start_full_lab, stop_full_lab_dir, write_inventory

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

GIT_TOKEN = "ghp_scan" + secrets.token_hex(16)
K3S_TOKEN = "drtool-scan-k3s-" + secrets.token_hex(16)
AGE_KEY = "AGE-SECRET-KEY-1" + base64.b32encode(secrets.token_bytes(32)).decode().rstrip("=")
# Unique per test run, so a leftover from anything else can never pass for ours.
PWNED = f"drtool-pwned-{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def lab2():
    full = start_full_lab("127.0.132", nodes=2)
    yield full
    stop_full_lab_dir(full.lab)


def _private(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return path


def _forms(secret: str) -> list[str]:
    """The secret as it could leak: raw, and base64 (as it travels in a Kubernetes Secret)."""
    return [secret, base64.b64encode(secret.encode()).decode(), base64.b64encode((secret + "\n").encode()).decode()]


def _leaks(texts: dict[str, str], named: dict[str, str]) -> list[str]:
    return [f"{where}: {name}" for where, text in texts.items() for name, secret in named.items()
            for form in _forms(secret) if form in text]


def test_no_secret_reaches_logs_reports_or_the_terminal(lab2):
    secrets_dir = lab2.lab.root / "scan-secrets"
    token_file = _private(secrets_dir / "k3s-token", K3S_TOKEN + "\n")
    age_file = _private(secrets_dir / "age.agekey", f"# created: for the scan\n# public key: age1scan\n{AGE_KEY}\n")

    def with_secret_sources(data):
        data["k3s"]["token"] = {"token_file": str(token_file)}
        data["secrets"][0]["from_file"] = str(age_file)

    full = FullLab(lab2.lab, write_inventory(lab2.lab, lab2.lab.root / "inventory-scan.yaml", mutate=with_secret_sources),
                   lab2.runs)
    dry = full.inv("rebuild", "-i", str(full.inventory), "--dry-run", env=full.env(GITHUB_TOKEN=GIT_TOKEN))
    assert dry.returncode == 0, dry.stderr
    out = rebuild(full, env=full.env(GITHUB_TOKEN=GIT_TOKEN))
    assert out.code == 0, out.tail()
    run = out.run
    # The run really used the known values: the agent's env file on node2 holds our K3s token.
    agent_env = full.node_file("node2", "/etc/systemd/system/k3s-agent.service.env").read_text()
    assert K3S_TOKEN in agent_env
    assert "k3s-token.new" not in {p.name for p in (run / "backup").iterdir()}

    texts = {"terminal (dry run)": dry.stdout + dry.stderr, "terminal": out.output}
    scanned = []
    for f in sorted(run.rglob("*")):
        rel = f.relative_to(run)
        if not f.is_file() or rel.parts[0] == "backup":
            continue
        if rel == Path("kubeconfig"):
            assert stat.S_IMODE(f.stat().st_mode) == 0o600
            continue
        texts[str(rel)] = f.read_text(errors="replace")
        scanned.append(str(rel))
    debug_log = lab2.runs / "debug.log"
    if debug_log.exists():
        texts["debug.log"] = debug_log.read_text(errors="replace")
    assert {"journal.json", "commands.log", "bootstrap.log", "report.json", "report.md", "report.html"} <= set(scanned), scanned
    assert stat.S_IMODE((run / "backup").stat().st_mode) == 0o700
    leaks = _leaks(texts, {"git token": GIT_TOKEN, "k3s token": K3S_TOKEN, "age key": AGE_KEY})
    assert not leaks, leaks
    # Redaction shows where a secret was, without it.
    assert "GITHUB_TOKEN=***" in dry.stdout


def _no_pwned_anywhere(full: FullLab) -> list[str]:
    found = [str(p) for p in Path("/tmp").glob(f"{PWNED}*")]
    for node in ("node1", "node2"):
        found += [f"{node}:{p}" for p in (full.lab.node_root(node) / "tmp").glob(f"{PWNED}*")]
        found += [f"{node}:{p}" for p in full.lab.node_root(node).glob(f"{PWNED}*")]
    return found


def test_shell_metacharacters_in_server_args_are_never_run(lab2):
    def hostile_args(data):
        data["k3s"]["server_args"] = ["--disable", "traefik", f"--node-label=x=$(touch /tmp/{PWNED}-args)",
                                      f"--node-name=`touch /tmp/{PWNED}-tick`"]

    full = FullLab(lab2.lab, write_inventory(lab2.lab, lab2.lab.root / "inventory-args.yaml", mutate=hostile_args),
                   lab2.runs)
    out = rebuild(full)
    # The label value is the literal text "$(touch ...)", which Kubernetes refuses: K3s fails
    # to start, as real K3s would, and the install step reports it. Nothing was executed.
    assert_one_line_error(out.output, out.code, 1, "node1: ", "exited 1", "Job for k3s.service failed")
    assert_partial_report(out, "install_servers")
    assert not _no_pwned_anywhere(full), _no_pwned_anywhere(full)
    commands = (out.run / "commands.log").read_text()
    assert f"$(touch /tmp/{PWNED}-args)" in commands, "the argument never reached a node"


def test_shell_metacharacters_in_a_protected_path_are_never_run(lab2):
    def hostile_path(data):
        data["nodes"][1]["protected_paths"] = [f"/mnt/x; touch /tmp/{PWNED}-path", f"/mnt/$(touch /tmp/{PWNED}-sub)"]

    full = FullLab(lab2.lab, write_inventory(lab2.lab, lab2.lab.root / "inventory-paths.yaml", mutate=hostile_path),
                   lab2.runs)
    before = full.tree_digest("node2", *NODE_PATHS)
    pre = full.inv("preflight", "-i", str(full.inventory))
    out = rebuild(full)
    for res_code, text in ((pre.returncode, pre.stdout + pre.stderr), (out.code, out.output)):
        assert res_code == 3, text[-2000:]
        assert "protected path" in text and "Traceback" not in text
    assert full.tree_digest("node2", *NODE_PATHS) == before
    assert not _no_pwned_anywhere(full), _no_pwned_anywhere(full)
