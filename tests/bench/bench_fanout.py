"""Fan-out: teardown + join with 1, 5, 20 and 50 agents (one server), wall time and ratio to 1 agent.

One lab of 51 nodes (x.11 to x.61 of one loopback subnet). Each measurement is
`inv rebuild --from teardown --to join_agents --yes` with an inventory of the first N agents:
teardown, server install and agent joins, nothing else (no preflight, backup, bootstrap or
converge, which do not depend on the agent count the same way). The figure is the span from
the teardown phase's start to the join_agents phase's end in the run's report.json.

Sizes run in ascending order within a round, so every inventory covers the agents the previous
one joined. Before each round an untimed teardown of all 50 agents clears the cluster, so no
agent left joined to an old server competes for the CPU. drtool's own CPU seconds per run are
recorded too: the lab's simulated nodes share this machine's cores, and a figure that grows
while drtool's CPU stays small points at the lab, not at drtool.
"""
from __future__ import annotations

import json
import resource
import time

from tests.bench.bench_stats import BenchResult, Row, Spread, ratios
from tests.lab.fulllab import FullLab, start_full_lab, stop_full_lab_dir, write_inventory

SIZES = (1, 5, 20, 50)
TARGET_SIZE, TARGET_RATIO = 20, 1.5     # issue 4: 1 server + 20 agents within 1.5x of 1 + 1


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)   # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def teardown_join(full: FullLab, agents: int, *, to: str = "join_agents") -> dict:
    """One sliced rebuild with ``agents`` agents; raises RuntimeError when it fails."""
    inventory = full.lab.root / f"inventory-{agents}.yaml"
    if not inventory.exists():
        write_inventory(full.lab, inventory, agents=agents)
    cpu0 = _children_cpu()
    busy0, total0 = _cpu_jiffies()
    t0 = time.monotonic()
    res = full.inv("rebuild", "-i", str(inventory), "--yes", "--from", "teardown", "--to", to, timeout=400)
    wall = time.monotonic() - t0
    cpu = _children_cpu() - cpu0
    busy1, total1 = _cpu_jiffies()
    machine_busy = (busy1 - busy0) / max(1, total1 - total0)
    if res.returncode != 0:
        raise RuntimeError(f"{agents} agents: inv rebuild exited {res.returncode}: {(res.stderr or res.stdout).strip()[-300:]}")
    report = json.loads((full.runs_list()[-1] / "report.json").read_text())
    phases = {p["name"]: p for p in report["phases"]}
    span = phases[to]["ended_at"] - phases["teardown"]["started_at"]
    return {"agents": agents, "teardown_join_s": round(span, 3), "process_s": round(wall, 3),
            "drtool_cpu_s": round(cpu, 3),
            "machine_cpu_busy": round(machine_busy, 3), "phases": {n: p["duration_s"] for n, p in phases.items()}}


def run(progress, subnet: str, reps: int = 5, sizes: tuple[int, ...] = SIZES) -> BenchResult:
    result = BenchResult("fanout")
    by_size: dict[int, list[dict]] = {n: [] for n in sizes}
    rounds: list[dict[int, dict]] = []
    failures: list[str] = []
    full = start_full_lab(subnet, nodes=1 + max(sizes))
    try:
        for i in range(reps):
            if i > 0:
                try:
                    teardown_join(full, max(sizes), to="teardown")
                except RuntimeError as exc:
                    failures.append(f"round {i + 1} cleanup: {exc}")
            got: dict[int, dict] = {}
            for n in sizes:
                try:
                    got[n] = teardown_join(full, n)
                except RuntimeError as exc:
                    failures.append(f"round {i + 1}: {exc}")
                    progress(f"fanout: round {i + 1}: {n} agents failed")
                    continue
                by_size[n].append(got[n])
            rounds.append(got)
            progress(f"fanout: round {i + 1}/{reps}: " + ", ".join(f"{n}→{r['teardown_join_s']:.1f}s" for n, r in got.items()))
    finally:
        stop_full_lab_dir(full.lab)
    result.data = {"sizes": list(sizes), "runs": {str(n): v for n, v in by_size.items()}, "failures": failures,
                   "notes": ["fan-out: `inv rebuild --from teardown --to join_agents`; figure = teardown start to "
                             "join_agents end (report.json). All lab nodes and the simulated K3s share this machine's "
                             "cores, so agent start-up competes for CPU as the count grows: 'machine CPU busy' is the share of all "
                             "cores in use during the run (from /proc/stat), 'drtool CPU' the rebuild process's own."]}
    base = sizes[0]
    for n in sizes:
        pairs = [(r[n]["teardown_join_s"], r[base]["teardown_join_s"]) for r in rounds if n in r and base in r]
        if not pairs:
            continue
        vals = [a for a, _ in pairs]
        ratio = ratios(vals, [b for _, b in pairs])
        cpu = Spread.of([r["drtool_cpu_s"] for r in by_size[n]])
        busy = Spread.of([r["machine_cpu_busy"] for r in by_size[n]])
        result.data[f"agents_{n}"] = {"teardown_join_s": Spread.of(vals).as_dict(), "ratio_to_1": ratio.as_dict(),
                                      "drtool_cpu_s": cpu.as_dict(), "machine_cpu_busy": busy.as_dict()}
        target, met = ("—", None)
        if n == TARGET_SIZE:
            target, met = f"≤ {TARGET_RATIO}×", ratio.median <= TARGET_RATIO
        result.rows.append(Row(f"fan-out: teardown + join, 1 server + {n} agent(s)",
                               f"{Spread.of(vals).show('s')}; drtool CPU {cpu.median:.1f} s; machine CPU {busy.median:.0%} busy",
                               f"1 agent {Spread.of([b for _, b in pairs]).median:.2f} s", ratio.show("×"), target, met))
    if not result.rows:
        result.error = "; ".join(failures[-2:]) or "no run completed"
    return result
