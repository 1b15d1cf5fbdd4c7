"""Runbooks end to end on a 2-node lab: dry runs, the shipped runbooks, --step through a terminal, resume."""
from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from .fulllab import GIT_TOKEN, REPO, start_full_lab, stop_full_lab_dir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

NODE_PATHS = ("etc", "var/lib", "usr/local/bin", "mnt")
# The runbook tasks as an operator calls them (`inv runbook.<task>`), through invoke's own Program.
PROGRAM = ("from invoke import Program, Collection; from drtool.tasks import runbook; "
           "Program(namespace=Collection.from_module(runbook), binary='inv').run()")


def _short_converge(data: dict) -> None:
    # Everything here converges in seconds: a regression should fail in one minute, not two.
    data["timeouts"]["converge"] = "60s"


@pytest.fixture(scope="module")
def lab2():
    full = start_full_lab("127.0.190", nodes=2, mutate=_short_converge)
    yield full
    stop_full_lab_dir(full.lab)


def rb(full, *args, timeout=240, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROGRAM, *args], cwd=REPO, capture_output=True, text=True,
                          env=env or full.env(), timeout=timeout, stdin=subprocess.DEVNULL)


def journal(full, run_id) -> dict:
    return json.loads((full.runs / run_id / "journal.json").read_text())


def steps(full, run_id) -> dict[str, dict]:
    return {s["id"]: s for s in journal(full, run_id)["runbook"]["steps"]}


def new_run(full, before: set) -> str:
    (run,) = {p.name for p in full.runs_list()} - before
    return run


def runs(full) -> set:
    return {p.name for p in full.runs_list()}


def write_book(path: Path, steps_: list[dict], name="custom") -> Path:
    path.write_text(yaml.safe_dump({"name": name, "description": "test runbook", "steps": steps_}, sort_keys=False))
    return path


def test_dry_run_changes_nothing_and_masks_secrets(lab2):
    before = {n: lab2.tree_digest(n, *NODE_PATHS) for n in ("node1", "node2")}
    res = rb(lab2, "run", "full-rebuild", "-i", str(lab2.inventory), "--dry-run")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "== 4. teardown (phase)" in out and "k3s-agent-uninstall.sh" in out
    assert "GITHUB_TOKEN=***" in out and GIT_TOKEN not in out
    res2 = rb(lab2, "run", "agent-replace", "-i", str(lab2.inventory), "--dry-run", "--param", "agent=node2")
    assert res2.returncode == 0, res2.stderr
    # What the join-agent and delete-node actions send, recorded from their own code.
    assert "[node2] sudo -n -- sh -c" in res2.stdout and "   # stdin: ***" in res2.stdout
    assert re.search(r"^  \[api 127\.[0-9.]+:6443\] delete nodes node2$", res2.stdout, re.M), res2.stdout
    bad = rb(lab2, "run", "agent-replace", "-i", str(lab2.inventory), "--dry-run", "--param", "agent=node9")
    assert bad.returncode == 2 and "steps[1] (id delete-node)" not in bad.stderr and "unknown node 'node9'" in bad.stderr
    assert {n: lab2.tree_digest(n, *NODE_PATHS) for n in ("node1", "node2")} == before
    assert lab2.runs_list() == []


def test_manual_step_with_yes_fails_fast_before_the_wipe(lab2):
    before_runs = runs(lab2)
    res = rb(lab2, "run", "full-rebuild", "-i", str(lab2.inventory), "--yes")
    assert res.returncode == 7, res.stdout + res.stderr
    assert "--approve confirm-wipe" in res.stderr
    run = new_run(lab2, before_runs)
    s = steps(lab2, run)
    assert [s[k]["status"] for k in ("preflight", "backup", "confirm-wipe", "teardown")] == ["ok", "ok", "failed", "pending"]


def test_full_rebuild_runbook(lab2):
    data_before = lab2.tree_digest("node2", "mnt/k8s-storage")
    before_runs = runs(lab2)
    res = rb(lab2, "run", "full-rebuild", "-i", str(lab2.inventory), "--yes", "--approve", "confirm-wipe", timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    run = new_run(lab2, before_runs)
    rec = journal(lab2, run)
    assert rec["status"] == "succeeded"
    assert all(s["status"] == "ok" and s["ended_at"] >= s["started_at"] for s in rec["runbook"]["steps"])
    report = json.loads((lab2.runs / run / "runbook-report.json").read_text())
    assert [s["id"] for s in report["steps"]][:3] == ["preflight", "backup", "confirm-wipe"]
    assert all(s["duration_s"] is not None for s in report["steps"])
    md = (lab2.runs / run / "runbook-report.md").read_text()
    assert "| 4 | `teardown`" in md and GIT_TOKEN not in md
    assert (lab2.runs / run / "report.md").exists()
    assert lab2.tree_digest("node2", "mnt/k8s-storage") == data_before


def test_flux_rebootstrap(lab2):
    res = rb(lab2, "run", "flux-rebootstrap", "-i", str(lab2.inventory), "--yes")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr


def test_agent_replace(lab2):
    before_runs = runs(lab2)
    password = lab2.node_file("node2", "/etc/rancher/node/password").read_text()
    res = rb(lab2, "run", "agent-replace", "-i", str(lab2.inventory), "--yes", "--param", "agent=node2", timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    run = new_run(lab2, before_runs)
    s = steps(lab2, run)
    assert s["delete-node"]["message"] == "deleted Node node2"
    assert s["rejoin"]["status"] == "ok" and s["pods-ready"]["status"] == "ok"
    # The wipe removed the node password, so node2 registered with a new one.
    assert lab2.node_file("node2", "/etc/rancher/node/password").read_text() != password
    token = (lab2.runs / sorted(r for r in before_runs if "runbook" in r)[-1] / "backup" / "k3s-token.new")
    text = (lab2.runs / run / "commands.log").read_text() + res.stdout + res.stderr
    if token.exists():
        assert token.read_text().strip() not in text


def _api(full, run_id):
    """A CoreV1Api on the kubeconfig that run ``run_id`` wrote (as the operator would use it)."""
    from kubernetes import client, config
    return client.CoreV1Api(config.new_client_from_config(str(full.runs / run_id / "kubeconfig")))


def test_restore_datastore(lab2):
    before_runs = runs(lab2)
    res = rb(lab2, "run", "full-rebuild", "-i", str(lab2.inventory), "--only", "backup")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    backup_run = new_run(lab2, before_runs)
    assert (lab2.runs / backup_run / "backup" / "node1" / "state.db").exists()
    # An object created after the backup: the restore must take the cluster back to before it.
    api = _api(lab2, sorted(r for r in runs(lab2) if (lab2.runs / r / "kubeconfig").exists())[-1])
    api.create_namespaced_config_map("default", {"metadata": {"name": "after-backup"}, "data": {"k": "v"}})
    before_runs = runs(lab2)
    res = rb(lab2, "run", "restore-datastore", "-i", str(lab2.inventory), "--yes", "--approve", "confirm",
             "--param", f"run={backup_run}", timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    run = new_run(lab2, before_runs)
    s = steps(lab2, run)
    assert all(step["status"] == "ok" for step in s.values()), s
    assert "objects ready" in s["converge"]["message"]
    assert lab2.node_file("node1", "/var/lib/rancher/k3s/server/db/state.db.drtool-before-restore").exists()
    names = [cm.metadata.name for cm in _api(lab2, run).list_namespaced_config_map("default").items]
    assert "after-backup" not in names


class Pty:
    """The CLI in a pseudo-terminal: answers prompts as an operator types them (bounded waits)."""

    def __init__(self, full, args):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # child
            os.chdir(REPO)
            os.execve(sys.executable, [sys.executable, "-c", PROGRAM, *args], full.env())
        self.buffer = ""

    def expect(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.buffer:
            left = deadline - time.monotonic()
            assert left > 0, f"timed out waiting for {text!r}; got:\n{self.buffer[-2000:]}"
            ready, _, _ = select.select([self.fd], [], [], min(left, 1))
            if ready:
                try:
                    chunk = os.read(self.fd, 4096).decode(errors="replace")
                except OSError:
                    chunk = ""
                assert chunk, f"exited while waiting for {text!r}; got:\n{self.buffer[-2000:]}"
                self.buffer += chunk
        seen, self.buffer = self.buffer.split(text, 1)
        return seen + text

    def send(self, line: str) -> None:
        os.write(self.fd, (line + "\n").encode())

    def wait(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                try:
                    while os.read(self.fd, 4096):
                        pass
                except OSError:
                    pass
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                try:
                    os.read(self.fd, 4096)
                except OSError:
                    pass
        os.kill(self.pid, 9)
        raise AssertionError("the CLI did not exit")


def test_step_mode_through_a_terminal_then_resume(lab2, tmp_path):
    mark = tmp_path / "flaky-once"
    book = write_book(tmp_path / "interactive.yaml", [
        {"id": "hello", "title": "Say hello", "remote": {"on": "all", "command": "echo hello-from-$(hostname)"}},
        {"id": "skip-me", "title": "Leave a marker", "remote": {"on": "servers", "sudo": True,
                                                                 "command": "touch /var/lib/skipped-marker"}},
        {"id": "flaky", "title": "Fails once", "local": {"command": f"test -e {mark} || {{ touch {mark}; echo first try fails; exit 1; }}"}},
        {"id": "later", "title": "Runs after resume", "local": {"command": "echo later"}},
    ])
    before_runs = runs(lab2)
    term = Pty(lab2, ["run", str(book), "-i", str(lab2.inventory), "--step"])
    term.expect("Step hello: [r]un/[s]kip/[q]uit: ")
    term.send("r")
    term.expect("Step skip-me: [r]un/[s]kip/[q]uit: ")
    term.send("s")
    term.expect("Step flaky: [r]un/[s]kip/[q]uit: ")
    term.send("run")
    term.expect("Step flaky failed. [r]etry/[s]kip/[q]uit: ")
    term.send("r")
    term.expect("Step later: [r]un/[s]kip/[q]uit: ")
    term.send("q")
    assert term.wait() == 130
    run = new_run(lab2, before_runs)
    s = steps(lab2, run)
    assert [s[k]["status"] for k in ("hello", "skip-me", "flaky", "later")] == ["ok", "skipped", "ok", "pending"]
    assert s["flaky"]["attempts"] == 2 and "hello-from-node1" in s["hello"]["output"]
    assert not lab2.node_file("node1", "/var/lib/skipped-marker").exists()
    res = rb(lab2, "run", str(book), "-i", str(lab2.inventory), "--resume", run)
    assert res.returncode == 0, res.stdout + res.stderr
    s = steps(lab2, run)
    assert s["later"]["status"] == "ok" and s["hello"]["attempts"] == 1 and s["flaky"]["attempts"] == 2


def test_failure_leaves_a_journal_and_resume_does_not_repeat(lab2, tmp_path):
    gate = tmp_path / "gate"
    counter = "/var/lib/runbook-counter"
    definition = [
        {"id": "count", "title": "Count runs", "remote": {"on": ["node2"], "sudo": True, "command": f"echo run >> {counter}"}},
        {"id": "gate", "title": "Needs the gate", "local": {"command": f"test -e {gate}"}, "retries": 1, "retry_delay": "0.1s"},
        {"id": "after", "title": "After the gate", "wait": {"seconds": "0.1s"}},
    ]
    book = write_book(tmp_path / "gated.yaml", definition)
    before_runs = runs(lab2)
    res = rb(lab2, "run", str(book), "-i", str(lab2.inventory))
    assert res.returncode == 1, res.stdout + res.stderr
    run = new_run(lab2, before_runs)
    assert f"--resume {run}" in res.stderr
    s = steps(lab2, run)
    assert [s[k]["status"] for k in ("count", "gate", "after")] == ["ok", "failed", "pending"]
    assert s["gate"]["attempts"] == 2
    gate.touch()
    res = rb(lab2, "run", str(book), "-i", str(lab2.inventory), "--resume", run)
    assert res.returncode == 0, res.stdout + res.stderr
    assert lab2.node_file("node2", counter).read_text() == "run\n"
    assert journal(lab2, run)["status"] == "succeeded"

    # A second failing run, then the runbook is edited: resuming it is refused.
    gate.unlink()
    before_runs = runs(lab2)
    assert rb(lab2, "run", str(book), "-i", str(lab2.inventory)).returncode == 1
    failed_run = new_run(lab2, before_runs)
    definition[1]["local"]["command"] = "true"
    write_book(book, definition)
    res = rb(lab2, "run", str(book), "-i", str(lab2.inventory), "--resume", failed_run)
    assert res.returncode == 2
    assert res.stderr.strip() == (f"error: {book}: steps[1] (id gate): step changed since run {failed_run} "
                                  "(definition hash differs); start a new run instead of resuming")
    assert lab2.node_file("node2", counter).read_text() == "run\nrun\n"
