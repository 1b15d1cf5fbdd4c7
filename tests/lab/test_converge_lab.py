"""The converge engine against the lab's real HTTPS Kubernetes API, through the official client.

The lab API server runs in-process (its own event loop in a thread); the test creates objects
and flips their status through its store, then checks what the engine sees, including after a
forced 410, a 503 burst and a window of refused connections.
"""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from drtool.converge import ConvergeOptions, Converger, snapshot
from drtool.errors import PermanentError, RetryableError
from drtool.kube.client import KubePermanent, api_client_from_kubeconfig

pytestmark = [pytest.mark.lab, pytest.mark.timeout(120)]

FLUX = (("source.toolkit.fluxcd.io", "v1", "GitRepository", "gitrepositories"),
        ("kustomize.toolkit.fluxcd.io", "v1", "Kustomization", "kustomizations"),
        ("helm.toolkit.fluxcd.io", "v2", "HelmRelease", "helmreleases"))
T = "2026-11-26T10:00:00Z"


class LabApi:
    """The lab API server in a background event loop, on a free loopback port."""

    def __init__(self, tmp_path):
        from drtool.lab.api import LabApiServer
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="lab-api", daemon=True)
        self.thread.start()
        self.server = LabApiServer("127.0.0.1", 0, bookmark_interval=0.5)
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        for group, version, kind, plural in FLUX:
            self.call(self.server.store.register_kind, group, version, kind, plural, True)
        self.kubeconfig = self.server.write_kubeconfig(tmp_path / "kubeconfig.yaml")

    def call(self, fn, *args, **kw):
        return self.server.threadsafe(fn, *args, **kw)

    def create(self, obj):
        status = obj.pop("status", None)
        created = self.call(self.server.store.create, obj)
        if status is not None:
            self.set_status(obj, status)
        return created

    def set_status(self, obj, status):
        api_version = obj["apiVersion"]
        group = api_version.split("/")[0] if "/" in api_version else ""
        meta = obj["metadata"]
        return self.call(self.server.store.update_status, group, obj["kind"], meta.get("namespace"),
                         meta["name"], status)

    def refuse(self, seconds):
        asyncio.run_coroutine_threadsafe(self.server.refuse_connections(seconds), self.loop).result(10)

    def close(self):
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def lab(tmp_path):
    api = LabApi(tmp_path)
    yield api
    api.close()


def ks(name, ready, depends=(), health=()):
    return {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": "flux-system"},
            "spec": {"path": f"./{name}", "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
                     "dependsOn": [{"name": d} for d in depends], "healthChecks": list(health)},
            "status": ks_status(ready)}


def ks_status(ready, reason=None, message=""):
    return {"observedGeneration": 1, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": T,
         "reason": reason or ("ReconciliationSucceeded" if ready else "Progressing"), "message": message}]}


def hr(name, ns):
    return {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"chart": {"spec": {"chart": name, "version": "6.21.0"}}},
            "status": {"observedGeneration": 1, "conditions": [
                {"type": "Ready", "status": "False", "reason": "Progressing", "message": "installing",
                 "lastTransitionTime": T}]}}


def pod(name, ns, status):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"containers": [{"name": "c", "image": "registry.local/app:1"}]}, "status": status}


READY_POD = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
             "containerStatuses": [{"name": "c", "ready": True, "restartCount": 0, "state": {"running": {}}}]}


def namespaces(lab, *names):
    for n in names:
        lab.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}})


def start(converger):
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("result", converger.run()), daemon=True)
    t.start()
    return t, box


def wait_until(predicate, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("not reached in time")


def test_sees_ready_and_survives_410_503_and_refused(lab):
    namespaces(lab, "flux-system", "logging")
    lab.create(ks("infrastructure", ready=False,
                  health=[{"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                           "name": "loki", "namespace": "logging"}]))
    lab.create(ks("workloads", ready=False, depends=["infrastructure"]))
    lab.create(hr("loki", "logging"))
    client = api_client_from_kubeconfig(str(lab.kubeconfig))
    conv = Converger(client, ConvergeOptions(
        deadline_s=60, expected_helmreleases=(("logging", "loki", "6.21.0"),),
        expected_kustomizations=("flux-system/workloads",)),
        watcher_options={"backoff_initial_s": 0.05, "backoff_max_s": 0.5})
    thread, box = start(conv)
    wait_until(lambda: all(conv.watcher.synced()[k] for k in ("Pod", "Kustomization", "HelmRelease")))

    lab.server.fail_requests(seconds=1.0)             # a 503 burst: reconnects back off, then resume
    lab.server.expire_watches()
    lab.create(pod("loki-0", "logging", READY_POD))
    wait_until(lambda: conv.watcher.get("Pod", "logging", "loki-0") is not None)

    lab.refuse(2.0)                                   # connection refused for 2 s...
    # ...while things change, and the history is compacted: resuming gets 410 Gone, so the
    # watcher must list again, and must still not miss a change.
    lab.set_status(hr("loki", "logging"), {
        "observedGeneration": 1, "history": [{"chartName": "loki", "chartVersion": "6.21.0"}],
        "conditions": [{"type": "Ready", "status": "True", "reason": "InstallSucceeded", "message": "ok",
                        "lastTransitionTime": T}]})
    lab.set_status(ks("infrastructure", True), ks_status(True))
    lab.server.expire_watches()
    time.sleep(2.5)
    lab.set_status(ks("workloads", True), ks_status(True))
    thread.join(30)
    res = box["result"]
    assert res.converged, res.summary()
    assert [s["id"] for s in res.critical_path][-2:] == ["Kustomization/flux-system/infrastructure",
                                                         "Kustomization/flux-system/workloads"]
    assert conv.watcher.stats()["HelmRelease"]["relists"] >= 2
    # Requests stayed per kind, never per object: no per-object GETs, and each kind was listed
    # successfully only at its start and after each outage (failed attempts during the outage
    # depend on the backoff timing, so they are not counted here).
    assert res.api_requests.get("get", 0) == 0, res.api_requests
    assert all(s["relists"] <= 5 for s in conv.watcher.stats().values()), conv.watcher.stats()


@pytest.mark.parametrize("case", ["stalled", "crashloop", "unschedulable"])
def test_fails_fast_with_the_right_message(lab, case):
    namespaces(lab, "flux-system", "logging", "llm")
    lab.create(ks("infrastructure", ready=False,
                  health=[{"kind": "HelmRelease", "name": "loki", "namespace": "logging"}]))
    lab.create(ks("workloads", ready=False, depends=["infrastructure"]))
    lab.create(hr("loki", "logging"))
    client = api_client_from_kubeconfig(str(lab.kubeconfig))
    conv = Converger(client, ConvergeOptions(deadline_s=60, unschedulable_grace_s=1.0))
    thread, box = start(conv)
    # The Kustomizations too: the failure's chain is read from them.
    wait_until(lambda: all(conv.watcher.synced()[k] for k in ("Pod", "HelmRelease", "Kustomization")))
    began = time.monotonic()
    if case == "stalled":
        # The failed installs' event comes first, as helm-controller records it before it stalls.
        lab.create({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "loki.1", "namespace": "logging"},
                    "involvedObject": {"kind": "HelmRelease", "name": "loki", "namespace": "logging"},
                    "reason": "InstallFailed", "message": "Helm install failed: timed out", "count": 2,
                    "lastTimestamp": T})
        lab.set_status(hr("loki", "logging"), {"observedGeneration": 1, "conditions": [
            {"type": "Stalled", "status": "True", "reason": "RetriesExceeded",
             "message": "Failed to install after 3 attempt(s)", "lastTransitionTime": T},
            {"type": "Ready", "status": "False", "reason": "InstallFailed", "message": "install failed",
             "lastTransitionTime": T}]})
    elif case == "crashloop":
        lab.create(pod("llama-cpp-1", "llm", {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "False"}], "containerStatuses": [
            {"name": "c", "ready": False, "restartCount": 5,
             "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 2m40s restarting"}}}]}))
    else:
        lab.create(pod("llama-cpp-1", "llm", {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "lastTransitionTime": T,
             "message": "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."}]}))
    thread.join(10)
    elapsed = time.monotonic() - began
    res = box["result"]
    assert res.outcome == "failed" and elapsed < 5
    (failure,) = res.failures
    if case == "stalled":
        assert failure.object == "HelmRelease/logging/loki" and failure.reason == "RetriesExceeded"
        assert failure.chain == "workloads waits on infrastructure which waits on HelmRelease logging/loki"
        assert "InstallFailed: Helm install failed: timed out (x2)" in failure.events
    elif case == "crashloop":
        assert failure.reason == "CrashLoopBackOff" and "restarted 5 times" in failure.message
    else:
        assert failure.reason == "Unschedulable" and "node affinity/selector" in failure.message
        assert elapsed >= 1.0


def test_snapshot_lists_once(lab):
    namespaces(lab, "app")
    lab.create(pod("web", "app", READY_POD))
    client = api_client_from_kubeconfig(str(lab.kubeconfig))
    snap = snapshot(client, ConvergeOptions(deadline_s=1))
    assert snap.ok and snap.counts["Pod"] == (1, 1)
    assert "watch" not in snap.api_requests


def test_api_errors_are_wrapped(lab, tmp_path):
    import socket
    import yaml
    config = yaml.safe_load(lab.kubeconfig.read_text())
    with socket.socket() as s:                         # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        free_port = s.getsockname()[1]
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port}"
    refused = tmp_path / "refused.yaml"
    refused.write_text(yaml.safe_dump(config))
    with pytest.raises(RetryableError):
        snapshot(api_client_from_kubeconfig(str(refused)), ConvergeOptions(deadline_s=1))
    config = yaml.safe_load(lab.kubeconfig.read_text())
    config["users"][0]["user"] = {"token": "not-a-valid-token"}
    bad_auth = tmp_path / "bad-auth.yaml"
    bad_auth.write_text(yaml.safe_dump(config))
    with pytest.raises(KubePermanent) as info:
        snapshot(api_client_from_kubeconfig(str(bad_auth)), ConvergeOptions(deadline_s=1))
    assert isinstance(info.value, PermanentError) and info.value.status == 401
    assert "not-a-valid-token" not in str(info.value)
    with pytest.raises(PermanentError, match="cannot load kubeconfig"):
        api_client_from_kubeconfig(str(tmp_path / "missing.yaml"))
