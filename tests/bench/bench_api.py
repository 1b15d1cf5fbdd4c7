"""Benchmarks of the lab API server. Not collected by pytest; run:

    .venv/bin/python tests/bench/bench_api.py

Prints: CLI startup time (until it accepts connections), listing 10,000 pods with
the official client, watch events per second, and the process RSS holding
2,000 Flux objects plus 10,000 pods.
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from drtool.lab.api import LabApiServer  # noqa: E402


def pod(i: int, ns: str = "bench") -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"pod-{i:05d}", "namespace": ns, "labels": {"app": f"app-{i % 50}"}},
            "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "registry.local/app:1.0",
                                                           "resources": {"limits": {"cpu": "100m"}}}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}


def flux_object(i: int) -> dict:
    return {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": f"hr-{i:04d}", "namespace": "flux-system"},
            "spec": {"interval": "10m", "chart": {"spec": {"chart": "loki", "version": "6.21.0",
                                                           "sourceRef": {"kind": "HelmRepository", "name": "grafana"}}}},
            "status": {"observedGeneration": 1, "conditions": [
                {"type": "Ready", "status": "True", "reason": "InstallSucceeded", "message": "ok",
                 "lastTransitionTime": "2025-01-01T00:00:00Z"}]}}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_startup() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "drtool.lab.api", "--port", "0", "--state-dir", tmp],
                                cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            elapsed = time.monotonic() - start
            assert line.startswith("listening"), line
        finally:
            proc.terminate()
            proc.wait(10)
    return elapsed


def bench_rss() -> dict:
    """Run in a fresh interpreter so the figure is the server's own footprint."""
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "from tests.bench.bench_api import *\n"
        "base = rss_mb(); s = Store()\n"
        "s.register_kind('helm.toolkit.fluxcd.io', 'v2', 'HelmRelease', 'helmreleases', True)\n"
        "[s.create(flux_object(i)) for i in range(2000)]\n"
        "[s.create(pod(i)) for i in range(10000)]\n"
        "print(json.dumps({'rss_mb': round(rss_mb(), 1), 'baseline_mb': round(base, 1)}))\n"
    ) % str(ROOT)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def bench_server() -> dict:
    from kubernetes import client, config

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    tmp = tempfile.mkdtemp()
    server = LabApiServer("127.0.0.1", 0, state_dir=tmp)
    run = lambda coro: asyncio.run_coroutine_threadsafe(coro, loop).result(120)  # noqa: E731

    async def fill():
        server.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}})
        for i in range(10000):
            server.store.create(pod(i))

    run(server.start())
    run(fill())
    api = config.new_client_from_config(config_file=f"{tmp}/kubeconfig.yaml")
    core = client.CoreV1Api(api)
    core.list_namespaced_pod("bench", limit=1)                      # warm the connection
    start = time.monotonic()
    listed = core.list_namespaced_pod("bench")
    list_typed = time.monotonic() - start
    assert len(listed.items) == 10000
    start = time.monotonic()
    raw = core.list_namespaced_pod("bench", _preload_content=False).read()
    list_raw = time.monotonic() - start

    # Watch throughput: 5,000 status changes streamed to one raw watch.
    rv = json.loads(raw)["metadata"]["resourceVersion"]
    n = 5000
    resp = core.list_namespaced_pod("bench", watch=True, resource_version=rv, timeout_seconds=60,
                                    _preload_content=False)

    async def churn():
        for i in range(n):
            server.store.patch_status("", "Pod", "bench", f"pod-{i % 10000:05d}", {"podIP": f"10.0.{i // 250}.{i % 250}"})

    start = time.monotonic()
    asyncio.run_coroutine_threadsafe(churn(), loop)
    got = 0
    buf = b""
    for chunk in resp.stream(65536):
        buf += chunk
        got += chunk.count(b"\n")
        if got >= n:
            break
    watch_rate = n / (time.monotonic() - start)
    resp.release_conn()
    run(server.stop())
    loop.call_soon_threadsafe(loop.stop)
    return {"list_10k_pods_typed_s": round(list_typed, 3), "list_10k_pods_raw_s": round(list_raw, 3),
            "watch_events_per_s": round(watch_rate)}


def main() -> None:
    results = {"startup_s": round(min(bench_startup() for _ in range(3)), 3)}
    results.update(bench_server())
    results.update(bench_rss())
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
