"""The converge engine's time rules driven by its injected clock, not the wall clock.

Grace periods and deadlines are read from ``clock``; these tests move it by hand, so a busy
machine (or many test workers) cannot make them pass or fail by being slow.
"""
from __future__ import annotations

import threading
import time

from drtool.converge import ConvergeOptions, Converger
from drtool.kube.fake import InMemoryApi

from tests.unit.test_converge import frozen_cluster, homelab, pod


class ManualClock:
    """Monotonic seconds that move only when a test moves them."""

    def __init__(self, t: float = 100.0):
        self.t = t
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.t

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.t += seconds


def _start(api, options, clock):
    out: dict = {}
    worker = threading.Thread(target=lambda: out.update(r=Converger(api, options, clock=clock, tick_s=0.01).run()),
                              daemon=True)
    worker.start()
    return worker, out


def _still_waiting(worker, settle_s: float = 0.3) -> bool:
    # Enough real ticks for the engine to have decided if its clock allowed it; the clock decides.
    worker.join(settle_s)
    return worker.is_alive()


def test_unschedulable_fails_exactly_when_its_grace_has_passed_on_the_engine_clock():
    api = InMemoryApi()
    api.put(pod("llm", "llama-1", ready=False, phase="Pending", unschedulable=True))
    clock = ManualClock()
    worker, out = _start(api, ConvergeOptions(deadline_s=1000, unschedulable_grace_s=30), clock)
    assert _still_waiting(worker)
    clock.advance(29.0)
    assert _still_waiting(worker)
    clock.advance(1.5)
    worker.join(10)
    res = out["r"]
    assert res.outcome == "failed" and res.failures[0].reason == "Unschedulable"


def test_deadline_is_the_engine_clock_not_the_wall_clock():
    api = InMemoryApi()
    homelab(api, loki_ready=False)
    clock = ManualClock()
    started = time.monotonic()
    worker, out = _start(api, ConvergeOptions(deadline_s=600, keep_waiting=True), clock)
    assert _still_waiting(worker)
    clock.advance(600.0)
    worker.join(10)
    res = out["r"]
    assert res.outcome == "deadline" and "HelmRelease/logging/loki" in res.pending
    assert time.monotonic() - started < 10  # ten minutes of engine time, in well under a second of ours


def test_a_stalled_release_fails_fast_without_the_clock_moving():
    api = InMemoryApi()
    homelab(api, loki_ready=False, loki_stalled=True)
    clock = ManualClock()
    worker, out = _start(api, ConvergeOptions(deadline_s=600), clock)
    worker.join(10)
    assert not worker.is_alive()
    assert out["r"].outcome == "failed" and out["r"].failures[0].reason == "RetriesExceeded"
    assert clock() == 100.0


def test_a_stuck_cluster_is_declared_stuck_only_after_its_grace_on_the_engine_clock():
    api = InMemoryApi()
    frozen_cluster(api)
    clock = ManualClock()
    worker, out = _start(api, ConvergeOptions(deadline_s=1000, stuck_grace_s=60), clock)
    assert _still_waiting(worker)
    clock.advance(59.0)
    assert _still_waiting(worker)
    clock.advance(2.0)
    worker.join(10)
    assert out["r"].outcome == "stuck" and out["r"].failures[0].reason == "ReconciliationFailed"
