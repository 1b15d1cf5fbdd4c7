"""The watcher against an in-memory list/watch API, with a controlled clock.

What a user relies on: every object is seen once listed, readiness changes are recorded with
the clock's time, and outages, dropped streams and expired resourceVersions lose nothing.
"""
from __future__ import annotations

import time

import pytest

from drtool.kube.fake import InMemoryApi
from drtool.kube.watcher import DEFAULT_KINDS, KindSpec, Watcher, trim

PODS = (KindSpec("", "Pod", "pods", ("v1",)),)
KS = (KindSpec("kustomize.toolkit.fluxcd.io", "Kustomization", "kustomizations", ("v1", "v1beta2")),)


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def pod(name, ready, ns="app", restarts=0):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns,
                                                           "managedFields": [{"x": "y" * 500}]},
            "spec": {"containers": [{"name": "c", "image": "i", "env": [{"name": "A", "value": "b" * 300}]}]},
            "status": {"phase": "Running",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "containerStatuses": [{"name": "c", "ready": ready, "restartCount": restarts,
                                              "state": {"running": {}}}]}}


def ks(name, ready, generation=1):
    return {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": "flux-system", "generation": generation},
            "spec": {"path": "./x", "sourceRef": {"kind": "GitRepository", "name": "flux-system"}},
            "status": {"observedGeneration": 1, "inventory": {"entries": [{"id": "x" * 100}] * 50},
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                       "reason": "ReconciliationSucceeded" if ready else "DependencyNotReady",
                                       "message": ""}]}}


def wait_for(predicate, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def api():
    return InMemoryApi()


def make(api, kinds=PODS, clock=None, **kw):
    kw.setdefault("backoff_initial_s", 0.01)
    kw.setdefault("backoff_max_s", 0.05)
    kw.setdefault("absent_retry_s", 0.05)
    return Watcher(api, kinds, clock=clock or FakeClock(), **kw)


def test_list_then_watch_records_first_seen_and_ready_at(api):
    clock = FakeClock(1000.0)
    api.put(pod("a", ready=False))
    with make(api, clock=clock) as w:
        wait_for(lambda: w.synced()["Pod"])
        rec = w.get("Pod", "app", "a")
        assert rec.first_seen == 1000.0 and rec.ready_at is None
        assert rec.status.state == "InProgress"
        clock.t = 1005.5
        api.put(pod("a", ready=True))
        wait_for(lambda: w.get("Pod", "app", "a").ready_at is not None)
        rec = w.get("Pod", "app", "a")
        assert rec.ready_at == 1005.5
        assert [(h.at, h.state) for h in rec.history] == [(1000.0, "InProgress"), (1005.5, "Current")]


def test_deleted_objects_disappear(api):
    api.put(pod("a", ready=True))
    with make(api) as w:
        wait_for(lambda: w.get("Pod", "app", "a") is not None)
        api.delete("Pod", "app", "a")
        wait_for(lambda: w.get("Pod", "app", "a") is None)


def test_requests_do_not_grow_with_object_count(api):
    for i in range(300):
        api.put(pod(f"p{i}", ready=True))
    with make(api, page_size=1000) as w:
        wait_for(lambda: len(w.records("Pod")) == 300)
        for i in range(300):
            api.put(pod(f"p{i}", ready=False))
        wait_for(lambda: all(not r.status.current for r in w.records("Pod")))
    assert api.requests == {"list": 1, "watch": 1}


def test_survives_outage_and_dropped_streams_without_missing_changes(api):
    api.put(pod("a", ready=False))
    with make(api) as w:
        wait_for(lambda: w.synced()["Pod"])
        api.set_down(True)
        api.put(pod("a", ready=True))       # changes while the watcher cannot see them
        api.put(pod("b", ready=True))
        time.sleep(0.2)
        api.set_down(False)
        wait_for(lambda: w.get("Pod", "app", "b") is not None and w.get("Pod", "app", "a").status.current)
        api.drop_streams()
        api.put(pod("c", ready=True))
        wait_for(lambda: w.get("Pod", "app", "c") is not None)
        assert w.stats()["Pod"]["reconnects"] >= 1
        assert w.stats()["Pod"]["relists"] == 1   # resumed from the resourceVersion, no relist


def test_relists_on_410_gone_and_drops_objects_deleted_meanwhile(api):
    api.put(pod("a", ready=True))
    api.put(pod("gone-soon", ready=True))
    with make(api) as w:
        wait_for(lambda: w.synced()["Pod"])
        api.set_down(True)
        api.delete("Pod", "app", "gone-soon")
        api.put(pod("b", ready=False))
        api.expire()                         # history forgotten: resuming now gets 410
        api.set_down(False)
        wait_for(lambda: w.get("Pod", "app", "b") is not None)
        assert w.get("Pod", "app", "gone-soon") is None
        assert w.stats()["Pod"]["relists"] >= 2


def test_missing_crd_is_absent_then_picked_up(api):
    api.served_groups["kustomize.toolkit.fluxcd.io"] = None
    with make(api, kinds=KS) as w:
        wait_for(lambda: "Kustomization" in w.absent())
        assert not w.synced()["Kustomization"]
        api.served_groups["kustomize.toolkit.fluxcd.io"] = "v1"
        api.put(ks("infrastructure", ready=True))
        wait_for(lambda: w.get("Kustomization", "flux-system", "infrastructure") is not None)
        assert w.synced()["Kustomization"] and not w.absent()


def test_prefers_the_servers_preferred_version(api):
    api.served_groups["kustomize.toolkit.fluxcd.io"] = "v1beta2"
    with make(api, kinds=KS) as w:
        wait_for(lambda: w.synced()["Kustomization"])
        assert w.stats()["Kustomization"]["version"] == "v1beta2"


def test_stop_is_prompt_with_open_watches(api):
    w = make(api, kinds=DEFAULT_KINDS)
    w.start()
    wait_for(lambda: all(w.synced().values()))
    started = time.monotonic()
    w.stop(timeout=3)
    assert time.monotonic() - started < 1.0
    assert not any(t.is_alive() for t in w._threads)


def test_trim_keeps_what_rules_need_and_drops_bulk():
    small = trim("Kustomization", ks("infrastructure", ready=True))
    assert "inventory" not in small["status"]
    assert small["status"]["conditions"][0]["reason"] == "ReconciliationSucceeded"
    assert small["spec"]["sourceRef"]["name"] == "flux-system"
    p = trim("Pod", pod("a", ready=False, restarts=2))
    assert "managedFields" not in p["metadata"] and "spec" not in p
    assert p["status"]["containerStatuses"][0]["restartCount"] == 2
    assert "containerStatuses" not in trim("Pod", pod("a", ready=True))["status"]
