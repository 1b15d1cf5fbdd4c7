"""Fault matrix, node side: what `inv rebuild` does when SSH, sudo, host keys, the local
disk, signals or another operator get in the way.

One 2-node lab for the module; every fault is undone before the next test. Each test
asserts the outcome an operator sees (exit code, one-line cause, partial report) and a
time bound. Preflight-only variants of some faults live in test_preflight_lab.py.
"""
from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from drtool.lab.nodes import _cmdline

from .faults_support import (NODE_PATHS, assert_one_line_error, assert_partial_report, finish, read_until, rebuild,
                             run_dir_of, spawn_rebuild, spawned_outcome)
from .fulllab import start_full_lab, stop_full_lab_dir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def lab2():
    full = start_full_lab("127.0.130", nodes=2)
    yield full
    stop_full_lab_dir(full.lab)


UNINSTALL = "/usr/local/bin/k3s-agent-uninstall.sh"


def ensure_installed(full) -> None:
    """A cluster on the lab (the tests that wipe one need one to wipe)."""
    if not full.node_file("node2", UNINSTALL).exists():
        out = rebuild(full)
        assert out.code == 0, out.tail()


def _digests(full) -> dict:
    """Per node: every K3s file (path only: a running cluster keeps writing its datastore)
    and every byte of the users' data under /mnt."""
    out = {}
    for node in ("node1", "node2"):
        files = full.tree_digest(node, *NODE_PATHS)
        out[node] = {path: digest if path.startswith("mnt/") else "present" for path, digest in files.items()}
    return out


def test_node_unreachable_at_preflight_stops_before_any_change(lab2):
    ensure_installed(lab2)  # something a wrongly started wipe would destroy
    before = _digests(lab2)["node1"]
    lab2.lab.stop_node("node2")
    try:
        out = rebuild(lab2)
    finally:
        lab2.lab.start_node("node2")
    assert_one_line_error(out.output, out.code, 3, "node2: ssh")
    assert out.elapsed < 20, out.elapsed
    assert_partial_report(out, "preflight")
    assert [p["name"] for p in out.journal()["phases"]] == ["preflight"]
    assert _digests(lab2)["node1"] == before


def test_sudo_asking_for_a_password_stops_the_rebuild_in_preflight(lab2):
    ensure_installed(lab2)  # something a wrongly started wipe would destroy
    before = _digests(lab2)
    lab2.lab.set_sudo_password_required("node2", True)
    try:
        out = rebuild(lab2)
    finally:
        lab2.lab.set_sudo_password_required("node2", False)
    line = assert_one_line_error(out.output, out.code, 3, "node2: sudo", "password")
    assert "preflight failed" in line
    assert out.elapsed < 20, out.elapsed
    assert_partial_report(out, "preflight")
    assert _digests(lab2) == before


def test_changed_host_key_is_refused_before_any_change(lab2):
    ensure_installed(lab2)  # something a wrongly started wipe would destroy
    lab2.lab.rotate_host_key("node2")
    try:
        before = _digests(lab2)
        out = rebuild(lab2)
        assert_one_line_error(out.output, out.code, 3, "node2", "host key CHANGED", "ssh-keygen -R")
        assert out.elapsed < 20, out.elapsed
        assert_partial_report(out, "preflight")
        assert _digests(lab2) == before
    finally:
        lab2.lab.trust_host_key("node2")


def test_backup_directory_not_writable_wipes_nothing(lab2):
    """The backup dir turns read-only (a full or read-only disk): the run stops before teardown.

    The rebuild runs in a private mount namespace; once its run dir exists, a read-only
    tmpfs is mounted on <run>/backup inside that namespace only (the host never sees it).
    """
    ensure_installed(lab2)  # a cluster worth protecting
    before = _digests(lab2)
    proc = spawn_rebuild(lab2, prefix=("unshare", "--mount", "--propagation", "private", "--"))
    seen: list[str] = []
    t0 = time.monotonic()
    try:
        run_dir = run_dir_of(lab2, read_until(proc, "— run ", seen, timeout=60))
        subprocess.run(["nsenter", "-t", str(proc.pid), "-m", "--", "sh", "-c",
                        f'mkdir -p "{run_dir}/backup" && mount -t tmpfs -o ro,size=64k drtool-ro "{run_dir}/backup"'],
                       check=True, capture_output=True, timeout=30)
    finally:
        output = finish(proc, seen)
    elapsed = time.monotonic() - t0
    assert_one_line_error(output, proc.returncode, 1, "backup directory", "not writable", "Read-only file system")
    assert elapsed < 30, elapsed
    outcome = spawned_outcome(proc, output, elapsed, run_dir)
    assert_partial_report(outcome, "backup")
    assert "teardown" not in [p["name"] for p in outcome.journal()["phases"]]
    assert _digests(lab2) == before
    assert not lab2.lab.host_mounts()


def test_ssh_dropped_during_uninstall_is_retried_and_the_rebuild_succeeds(lab2):
    """node2's SSH session is cut while its k3s-agent-uninstall.sh runs."""
    ensure_installed(lab2)
    proc = spawn_rebuild(lab2)
    seen: list[str] = []
    dropped: list[int] = []
    try:
        run = run_dir_of(lab2, read_until(proc, "— run ", seen))
        read_until(proc, "▶ teardown", seen)
        deadline = time.monotonic() + 10
        while not dropped and time.monotonic() < deadline:
            if any(_cmdline(p)[1:2] == [UNINSTALL] for p in lab2.lab.node_pids("node2")):
                dropped.append(lab2.lab.drop_ssh_sessions("node2"))
            time.sleep(0.005)
    finally:
        output = finish(proc, seen)
    assert dropped and dropped[0] >= 1, "the uninstall was never seen running on node2"
    assert proc.returncode == 0, output[-4000:]
    assert "Traceback" not in output
    journal = json.loads((run / "journal.json").read_text())
    assert journal["status"] == "succeeded"
    teardown = next(p for p in journal["phases"] if p["name"] == "teardown")
    assert teardown["ended_at"] - teardown["started_at"] < 30
    assert teardown["message"].startswith("wiped: node1, node2"), teardown["message"]
    # The command log shows the loss and the one retry on node2's uninstall.
    entries = [json.loads(line) for line in (run / "commands.log").read_text().splitlines()]
    node2 = [e for e in entries if e["node"] == "node2" and e.get("step") == "teardown"]
    assert [e.get("error") or e.get("retry") or e.get("exit_code") for e in node2] == [
        "connection lost", "connection lost, running again", 0], node2


def test_sigint_during_teardown_then_resume(lab2):
    ensure_installed(lab2)  # a real uninstall takes long enough to be interrupted
    proc = spawn_rebuild(lab2)
    seen: list[str] = []
    try:
        run = run_dir_of(lab2, read_until(proc, "— run ", seen))
        read_until(proc, "▶ teardown", seen)
        proc.send_signal(signal.SIGINT)
    finally:
        output = finish(proc, seen, timeout=60)
    assert_one_line_error(output, proc.returncode, 130, "--resume", run.name)
    outcome = spawned_outcome(proc, output, 0.0, run)
    assert outcome.journal()["status"] == "interrupted"
    assert_partial_report(outcome, "teardown")
    assert outcome.phase("teardown")["outcome"] == "interrupted"
    backup_started = outcome.phase("backup")["started_at"]
    res = rebuild(lab2, "--resume", run.name, timeout=240)
    assert res.code == 0, res.tail()
    journal = json.loads((run / "journal.json").read_text())
    assert journal["status"] == "succeeded"
    assert [p["outcome"] for p in journal["phases"]] == ["ok"] * 10
    # Finished phases are not repeated; the interrupted teardown is run again, idempotently.
    assert next(p for p in journal["phases"] if p["name"] == "backup")["started_at"] == backup_started
    assert "▶ backup" not in res.proc.stdout and "▶ teardown" in res.proc.stdout
    assert res.elapsed < 60, res.elapsed


def test_concurrent_rebuild_is_refused_while_another_runs(lab2):
    first = spawn_rebuild(lab2)
    seen: list[str] = []
    try:
        run = run_dir_of(lab2, read_until(first, "— run ", seen))
        read_until(first, "▶ preflight", seen)
        second = rebuild(lab2, timeout=60)
    finally:
        output = finish(first, seen)
    assert_one_line_error(second.output, second.code, 6, f"locked by run {run.name}")
    assert second.elapsed < 15, second.elapsed
    assert_partial_report(second, "lock")
    assert first.returncode == 0, output[-3000:]
