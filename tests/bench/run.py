"""drtool's benchmark harness: `make bench`, `inv bench`, or

    .venv/bin/python -m tests.bench.run [--only NAME ...] [--reps N] [--out bench/results]

Runs every benchmark on the local lab, prints progress on stderr and the results table on
stdout, and writes ``bench/results/<YYYY-MM-DD>.json`` and ``.md`` (see bench/README.md).

Benchmarks (each repeated, median and min/max reported; ratios per run):
  startup   `inv --list`, `inv rebuild --dry-run`, importing drtool, against `python -c pass`
  recovery  homelab recovery time against the critical path and the users' manual procedure
  waiting   detection latency against `kubectl wait`; 2,000 Flux objects + 10,000 pods
  failfast  a Stalled HelmRelease to `inv rebuild` exiting
  fanout    teardown + join with 1, 5, 20, 50 agents
  gitops    `inv gitops.check` on a generated repository of 500 files (no lab needed)
  costs     homelab with the image cost model, in model seconds: manual vs drtool without cache and
            nudges vs drtool as shipped vs the critical path with cached images (one run each)

The whole run is sized for under 15 minutes on a 2-core machine; a benchmark that would start
after the time budget is skipped and listed as such. Needs root (the lab's nodes are sshd
processes in Linux namespaces). Uses loopback subnets 127.0.150-153 only.
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.bench.bench_stats import BenchResult, Progress, markdown_table, write_results  # noqa: E402

SUBNETS = {"recovery": "127.0.150", "failfast": "127.0.151", "fanout": "127.0.152", "costs": "127.0.153"}
ORDER = ("startup", "gitops", "recovery", "waiting", "failfast", "fanout", "costs")
# Seconds each benchmark needs at the default repetitions on the reference 2-core machine: a
# benchmark is skipped when starting it would overrun the budget.
EXPECTED_S = {"startup": 40, "gitops": 15, "recovery": 200, "waiting": 160, "failfast": 90, "fanout": 360, "costs": 600}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
    try:
        head = git("rev-parse", "--short", "HEAD") or "unknown"
        return head + (" (+ uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def run_benchmarks(names: list[str], reps: int, progress: Progress, budget_s: float) -> list[BenchResult]:
    from tests.bench import (bench_costs, bench_failfast, bench_fanout, bench_gitops, bench_recovery, bench_startup,
                             bench_waiting)

    results: list[BenchResult] = []
    startup: BenchResult | None = None

    def dry_runs(full) -> None:
        if startup is not None and not startup.error:
            bench_startup.add_dry_run(startup, progress, full.inventory, full.env(), reps=reps)

    for name in names:
        elapsed = progress.clock() - progress.t0
        if elapsed + EXPECTED_S[name] * (1 if name == "costs" else reps / 5) > budget_s:   # costs runs once
            progress(f"{name}: skipped, {elapsed:.0f} s spent of the {budget_s:.0f} s budget")
            results.append(BenchResult(name, error=f"skipped: time budget ({budget_s:.0f} s) would be exceeded"))
            continue
        progress(f"{name}: starting")
        t0 = time.monotonic()
        try:
            if name == "startup":
                res = startup = bench_startup.run(progress, reps=max(reps, 10))
            elif name == "gitops":
                res = bench_gitops.run(progress, reps=reps)
            elif name == "recovery":
                res = bench_recovery.run(progress, SUBNETS["recovery"], reps=reps, while_up=dry_runs)
            elif name == "waiting":
                res = bench_waiting.run(progress, reps=reps)
            elif name == "costs":
                res = bench_costs.run(progress, SUBNETS["costs"])
            elif name == "failfast":
                res = bench_failfast.run(progress, SUBNETS["failfast"], reps=reps)
            else:
                res = bench_fanout.run(progress, SUBNETS["fanout"], reps=reps)
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not lose the others' results
            res = BenchResult(name, error=f"{type(exc).__name__}: {exc}"[:500])
        res.seconds = time.monotonic() - t0
        progress(f"{name}: done in {res.seconds:.0f} s" + (f" ({res.error})" if res.error else ""))
        results.append(res)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=ORDER, help="run only these benchmarks")
    parser.add_argument("--reps", type=int, default=5, help="repetitions per benchmark (default 5; at least 5 for "
                        "published figures)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="results directory")
    parser.add_argument("--budget", type=float, default=14 * 60, help="seconds; later benchmarks are skipped "
                        "rather than overrun it (default 840)")
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    if os.geteuid() != 0 and set(args.only or ORDER) - {"startup", "gitops", "waiting"}:
        print("error: the lab benchmarks need root (lab nodes are sshd processes in namespaces)", file=sys.stderr)
        return 2
    # The in-process lab API logs every watch a client drops as an error with a traceback:
    # expected when a benchmark client exits, and noise in the progress output.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    progress = Progress()
    names = [n for n in ORDER if n in (args.only or ORDER)]
    results = run_benchmarks(names, args.reps, progress, args.budget)
    meta = {"date": dt.date.today().isoformat(), "machine": machine(), "commit": commit(), "reps": args.reps,
            "wall_s": round(progress.clock() - progress.t0, 1)}
    js, md = write_results(results, meta, args.out)
    print(markdown_table([row for r in results for row in r.rows]))
    for r in results:
        if r.error:
            print(f"- {r.name}: {r.error}")
    print(f"\nwrote {js} and {md} in {meta['wall_s']:.0f} s")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
