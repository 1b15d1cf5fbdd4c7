"""Benchmark of the converge engine against the lab API (run directly, not collected by pytest).

    .venv/bin/python tests/bench/bench_converge.py [--objects-scale 1.0]

1. Detection latency: Kustomizations are flipped to Ready one at a time in the API; the time
   until the watcher records each one is compared with real ``kubectl wait --for=condition=Ready``
   watching the same objects (p50/p95).
2. Scale: waiting on 2,000 Flux objects + 10,000 pods in a separate client process: API requests
   made (at 1/10 and full scale, to show they do not grow with the count) and peak RSS.
3. Fail fast: time from a HelmRelease turning Stalled in the API to ``Converger.run`` returning.

Times on both sides use CLOCK_MONOTONIC, which is system-wide on Linux, so the server process
and the client process can be compared directly.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from drtool.converge import ConvergeOptions, Converger  # noqa: E402
from drtool.kube.client import api_client_from_kubeconfig  # noqa: E402

T = "2026-11-26T10:00:00Z"
FLUX = (("source.toolkit.fluxcd.io", "v1", "GitRepository", "gitrepositories"),
        ("kustomize.toolkit.fluxcd.io", "v1", "Kustomization", "kustomizations"),
        ("helm.toolkit.fluxcd.io", "v2", "HelmRelease", "helmreleases"))


def ready_cond(ready: bool, reason: str | None = None) -> list[dict]:
    return [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": T,
             "reason": reason or ("ReconciliationSucceeded" if ready else "Progressing"), "message": ""}]


def ks(name: str) -> dict:
    return {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": "flux-system"},
            "spec": {"interval": "10m", "path": f"./{name}", "prune": True,
                     "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}}


def hr(name: str, ns: str) -> dict:
    return {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"interval": "10m", "chart": {"spec": {"chart": name, "version": "1.0.0", "sourceRef": {
                "kind": "HelmRepository", "name": "charts", "namespace": "flux-system"}}}}}


def pod(name: str, ns: str) -> dict:
    # Roughly the size of a real pod (labels, owner, a container with env, status).
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns,
                         "labels": {"app.kubernetes.io/name": ns, "pod-template-hash": "7d9c5b"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{ns}-7d9c5b",
                                              "uid": "0" * 36, "controller": True}]},
            "spec": {"nodeName": "node1", "containers": [{
                "name": "app", "image": "registry.local/app:1.2.3",
                "env": [{"name": f"VAR_{i}", "value": "x" * 40} for i in range(8)],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": T},
                {"type": "Ready", "status": "False", "lastTransitionTime": T, "reason": "ContainersNotReady"}],
                "containerStatuses": [{"name": "app", "ready": False, "restartCount": 0, "image": "registry.local/app:1.2.3",
                                       "state": {"waiting": {"reason": "ContainerCreating"}}}]}}


class Lab:
    def __init__(self, workdir: Path):
        from drtool.lab.api import LabApiServer
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = LabApiServer("127.0.0.1", 0, bookmark_interval=1.0, history=50000)
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        for group, version, kind, plural in FLUX:
            self.call(self.server.store.register_kind, group, version, kind, plural, True)
        self.kubeconfig = str(self.server.write_kubeconfig(workdir / "kubeconfig.yaml"))

    def call(self, fn, *args, timeout=300.0):
        return self.server.threadsafe(fn, *args, timeout=timeout)

    def bulk_create(self, objs: list[dict]) -> None:
        store = self.server.store

        def create_all():
            for o in objs:
                status = o.pop("status", None)
                store.create(o)
                if status is not None:
                    api_version = o["apiVersion"]
                    group = api_version.split("/")[0] if "/" in api_version else ""
                    store.update_status(group, o["kind"], o["metadata"].get("namespace"),
                                        o["metadata"]["name"], status)
        self.call(create_all)

    def set_status(self, group, kind, ns, name, status) -> float:
        """Write a status; returns the monotonic time the write was committed."""
        store = self.server.store

        def write():
            store.update_status(group, kind, ns, name, status)
            return time.monotonic()
        return self.call(write)

    def close(self):
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


def bench_latency(lab: Lab, count: int = 40, gap_s: float = 0.1) -> dict:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}}
    lab.bulk_create([namespace])
    names = [f"lat-{i:03d}" for i in range(count)]
    lab.bulk_create([{**ks(n), "status": {"observedGeneration": 1, "conditions": ready_cond(False)}} for n in names])

    conv = Converger(api_client_from_kubeconfig(lab.kubeconfig), ConvergeOptions(deadline_s=120))
    result: dict = {}
    runner = threading.Thread(target=lambda: result.setdefault("r", conv.run()), daemon=True)
    runner.start()
    seen_by_kubectl: dict[str, float] = {}
    kubectl = shutil.which("kubectl")
    proc = None
    if kubectl:
        proc = subprocess.Popen([kubectl, "--kubeconfig", lab.kubeconfig, "wait", "--for=condition=Ready",
                                 "-n", "flux-system", "--timeout=120s"] + [f"kustomization/{n}" for n in names],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def read():
            for line in proc.stdout:
                stamp = time.monotonic()
                name = line.split()[0].split("/")[-1]
                seen_by_kubectl[name] = stamp
        threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 20
    while not conv.watcher.synced().get("Kustomization") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # let kubectl get past discovery and into its watches
    flipped: dict[str, float] = {}
    for n in names:
        flipped[n] = lab.set_status("kustomize.toolkit.fluxcd.io", "Kustomization", "flux-system", n,
                                    {"observedGeneration": 1, "conditions": ready_cond(True)})
        time.sleep(gap_s)
    runner.join(30)
    ours = [conv.watcher.get("Kustomization", "flux-system", n) for n in names]
    res = result.get("r")
    drtool_lat = [(r.ready_at - flipped[r.name]) * 1000 for r in ours if r and r.ready_at]
    out = {"objects": count, "converged": bool(res and res.converged),
           "drtool_ms": {"p50": round(pct(drtool_lat, 50), 1), "p95": round(pct(drtool_lat, 95), 1),
                         "max": round(max(drtool_lat), 1)}}
    if proc:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        kl = [(seen_by_kubectl[n] - flipped[n]) * 1000 for n in names if n in seen_by_kubectl]
        if kl:
            out["kubectl_wait_ms"] = {"p50": round(pct(kl, 50), 1), "p95": round(pct(kl, 95), 1),
                                      "max": round(max(kl), 1), "seen": len(kl)}
        else:
            out["kubectl_wait_ms"] = {"error": (proc.stderr.read() or "")[-300:]}
    return out


# Shared with bench_waiting's client: peak memory of the client process itself.
PEAK_RSS = r"""
def peak_rss_mb():
    # VmHWM, not getrusage: ru_maxrss survives exec and would include the parent's lab server.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
"""

CLIENT = r"""
import json, sys, time
sys.path.insert(0, sys.argv[2])
""" + PEAK_RSS + r"""
from drtool.converge import ConvergeOptions, Converger
from drtool.kube.client import api_client_from_kubeconfig
conv = Converger(api_client_from_kubeconfig(sys.argv[1]), ConvergeOptions(deadline_s=float(sys.argv[3])))
import threading
box = {}
t = threading.Thread(target=lambda: box.setdefault("r", conv.run()), daemon=True)
t.start()
while not all(conv.watcher.synced()[k] for k in ("Pod", "HelmRelease", "Kustomization")):
    time.sleep(0.05)
print("SYNCED", json.dumps({**conv.transport.requests,
      "rss_mb": peak_rss_mb()}), flush=True)
t.join()
r = box["r"]
print(json.dumps({"outcome": r.outcome, "ended_mono": time.monotonic(), "requests": r.api_requests,
                  "failures": [f.object + ": " + f.reason for f in r.failures],
                  "objects": len(r.objects),
                  "maxrss_mb": peak_rss_mb()}), flush=True)
"""


def bench_scale(lab: Lab, flux_objects: int, pods: int, wait_s: float = 8.0) -> dict:
    """Populate, start a client process, wait ``wait_s`` after sync, then make one HelmRelease Stalled."""
    namespaces = [f"ns-{i:02d}" for i in range(20)]
    lab.bulk_create([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in namespaces])
    half = flux_objects // 2
    objs = [{**ks(f"ks-{i:04d}"), "status": {"observedGeneration": 1, "conditions": ready_cond(False)}}
            for i in range(half)]
    objs += [{**hr(f"hr-{i:04d}", namespaces[i % 20]),
              "status": {"observedGeneration": 1, "conditions": ready_cond(False)}} for i in range(flux_objects - half)]
    objs += [pod(f"pod-{i:05d}", namespaces[i % 20]) for i in range(pods)]
    t0 = time.monotonic()
    lab.bulk_create(objs)
    populate_s = time.monotonic() - t0
    proc = subprocess.Popen([sys.executable, "-c", CLIENT, lab.kubeconfig, str(REPO), "600"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        if not first.startswith("SYNCED"):
            raise RuntimeError(f"client failed: {first} {proc.stderr.read()[-2000:]}")
        at_sync = json.loads(first.split(" ", 1)[1])
        sync_s = time.monotonic() - t0 - populate_s
        time.sleep(wait_s)   # waiting: requests must not grow while nothing changes
        stalled_at = lab.set_status("helm.toolkit.fluxcd.io", "HelmRelease", namespaces[0], "hr-0000", {
            "observedGeneration": 1, "conditions": [
                {"type": "Stalled", "status": "True", "reason": "RetriesExceeded", "lastTransitionTime": T,
                 "message": "Failed to install after 3 attempt(s)"}] + ready_cond(False, "InstallFailed")})
        out = json.loads(proc.stdout.readline())
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    return {"flux_objects": flux_objects, "pods": pods, "populate_s": round(populate_s, 1),
            "client_sync_s": round(sync_s, 2), "peak_rss_mb_at_sync": at_sync.pop("rss_mb"),
            "requests_at_sync": at_sync,
            "requests_at_exit": out["requests"], "peak_rss_mb": out["maxrss_mb"],
            "stalled_to_exit_s": round(out["ended_mono"] - stalled_at, 3), "outcome": out["outcome"],
            "failures": out["failures"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects-scale", type=float, default=1.0)
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--full-only", action="store_true", help="skip the 1/10 scale run")
    args = parser.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_latency:
            lab = Lab(Path(tmp))
            try:
                results["latency"] = bench_latency(lab)
            finally:
                lab.close()
        if not args.skip_scale:
            scales = (("scale_small", args.objects_scale / 10), ("scale_full", args.objects_scale))
            for label, scale in scales[1:] if args.full_only else scales:
                lab = Lab(Path(tmp))
                try:
                    results[label] = bench_scale(lab, int(2000 * scale), int(10000 * scale))
                finally:
                    lab.close()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
