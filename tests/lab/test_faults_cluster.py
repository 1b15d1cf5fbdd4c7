"""Fault matrix, cluster side: the API, Flux and the workloads misbehave during `inv rebuild`.

One 2-node lab for the module; each test picks the scenario the next K3s install plays
(shipped in drtool/lab/scenarios/, the ``fault-*`` ones written for this suite). A fault
either heals and the rebuild succeeds, or the run stops with the exit code, a one-line
cause and a partial report, within a bound.

The workload faults that stop the convergence wait (a stalled HelmRelease, CrashLoopBackOff,
pods left Unschedulable by a missing node label) are checked once, with the same bounds, in
test_converge_acceptance.py: each costs a whole rebuild.
"""
from __future__ import annotations

import calendar
import json
import re
import time

import pytest

from .faults_support import (Outcome, assert_one_line_error, assert_partial_report, node_log, rebuild,
                             use_scenario)
from .fulllab import FullLab, start_full_lab, stop_full_lab_dir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

BAD_TOKEN = "ghp_revokedFAULTtoken000000000000000000"  # listed in fault-bad-token.yaml


@pytest.fixture(scope="module")
def lab2():
    full = start_full_lab("127.0.131", nodes=2)
    yield full
    stop_full_lab_dir(full.lab)


def _k3s_log_times(full: FullLab, message: str) -> list[float]:
    """Epoch seconds of the server log lines (this install's log) that contain ``message``."""
    times = []
    for line in node_log(full, "node1", "k3s").splitlines():
        if message in line:
            stamp = re.search(r'time="([^"]+)"', line).group(1)
            times.append(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))
    return times


def _played_during(out: Outcome, full: FullLab, message: str, first: str, last: str) -> None:
    """The K3s server played the fault (``message`` logged) while drtool was in phases first..last."""
    times = _k3s_log_times(full, message)
    assert times, f"the server never logged {message!r}: the fault was not played"
    start, end = out.phase(first)["started_at"], out.phase(last)["ended_at"]
    # The log has one-second resolution.
    assert any(start - 1 <= t <= end + 1 for t in times), (message, times, start, end)


def _commands(out: Outcome, step: str) -> list[dict]:
    entries = [json.loads(line) for line in (out.run / "commands.log").read_text().splitlines()]
    return [e for e in entries if e.get("step") == step]


# The scenario ships a 20 s refusal; 6 s is still three times the readyz wait's longest
# backoff (tenacity wait_exponential(0.1, max=2) in drtool/phases/install.py), so the wait
# must retry through it; the figure itself is this test's parameter.
REFUSE_S = 6
READYZ_MAX_BACKOFF_S = 2


def test_api_refusing_connections_after_install_is_waited_out(lab2):
    assert REFUSE_S >= 3 * READYZ_MAX_BACKOFF_S
    use_scenario(lab2, "fault-api-refuse-20s", api={"refuse_after_start": REFUSE_S})
    out = rebuild(lab2, timeout=200)
    assert out.code == 0, out.tail()
    assert "Traceback" not in out.output
    assert _k3s_log_times(lab2, f"refusing API connections for {REFUSE_S}")
    # The readyz wait is what absorbed the outage, bounded by install_servers' 60 s.
    steps = out.phase("install_servers")["nodes"]["node1"]
    readyz = next(s for s in steps if s["step"] == "wait readyz")
    assert readyz["ended_at"] - readyz["started_at"] >= REFUSE_S / 2, readyz
    assert out.journal()["status"] == "succeeded"
    assert out.elapsed < 90, out.elapsed


def test_503_burst_during_the_convergence_wait_is_retried(lab2):
    use_scenario(lab2, "fault-api-503-converge")
    out = rebuild(lab2, timeout=200)
    assert out.code == 0, out.tail()
    assert "Traceback" not in out.output
    _played_during(out, lab2, "answering 503", "converge", "converge")
    assert out.journal()["converge"]["converged"] is True
    assert out.elapsed < 90, out.elapsed


def test_watch_410_gone_during_the_convergence_wait_relists_and_converges(lab2):
    use_scenario(lab2, "fault-watch-410-converge")
    out = rebuild(lab2, timeout=200)
    assert out.code == 0, out.tail()
    assert "Traceback" not in out.output
    _played_during(out, lab2, "expiring watches", "converge", "converge")
    converge = out.journal()["converge"]
    assert converge["converged"] is True
    # Every watch ended at once; drtool had to open new ones (and re-list) to see the end.
    assert converge["api_requests"]["watch"] > converge["api_requests"]["list"] // 2, converge["api_requests"]
    assert out.elapsed < 90, out.elapsed


def test_flux_bootstrap_failing_once_is_retried(lab2):
    use_scenario(lab2, "fault-bootstrap-once")
    out = rebuild(lab2)
    assert out.code == 0, out.tail()
    assert "retrying flux bootstrap (attempt 2/3)" in out.proc.stdout
    assert out.phase("bootstrap")["message"].endswith("after 2 attempts"), out.phase("bootstrap")
    assert [e["exit_code"] != 0 for e in _commands(out, "bootstrap")] == [True, False]
    assert "502 Bad Gateway" in (out.run / "bootstrap.log").read_text()
    assert out.elapsed < 90, out.elapsed


def test_flux_bootstrap_with_a_revoked_token_fails_at_once(lab2):
    use_scenario(lab2, "fault-bad-token")
    out = rebuild(lab2, env=lab2.env(GITHUB_TOKEN=BAD_TOKEN))
    line = assert_one_line_error(out.output, out.code, 1, "not retried", "401 Bad credentials")
    assert "flux bootstrap failed" in line
    assert_partial_report(out, "bootstrap")
    assert len(_commands(out, "bootstrap")) == 1, "a permanent failure must not be retried"
    bootstrap = out.phase("bootstrap")
    assert bootstrap["ended_at"] - bootstrap["started_at"] < 15
    assert BAD_TOKEN not in out.output and BAD_TOKEN not in (out.run / "bootstrap.log").read_text()
    assert out.elapsed < 60, out.elapsed
