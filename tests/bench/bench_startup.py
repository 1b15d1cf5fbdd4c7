"""Start-up cost: `inv --list`, `inv rebuild --dry-run`, and importing drtool, against `python -c pass`.

Each command runs as its own process, the way an operator runs it, and the rounds are interleaved
(baseline, then each command) so a noisy moment hits all of them alike. ``-X importtime`` names
the modules that cost most when importing ``drtool.tasks`` (what `inv` imports to list tasks).
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.bench.bench_stats import BenchResult, Row, Spread, ratios

REPO = Path(__file__).resolve().parents[2]
LIST_TARGET_S = 0.5   # issue 2


def _time(argv: list[str], env: dict | None = None, timeout: float = 60) -> float:
    start = time.monotonic()
    res = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env=env, timeout=timeout,
                         stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - start
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} exited {res.returncode}: {res.stderr.strip()[-300:]}")
    return elapsed


def import_profile(module: str = "drtool.tasks", top: int = 6) -> list[dict]:
    """The modules with the largest cumulative import time (µs) when importing ``module``."""
    res = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    rows = []
    for line in res.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append({"module": parts[2].strip(), "cumulative_us": int(parts[1])})
    return sorted(rows, key=lambda r: -r["cumulative_us"])[:top]


def run(progress, reps: int = 10) -> BenchResult:
    """Time each command ``reps`` times, interleaved with the ``python -c pass`` baseline."""
    py = sys.executable
    commands = {
        "python -c pass": [py, "-c", "pass"],
        "import drtool": [py, "-c", "import drtool"],
        "import drtool.tasks": [py, "-c", "import drtool.tasks"],
        "inv --list": [py, "-m", "invoke", "--list"],
    }
    times: dict[str, list[float]] = {k: [] for k in commands}
    for i in range(reps):
        for name, argv in commands.items():
            times[name].append(_time(argv))
        if (i + 1) % 5 == 0 or i + 1 == reps:
            progress(f"startup: round {i + 1}/{reps}")
    base = times["python -c pass"]
    spreads = {k: Spread.of(v) for k, v in times.items()}
    result = BenchResult("startup")
    result.data = {"seconds": {k: s.as_dict() for k, s in spreads.items()},
                   "ratio_to_python": {k: ratios(v, base).as_dict() for k, v in times.items() if k != "python -c pass"},
                   "import_profile_drtool_tasks": import_profile()}
    for name in ("inv --list", "import drtool", "import drtool.tasks"):
        target, met = ("—", None)
        if name == "inv --list":
            target, met = f"< {LIST_TARGET_S} s", spreads[name].median < LIST_TARGET_S
        result.rows.append(Row(f"start-up: `{name}`", spreads[name].show("s", 3),
                               f"`python -c pass` {spreads['python -c pass'].median:.3f} s",
                               ratios(times[name], base).show("×", 1), target, met))
    return result


def add_dry_run(result: BenchResult, progress, inventory: Path, env: dict, reps: int = 5) -> None:
    """Time `inv rebuild --dry-run` against a running lab and add its row to ``result``."""
    py = sys.executable
    dry: list[float] = []
    base: list[float] = []
    for _ in range(reps):
        base.append(_time([py, "-c", "pass"]))
        dry.append(_time([py, "-m", "invoke", "rebuild", "-i", str(inventory), "--dry-run"], env=env, timeout=120))
    progress(f"startup: {reps} dry runs")
    ds = Spread.of(dry)
    result.data["seconds"]["inv rebuild --dry-run"] = ds.as_dict()
    result.rows.append(Row("start-up: `inv rebuild --dry-run` (2-node lab)", ds.show("s", 2),
                           f"`python -c pass` {Spread.of(base).median:.3f} s", ratios(dry, base).show("×", 1)))
