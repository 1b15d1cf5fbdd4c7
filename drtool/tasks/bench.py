"""`inv bench`: run the benchmark harness (tests/bench/run.py) from a source checkout.

The harness lives with the tests, not in the drtool package, so this task runs it as
``python -m tests.bench.run`` from the checkout that holds this drtool; an installed copy
without the tests says so instead of failing obscurely.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from invoke import Exit

from drtool.tasks._cli import bad_arg, guarded, task

BENCHMARKS = ("startup", "gitops", "recovery", "waiting", "failfast", "fanout")


def harness_command(only: str | None, reps: int | str | None, out: str | None, budget: str | float | None) -> list[str]:
    """The harness's argv for these task options; BadInput names the option that is wrong."""
    argv = [sys.executable, "-m", "tests.bench.run"]
    if only:
        names = [n.strip() for n in only.split(",") if n.strip()]
        unknown = [n for n in names if n not in BENCHMARKS]
        if unknown or not names:
            raise bad_arg("--only", f"unknown benchmark {', '.join(unknown) or only!r}; choose from {', '.join(BENCHMARKS)}")
        argv += ["--only", *names]
    if reps is not None:
        if not str(reps).isdigit() or int(reps) < 1:
            raise bad_arg("--reps", f"expected a positive whole number, got {reps!r}")
        argv += ["--reps", str(int(reps))]
    if out:
        argv += ["--out", str(Path(out).resolve())]
    if budget is not None:
        try:
            seconds = float(budget)
        except ValueError:
            raise bad_arg("--budget", f"expected seconds, got {budget!r}") from None
        argv += ["--budget", str(seconds)]
    return argv


@task(help={"only": "comma-separated benchmarks: " + ", ".join(BENCHMARKS) + " (default: all)",
            "reps": "repetitions per benchmark (default 5; fewer only for a quick look)",
            "out": "results directory (default bench/results)",
            "budget": "seconds; benchmarks that would overrun it are skipped (default 840)"})
@guarded
def bench(c, only=None, reps=None, out=None, budget=None):
    """Run the benchmarks on the local lab; print the table and write bench/results/<date>.json and .md."""
    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / "tests" / "bench" / "run.py").exists():
        raise Exit(f"error: no benchmark harness at {checkout / 'tests/bench/run.py'}: run `inv bench` from a "
                   "source checkout", code=2)
    argv = harness_command(only, reps, out, budget)
    # Progress streams straight to the terminal; the harness bounds its own run time.
    code = subprocess.call(argv, cwd=checkout, stdin=subprocess.DEVNULL)
    if code:
        raise Exit(code=code)
