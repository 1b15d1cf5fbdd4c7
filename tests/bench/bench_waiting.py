"""Waiting: how fast drtool notices readiness, and what waiting costs at scale.

Reuses the engine's ``bench_converge`` (its in-process lab API and object builders):
- detection latency: ``bench_converge.bench_latency`` flips Kustomizations to Ready one by one
  and compares when drtool's watcher and real ``kubectl wait`` each see them (p50/p95), once per
  round on a fresh API server;
- waiting at scale: a separate client process waits on 2,000 Flux objects + 10,000 pods (and on a
  tenth of that in the same round), reporting API requests, peak RSS and CPU seconds, then one
  HelmRelease turns Stalled and the time to the client's return is recorded.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.bench import bench_converge as bc
from tests.bench.bench_stats import BenchResult, Row, Spread, ratios

# Like bench_converge's client, plus CPU seconds (os.times covers every thread of this process).
CLIENT = r"""
import json, os, sys, threading, time
sys.path.insert(0, sys.argv[2])
""" + bc.PEAK_RSS + r"""

def cpu_s():
    t = os.times()
    return round(t.user + t.system, 3)

from drtool.converge import ConvergeOptions, Converger
from drtool.kube.client import api_client_from_kubeconfig
conv = Converger(api_client_from_kubeconfig(sys.argv[1]), ConvergeOptions(deadline_s=float(sys.argv[3])))
box = {}
t = threading.Thread(target=lambda: box.setdefault("r", conv.run()), daemon=True)
t.start()
deadline = time.monotonic() + 120
while not all(conv.watcher.synced().get(k) for k in ("Pod", "HelmRelease", "Kustomization")):
    if time.monotonic() > deadline:
        print("TIMEOUT", flush=True); sys.exit(3)
    time.sleep(0.05)
print("SYNCED " + json.dumps({"requests": dict(conv.transport.requests), "cpu_s": cpu_s()}), flush=True)
t.join(300)
r = box["r"]
print(json.dumps({"outcome": r.outcome, "ended_mono": time.monotonic(), "requests": r.api_requests,
                  "cpu_s": cpu_s(), "rss_mb": peak_rss_mb(), "objects": len(r.objects)}), flush=True)
"""


def scale_once(workdir: Path, flux_objects: int, pods: int, idle_s: float = 3.0) -> dict:
    """Populate a fresh API, wait on it from a client process, then stall one HelmRelease."""
    lab = bc.Lab(workdir)
    proc = None
    try:
        namespaces = [f"ns-{i:02d}" for i in range(20)]
        lab.bulk_create([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in namespaces])
        not_ready = {"observedGeneration": 1, "conditions": bc.ready_cond(False)}
        half = flux_objects // 2
        objs = [{**bc.ks(f"ks-{i:04d}"), "status": not_ready} for i in range(half)]
        objs += [{**bc.hr(f"hr-{i:04d}", namespaces[i % 20]), "status": not_ready} for i in range(flux_objects - half)]
        objs += [bc.pod(f"pod-{i:05d}", namespaces[i % 20]) for i in range(pods)]
        lab.bulk_create(objs)
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", CLIENT, lab.kubeconfig, str(bc.REPO), "600"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = proc.stdout.readline()
        if not first.startswith("SYNCED"):
            raise RuntimeError(f"client did not sync: {first.strip()} {proc.stderr.read()[-500:]}")
        at_sync = json.loads(first.split(" ", 1)[1])
        sync_s = time.monotonic() - t0
        time.sleep(idle_s)      # nothing changes: requests must not grow meanwhile
        stalled_at = lab.set_status("helm.toolkit.fluxcd.io", "HelmRelease", namespaces[0], "hr-0000", {
            "observedGeneration": 1, "conditions": [
                {"type": "Stalled", "status": "True", "reason": "RetriesExceeded", "lastTransitionTime": bc.T,
                 "message": "Failed to install after 3 attempt(s)"}] + bc.ready_cond(False, "InstallFailed")})
        out = json.loads(proc.stdout.readline())
        proc.wait(30)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)
        lab.close()
    return {"flux_objects": flux_objects, "pods": pods, "sync_s": round(sync_s, 3),
            "requests_at_sync": sum(at_sync["requests"].values()), "requests": sum(out["requests"].values()),
            "requests_by_kind": out["requests"], "cpu_s": out["cpu_s"], "cpu_s_at_sync": at_sync["cpu_s"],
            "rss_mb": out["rss_mb"], "stalled_to_exit_s": round(out["ended_mono"] - stalled_at, 3),
            "outcome": out["outcome"]}


def latency_rows(runs: list[dict]) -> list[Row]:
    rows = []
    for q in ("p50", "p95"):
        ours = [r["drtool_ms"][q] for r in runs]
        theirs = [r["kubectl_wait_ms"][q] for r in runs]
        rows.append(Row(f"detection latency {q}: Ready in API → drtool records it", Spread.of(ours).show("ms", 1),
                        f"`kubectl wait` {Spread.of(theirs).show('ms', 1)}", ratios(ours, theirs).show("×", 4)))
    return rows


def run(progress, reps: int = 5) -> BenchResult:
    result = BenchResult("waiting")
    latency: list[dict] = []
    small: list[dict] = []
    full: list[dict] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-waiting-") as tmp:
        for i in range(reps):
            lab = bc.Lab(Path(tmp))
            try:
                out = bc.bench_latency(lab)
            finally:
                lab.close()
            if "p50" in out.get("kubectl_wait_ms", {}) and out["converged"]:
                latency.append(out)
                progress(f"waiting: latency round {i + 1}/{reps}: drtool p50 {out['drtool_ms']['p50']} ms, "
                         f"kubectl p50 {out['kubectl_wait_ms']['p50']} ms")
            else:
                failures.append(f"latency round {i + 1}: {json.dumps(out)[:300]}")
                progress(f"waiting: latency round {i + 1}/{reps} incomplete")
        for i in range(reps):
            try:
                s = scale_once(Path(tmp), 200, 1000)
                f = scale_once(Path(tmp), 2000, 10000)
            except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
                failures.append(f"scale round {i + 1}: {exc}")
                progress(f"waiting: scale round {i + 1}/{reps} failed: {exc}")
                continue
            small.append(s)
            full.append(f)
            progress(f"waiting: scale round {i + 1}/{reps}: {f['requests']} requests, {f['rss_mb']} MB, "
                     f"{f['cpu_s']} CPU s at full scale")
    result.data = {"latency_runs": latency, "scale_small_runs": small, "scale_full_runs": full, "failures": failures,
                   "notes": ["scale: the client process waits on 2,000 Flux objects (half Kustomizations, half "
                             "HelmReleases) + 10,000 pods; baseline is the same client on a tenth of the objects in the "
                             "same round. Peak RSS is VmHWM of the client; CPU is user+system of the client. Watches and "
                             "discovery stay constant; list requests grow with the pages of the initial lists.",
                             "latency: `kubectl wait` with many objects waits on them one after another, so objects "
                             "turning Ready while it waits on an earlier one are seen late (its p95)."]}
    if latency:
        result.rows += latency_rows(latency)
    if full:
        for key, label, unit, digits in (("requests", "API requests", "", 0), ("rss_mb", "peak RSS", "MB", 1),
                                         ("cpu_s", "CPU seconds", "s", 2)):
            f_vals = [r[key] for r in full]
            s_vals = [r[key] for r in small]
            result.rows.append(Row(f"waiting at scale (2,000 Flux objects + 10,000 pods): {label}",
                                   Spread.of(f_vals).show(unit, digits), f"1/10 scale {Spread.of(s_vals).show(unit, digits)}",
                                   ratios(f_vals, s_vals).show("×")))
        stall = [r["stalled_to_exit_s"] for r in full]
        result.data["stalled_to_exit_at_scale_s"] = Spread.of(stall).as_dict()
    if not latency and not full:
        result.error = "; ".join(failures[-2:]) or "no run completed"
    return result
