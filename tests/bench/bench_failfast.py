"""Fail fast: from a HelmRelease turning Stalled in the API to `inv rebuild` exiting.

Scenario ``stalled-helmrelease``: logging/loki exhausts its retries (Stalled=True,
RetriesExceeded). While `inv rebuild` runs, this harness watches HelmReleases through the
run's own kubeconfig and stamps the moment the API first shows loki Stalled; the rebuild's
exit is stamped when its process ends. Both stamps use this process's monotonic clock.

For contrast, real `kubectl wait --for=condition=ready` on the same stalled release is run
once with a short timeout: it has no notion of Stalled and returns only when the timeout ends.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.bench.bench_stats import BenchResult, Row, Spread
from tests.lab.fulllab import REPO, FullLab, start_full_lab, stop_full_lab_dir

SCENARIO = "stalled-helmrelease"
RELEASE = ("logging", "loki")
KUBECTL_TIMEOUT_S = 10


def _stalled(obj: dict) -> bool:
    meta = obj.get("metadata") or {}
    if (meta.get("namespace"), meta.get("name")) != RELEASE:
        return False
    return any(c.get("type") == "Stalled" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def watch_for_stall(runs: Path, known: set[Path], stop: threading.Event, box: dict, limit_s: float = 240) -> None:
    """Record ``box['stalled_at']`` (monotonic) when the API first shows the release Stalled."""
    from kubernetes import client, config, watch

    deadline = time.monotonic() + limit_s
    kubeconfig = None
    while kubeconfig is None and not stop.is_set() and time.monotonic() < deadline:
        new = [p for p in runs.iterdir() if p.is_dir() and p not in known and (p / "kubeconfig").exists()]
        kubeconfig = new[0] / "kubeconfig" if new else None
        time.sleep(0.05)
    if kubeconfig is None:
        return
    box["kubeconfig"] = kubeconfig
    api = None
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            api = api or client.CustomObjectsApi(config.new_client_from_config(config_file=str(kubeconfig)))
            w = watch.Watch()
            for event in w.stream(api.list_cluster_custom_object, "helm.toolkit.fluxcd.io", "v2", "helmreleases",
                                  timeout_seconds=5, _request_timeout=10):
                if _stalled(event["object"]):
                    box["stalled_at"] = time.monotonic()
                    return
                if stop.is_set():
                    return
        except Exception:   # noqa: BLE001 - the API comes and goes during a rebuild; retry until the deadline
            time.sleep(0.1)


def converge_deadline_s(full: FullLab) -> float:
    """The inventory's converge timeout (``timeouts.converge``, e.g. ``120s``): what a deadline-only wait costs."""
    from drtool.inventory import load_inventory

    return float(load_inventory(full.inventory).timeouts.converge)


def failfast_once(full: FullLab) -> dict:
    known = set(full.runs.iterdir())
    stop = threading.Event()
    box: dict = {}
    watcher = threading.Thread(target=watch_for_stall, args=(full.runs, known, stop, box), daemon=True)
    watcher.start()
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "invoke", "rebuild", "-i", str(full.inventory), "--yes"],
                            cwd=REPO, env=full.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    ended = time.monotonic()
    stop.set()
    watcher.join(15)
    if "stalled_at" not in box:
        raise RuntimeError(f"never saw {'/'.join(RELEASE)} Stalled; rebuild exited {proc.returncode}: {output[-300:]}")
    return {"exit_code": proc.returncode, "stalled_to_exit_s": round(ended - box["stalled_at"], 3),
            "run_s": round(ended - start, 3), "names_release": "loki" in output,
            "kubeconfig": str(box["kubeconfig"])}


def kubectl_wait_on_stalled(kubeconfig: str) -> dict:
    start = time.monotonic()
    res = subprocess.run(["/usr/bin/kubectl", "--kubeconfig", kubeconfig, "wait", "--for=condition=ready",
                          f"helmrelease/{RELEASE[1]}", "-n", RELEASE[0], f"--timeout={KUBECTL_TIMEOUT_S}s"],
                         capture_output=True, text=True, timeout=KUBECTL_TIMEOUT_S + 30)
    return {"seconds": round(time.monotonic() - start, 3), "exit_code": res.returncode,
            "timeout_s": KUBECTL_TIMEOUT_S}


def run(progress, subnet: str, reps: int = 5) -> BenchResult:
    result = BenchResult("failfast")
    runs: list[dict] = []
    failures: list[str] = []
    kubectl = None
    full = start_full_lab(subnet, nodes=2, scenario=SCENARIO)
    try:
        deadline_s = converge_deadline_s(full)
        for i in range(reps):
            try:
                out = failfast_once(full)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                failures.append(f"round {i + 1}: {exc}")
                progress(f"failfast: round {i + 1}/{reps} failed: {exc}")
                continue
            runs.append(out)
            progress(f"failfast: round {i + 1}/{reps}: Stalled → exit {out['stalled_to_exit_s']:.2f} s "
                     f"(exit code {out['exit_code']})")
            if kubectl is None:
                kubectl = kubectl_wait_on_stalled(out["kubeconfig"])
    finally:
        stop_full_lab_dir(full.lab)
    result.data = {"runs": runs, "failures": failures, "kubectl_wait": kubectl, "converge_deadline_s": deadline_s}
    if not runs:
        result.error = "; ".join(failures[-2:]) or "no run completed"
        return result
    s = Spread.of([r["stalled_to_exit_s"] for r in runs])
    result.data["stalled_to_exit_s"] = s.as_dict()
    result.data["notes"] = [
        f"`kubectl wait --for=condition=ready helmrelease/loki --timeout={KUBECTL_TIMEOUT_S}s` on the stalled release "
        f"returned after {kubectl['seconds']:.1f} s with exit code {kubectl['exit_code']}: it cannot fail fast, so the "
        "manual procedure waits out its whole timeout (600 s in the users' notes)." if kubectl else
        "kubectl wait comparison not run.",
        f"exit codes: {sorted({r['exit_code'] for r in runs})}; the failure message names loki in "
        f"{sum(r['names_release'] for r in runs)}/{len(runs)} runs.",
    ]
    baseline = (f"`kubectl wait` exits only at its timeout ({kubectl['seconds']:.1f} s of {KUBECTL_TIMEOUT_S} s); "
                f"converge deadline {deadline_s:.0f} s") if kubectl else f"converge deadline {deadline_s:.0f} s"
    result.rows.append(Row("fail fast: HelmRelease Stalled in API → `inv rebuild` exits", s.show("s"), baseline,
                           f"{s.median / deadline_s:.3f}× of the deadline"))
    return result
