"""Shared pieces of the benchmark harness: spreads of repeated measurements, table rows, output files.

Pure code (no lab, no I/O except ``write_results``), covered by ``tests/bench/test_bench_harness.py``.
Every figure is the median of repeated runs with its spread, because the machines the benchmarks
run on are shared and noisy; every ratio is taken between two things measured in the same run.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence


@dataclass(frozen=True)
class Spread:
    """Median and spread of repeated measurements of one quantity."""

    n: int
    median: float
    min: float
    max: float
    q1: float
    q3: float

    @classmethod
    def of(cls, values: Sequence[float]) -> "Spread":
        """The spread of ``values``; raises ValueError when there are none."""
        vals = sorted(float(v) for v in values)
        if not vals:
            raise ValueError("no measurements")
        if len(vals) >= 2:
            q1, _, q3 = statistics.quantiles(vals, n=4, method="inclusive")
        else:
            q1 = q3 = vals[0]
        return cls(len(vals), statistics.median(vals), vals[0], vals[-1], q1, q3)

    def show(self, unit: str = "", digits: int = 2) -> str:
        """``9.81 s (min 9.50, max 10.40, n=5)``: the median, then the range it came from."""
        u = f" {unit}" if unit else ""
        return f"{self.median:.{digits}f}{u} (min {self.min:.{digits}f}, max {self.max:.{digits}f}, n={self.n})"

    def as_dict(self, digits: int = 4) -> dict:
        return {k: round(v, digits) if isinstance(v, float) else v for k, v in asdict(self).items()}


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> Spread:
    """Spread of the per-run ratios ``a_i / b_i`` (pairs measured in the same run)."""
    if len(numerators) != len(denominators):
        raise ValueError("ratios need pairs from the same runs")
    return Spread.of([a / b for a, b in zip(numerators, denominators) if b])


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    benchmark: str
    figure: str
    baseline: str
    ratio: str
    target: str = "—"
    met: bool | None = None   # None: no target set

    @property
    def met_text(self) -> str:
        return "—" if self.met is None else ("yes" if self.met else "**no**")


@dataclass
class BenchResult:
    """What one benchmark module returns: its table rows and its raw figures for the JSON file."""

    name: str
    rows: list[Row] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0


HEADER = ("benchmark", "figure", "baseline", "ratio", "target", "met?")


def markdown_table(rows: Sequence[Row]) -> str:
    """The Markdown table pasted into the README's Performance section."""
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        lines.append("| " + " | ".join(cell(x) for x in (r.benchmark, r.figure, r.baseline, r.ratio, r.target,
                                                          r.met_text)) + " |")
    return "\n".join(lines)


def render_markdown(results: Sequence[BenchResult], meta: dict) -> str:
    """The whole ``<date>.md``: context, the table, then notes and failures."""
    rows = [r for res in results for r in res.rows]
    out = [f"# Benchmarks {meta['date']}", "",
           f"Machine: {meta['machine']}. Commit: {meta['commit']}. Harness wall time: {meta['wall_s']:.0f} s. "
           f"Figures are medians of repeated runs (min/max and n in brackets); "
           f"ratios are taken per run between two things measured in that run.", "",
           markdown_table(rows), ""]
    notes = [(res.name, n) for res in results for n in res.data.get("notes", [])]
    if notes:
        out += ["## Notes", ""] + [f"- {name}: {text}" for name, text in notes] + [""]
    failed = [res for res in results if res.error]
    if failed:
        out += ["## Failures", ""] + [f"- {res.name}: {res.error}" for res in failed] + [""]
    return "\n".join(out)


def write_results(results: Sequence[BenchResult], meta: dict, out_dir: Path) -> tuple[Path, Path]:
    """Write ``<date>.json`` and ``<date>.md`` under ``out_dir``; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = meta["date"]
    js, md = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    payload = {"schema": "drtool.bench/v1", **meta,
               "benchmarks": {r.name: {"rows": [asdict(x) for x in r.rows], "data": r.data, "error": r.error,
                                       "seconds": round(r.seconds, 1)} for r in results}}
    js.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    md.write_text(render_markdown(results, meta))
    return js, md


class Progress:
    """Progress lines on stderr, stamped with the harness's elapsed time."""

    def __init__(self, stream=None, clock: Callable[[], float] = time.monotonic):
        self.stream = stream or sys.stderr
        self.clock = clock
        self.t0 = clock()

    def __call__(self, message: str) -> None:
        print(f"[{self.clock() - self.t0:6.1f}s] {message}", file=self.stream, flush=True)
