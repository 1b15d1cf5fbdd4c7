"""`inv rebuild` end to end on a 2-node lab: real sshd, sudo, SFTP, the HTTPS API and the flux CLI."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


from .fulllab import GIT_TOKEN, REPO, FullLab, start_full_lab, stop_full_lab_dir

pytestmark = pytest.mark.slow

# Everything K3s, its installer and drtool touch on a node (the node's /etc and /var/lib are
# overlays over the host's, so hashing all of them would mostly hash the host).
NODE_PATHS = ("etc/rancher", "etc/systemd/system", "var/lib/rancher", "var/lib/kubelet", "usr/local/bin",
              "usr/local/share", "mnt", "var/tmp")


@pytest.fixture(scope="module")
def lab2():
    full = start_full_lab("127.0.110", nodes=2)
    yield full
    stop_full_lab_dir(full.lab)


def _last_run(full: FullLab) -> Path:
    return full.runs_list()[-1]


def _scan_for_secrets(full: FullLab, run_dir: Path, extra: list[str], texts: list[str]) -> list[str]:
    """Every file the run wrote outside backup/, plus the given terminal texts: which secrets leak."""
    secrets = [GIT_TOKEN, *extra]
    age = (full.lab.root / "secrets" / "age.agekey").read_text().strip().splitlines()[-1]
    secrets.append(age)
    leaks = []
    for f in run_dir.rglob("*"):
        if f.is_file() and "backup" not in f.relative_to(run_dir).parts and f.name != "kubeconfig":
            content = f.read_text(errors="replace")
            leaks += [f"{f.name}: {s[:6]}…" for s in secrets if s and s in content]
    for t in texts:
        leaks += [f"terminal: {s[:6]}…" for s in secrets if s and s in t]
    return leaks


def test_dry_run_changes_nothing(lab2):
    before = {n: lab2.tree_digest(n, *NODE_PATHS) for n in ("node1", "node2")}
    res = lab2.inv("rebuild", "-i", str(lab2.inventory), "--dry-run")
    assert res.returncode == 0, res.stderr
    assert "== teardown" in res.stdout and "k3s-agent-uninstall.sh" in res.stdout
    assert "[node2]" in res.stdout and "--node-taint heavy=true:NoSchedule" in res.stdout
    assert GIT_TOKEN not in res.stdout and "GITHUB_TOKEN=***" in res.stdout
    after = {n: lab2.tree_digest(n, *NODE_PATHS) for n in ("node1", "node2")}
    assert before == after
    assert lab2.runs_list() == []


def test_missing_git_token_fails_in_preflight_and_wipes_nothing(lab2):
    env = lab2.env()
    env.pop("GITHUB_TOKEN")
    before = lab2.tree_digest("node2", *NODE_PATHS)
    res = lab2.inv("rebuild", "-i", str(lab2.inventory), "--yes", env=env)
    assert res.returncode == 3, res.stdout + res.stderr
    assert "GITHUB_TOKEN is not set" in res.stdout + res.stderr
    run = _last_run(lab2)
    journal = json.loads((run / "journal.json").read_text())
    assert journal["stopped_at"] == "preflight"
    assert [p["name"] for p in journal["phases"]] == ["preflight"]
    assert (run / "report.md").exists()
    assert lab2.tree_digest("node2", *NODE_PATHS) == before


def test_rebuild_twice_keeps_protected_data(lab2):
    data_before = lab2.tree_digest("node2", "mnt/k8s-storage")
    assert data_before
    outputs = []
    tokens = []
    for attempt in (1, 2):
        res = lab2.inv("rebuild", "-i", str(lab2.inventory), "--yes", timeout=300)
        outputs += [res.stdout, res.stderr]
        assert res.returncode == 0, f"rebuild {attempt}:\n{res.stdout[-3000:]}\n{res.stderr[-2000:]}"
        run = _last_run(lab2)
        journal = json.loads((run / "journal.json").read_text())
        assert journal["status"] == "succeeded"
        assert [p["outcome"] for p in journal["phases"]] == ["ok"] * 10
        # The backup manifest verifies (the second run backs up the first run's cluster).
        from drtool.phases.backup import verify_manifest

        assert verify_manifest(run / "backup") >= (1 if attempt == 1 else 3)
        assert oct((run / "backup").stat().st_mode & 0o777) == "0o700"
        assert oct((run / "kubeconfig").stat().st_mode & 0o777) == "0o600"
        for name in ("report.json", "report.md", "report.html"):
            assert (run / name).is_file(), name
        # The report explains the whole recovery time, from teardown through the phases and the
        # chain of Flux objects to the last one Ready.
        report = json.loads((run / "report.json").read_text())
        segments = report["critical_time"]
        assert segments[0]["what"] == "phase teardown" and segments[0]["start_s"] == 0, segments[:2]
        # Converge waits for both bootstrap and nodes_ready (they overlap): the one that ended
        # last held it up, and it is the phase on the path.
        ended = {p["name"]: p["ended_at"] for p in journal["phases"]}
        gate = max(("bootstrap", "nodes_ready"), key=lambda name: ended[name])
        assert f"phase {gate}" in [s["what"] for s in segments], (gate, [s["what"] for s in segments])
        assert any(s["what"].startswith(("Kustomization/", "HelmRelease/")) for s in segments)
        assert abs(sum(s["duration_s"] for s in segments) - report["recovery_s"]) < 0.05
        assert "## Where the time went" in (run / "report.md").read_text()
        tokens.append((run / "backup" / "k3s-token.new").read_text().strip())
        if attempt == 2:
            # The old cluster's token is backed up verbatim (never masked), 0600.
            saved = run / "backup" / "node1" / "token"
            assert tokens[0] in saved.read_text() and "***" not in saved.read_text()
            assert oct(saved.stat().st_mode & 0o777) == "0o600"
    assert lab2.tree_digest("node2", "mnt/k8s-storage") == data_before
    token = (run / "backup" / "k3s-token.new").read_text().strip()
    assert not _scan_for_secrets(lab2, run, [token], outputs)
    # The node password rule was exercised: node2 rejoined a fresh server.
    kubeconfig = run / "kubeconfig"
    out = subprocess.run([sys.executable, "-c", (
        "from drtool.kube.client import api_client_from_kubeconfig, KubeTransport;"
        f"t=KubeTransport(api_client_from_kubeconfig({str(kubeconfig)!r}));"
        "print(sorted(n['metadata']['name'] for n in t.get_json('/api/v1/nodes')['items']))")],
        capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "['node1', 'node2']", out.stderr


def test_second_concurrent_rebuild_is_refused(lab2):
    from drtool.lock import ClusterLock

    held = ClusterLock(lab2.runs, "lab").acquire("someone-else")
    try:
        res = lab2.inv("rebuild", "-i", str(lab2.inventory), "--yes")
    finally:
        held.release()
    assert res.returncode == 6, res.stderr
    assert "locked by run someone-else" in res.stderr


def test_sigint_during_install_then_resume(lab2):
    proc = subprocess.Popen([sys.executable, "-m", "invoke", "rebuild", "-i", str(lab2.inventory), "--yes"],
                            cwd=REPO, env=lab2.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    deadline = time.monotonic() + 120
    try:
        for line in proc.stdout:
            seen.append(line)
            if "install_servers" in line and "▶" in line:
                proc.send_signal(signal.SIGINT)
                break
            assert time.monotonic() < deadline, "install_servers never started"
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(seen) + rest
    assert proc.returncode == 130, out
    run = _last_run(lab2)
    journal = json.loads((run / "journal.json").read_text())
    assert journal["status"] == "interrupted", journal["status"]
    outcomes = {p["name"]: p["outcome"] for p in journal["phases"]}
    assert outcomes["teardown"] == "ok"
    teardown_started = next(p["started_at"] for p in journal["phases"] if p["name"] == "teardown")
    report = json.loads((run / "report.json").read_text())
    assert report.get("partial") is True
    res = lab2.inv("rebuild", "-i", str(lab2.inventory), "--yes", "--resume", run.name, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    journal = json.loads((run / "journal.json").read_text())
    assert journal["status"] == "succeeded"
    assert next(p["started_at"] for p in journal["phases"] if p["name"] == "teardown") == teardown_started
    assert "▶ teardown" not in res.stdout
