"""Shared helpers of the fault-injection suite (tests/lab/test_faults_*.py).

Every fault test runs ``inv rebuild`` as an operator would and checks what the operator
sees: the exit code, a one-line ``error:`` naming the cause (never a traceback), a
partial report saying where the run stopped, and the time it took.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from drtool.lab.scenarios import builtin_scenario_path, load_scenario
from drtool.lab.setup import update_lab_json

from .fulllab import REPO, FullLab

# What a wipe changes or a rebuild must keep: K3s's files and units, and the users' data.
# (Not all of /etc or /var/lib: a node's overlays show the host's too, and hashing those is slow.)
NODE_PATHS = ("etc/rancher", "etc/systemd/system", "var/lib/rancher", "var/lib/kubelet", "usr/local/bin", "mnt")


@dataclass
class Outcome:
    """One finished ``inv`` process: its result, wall time and the run directory it wrote."""

    proc: subprocess.CompletedProcess
    elapsed: float
    run: Path | None

    @property
    def code(self) -> int:
        return self.proc.returncode

    @property
    def output(self) -> str:
        return self.proc.stdout + self.proc.stderr

    def journal(self) -> dict:
        assert self.run is not None, "the command wrote no run directory"
        return json.loads((self.run / "journal.json").read_text())

    def report(self) -> dict:
        assert self.run is not None, "the command wrote no run directory"
        return json.loads((self.run / "report.json").read_text())

    def phase(self, name: str) -> dict:
        return next(p for p in self.journal()["phases"] if p["name"] == name)

    def tail(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.proc.stdout[-3000:]}\n--- stderr\n{self.proc.stderr[-2000:]}"


def rebuild(full: FullLab, *args: str, env: dict | None = None, timeout: float = 240) -> Outcome:
    """``inv rebuild -i INVENTORY --yes ARGS``; the Outcome names the run dir it created (if any)."""
    before = set(full.runs_list())
    t0 = time.monotonic()
    proc = full.inv("rebuild", "-i", str(full.inventory), "--yes", *args, env=env, timeout=timeout)
    elapsed = time.monotonic() - t0
    new = sorted(set(full.runs_list()) - before)
    return Outcome(proc, elapsed, new[-1] if new else None)


def spawn_rebuild(full: FullLab, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.Popen:
    """``inv rebuild`` in the background (run through ``prefix``, e.g. ``unshare ... --``),
    stdout and stderr merged, read line by line."""
    argv = [*prefix, sys.executable, "-m", "invoke", "rebuild", "-i", str(full.inventory), "--yes", *args]
    return subprocess.Popen(argv, cwd=REPO, env=full.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, stdin=subprocess.DEVNULL)


def spawned_outcome(proc: subprocess.Popen, output: str, elapsed: float, run: Path) -> Outcome:
    """The Outcome of a spawned (and finished) rebuild whose run dir is known."""
    return Outcome(subprocess.CompletedProcess(proc.args, proc.returncode, output, ""), elapsed, run)


def run_dir_of(full: FullLab, first_line: str) -> Path:
    """The run directory named on the 'rebuild of cluster … — run ID (DIR)' line."""
    return full.runs / first_line.split("— run ", 1)[1].split()[0]


def read_until(proc: subprocess.Popen, marker: str, seen: list[str], timeout: float = 120) -> str:
    """Read the process's output until a line contains ``marker``; fails at EOF or after ``timeout``."""
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            return line
        assert time.monotonic() < deadline, f"{marker!r} not seen within {timeout:g}s:\n{''.join(seen)[-3000:]}"
    raise AssertionError(f"output ended before {marker!r}:\n{''.join(seen)[-3000:]}")


def finish(proc: subprocess.Popen, seen: list[str], timeout: float = 240) -> str:
    """Wait (bounded) for a spawned process; returns all of its output."""
    try:
        rest, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    return "".join(seen) + (rest or "")


def assert_one_line_error(output: str, code: int, expected: int, *needles: str) -> str:
    """The operator sees exit ``expected`` and an ``error:`` line naming every needle; no traceback."""
    assert code == expected, f"exit {code}, expected {expected}:\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]
    assert "internal error" not in output, output[-3000:]
    line = next((ln for ln in output.splitlines() if ln.startswith("error: ")), None)
    assert line is not None, f"no 'error:' line:\n{output[-3000:]}"
    for needle in needles:
        assert needle in output, f"{needle!r} not in the output:\n{output[-3000:]}"
    return line


def assert_partial_report(outcome: Outcome, stopped_at: str) -> dict:
    """report.json says the run is partial and where it stopped; the journal agrees."""
    report = outcome.report()
    assert report.get("partial") is True, report.get("partial")
    assert report.get("stopped_at") == stopped_at, report.get("stopped_at")
    assert outcome.journal()["stopped_at"] == stopped_at
    for name in ("report.md", "report.html"):
        assert (outcome.run / name).is_file(), name
    return report


def use_scenario(full: FullLab, name: str, **changes: dict) -> None:
    """Make the next K3s install play the shipped scenario ``name`` (flux CLI counters reset).

    ``changes`` replace fields of the scenario's sections (``api={"refuse_after_start": 6}``
    keeps the rest of ``api``): a test shortens a wait that is its own parameter, not the
    behaviour it checks, without changing the scenario the lab ships. The changed scenario is
    written into the lab dir and checked by the lab's own loader."""
    path = builtin_scenario_path(name)
    if changes:
        data = yaml.safe_load(path.read_text())
        for section, values in changes.items():
            data[section] = {**(data.get(section) or {}), **values}
        path = full.lab.root / f"scenario-{name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        load_scenario(path)   # a typo in a test's change fails here, not as a silent default
    update_lab_json(full.lab, scenario=str(path))
    (full.lab.root / "state" / "flux.json").unlink(missing_ok=True)


def node_log(full: FullLab, node: str, unit: str) -> str:
    """The node's log of a K3s unit (what `journalctl -u UNIT` shows), or '' when absent."""
    path = full.node_file(node, f"/var/log/{unit}.log")
    return path.read_text(errors="replace") if path.exists() else ""
