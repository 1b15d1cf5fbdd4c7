"""Recovery overhead: drtool's measured recovery time on the homelab scenario, against the
scenario's critical path and against the users' manual procedure (``baseline_manual.py``).

One 2-node lab serves every run. A warm-up rebuild installs K3s first, so every measured run
starts from an installed cluster, as a real recovery does. Then drtool and the manual script
alternate on the same lab (drtool first in even rounds, manual first in odd ones, so drift
hits both alike); each ratio is taken between the two runs of one round.

Both sides measure the same span: from the first uninstall to everything Ready (drtool's
``recovery_s`` starts at its teardown phase and ends when the converge phase sees all ready;
the manual script's ``total_s`` starts at its first ``ssh ... uninstall`` and ends when its
last ``kubectl wait`` returns). The critical path starts later, at K3s install with the API
answering, so drtool's install-to-ready time is reported against it too.
"""
from __future__ import annotations

import json
import subprocess
import sys
from typing import Callable

from tests.bench.bench_stats import BenchResult, Row, Spread, ratios
from tests.lab.fulllab import REPO, FullLab, start_full_lab, stop_full_lab_dir

PHASES_AFTER_TEARDOWN = ("install_servers", "join_agents", "kubeconfig", "nodes_ready", "restore_secrets",
                         "bootstrap", "converge")


def critical_path_s(full: FullLab, scenario: str = "homelab") -> float:
    """The scenario's critical path for this lab's GitOps repo (what `inv lab.critical-path` prints)."""
    from drtool.lab.scenarios import critical_path, load_scenario
    from drtool.lab.setup import scenario_path

    gitops = json.loads(full.lab.lab_json_path.read_text())["gitops"]
    return critical_path(load_scenario(scenario_path(scenario)), gitops["default"], gitops.get("path", "clusters/homelab"))


def drtool_rebuild(full: FullLab) -> dict:
    """One `inv rebuild --yes`; returns its report's timings. Raises RuntimeError when it fails."""
    res = full.inv("rebuild", "-i", str(full.inventory), "--yes", timeout=300)
    report = json.loads((full.runs_list()[-1] / "report.json").read_text())
    if res.returncode != 0 or report.get("recovery_s") is None:
        raise RuntimeError(f"inv rebuild exited {res.returncode}: {(res.stderr or res.stdout).strip()[-300:]}")
    phases = {p["name"]: p for p in report["phases"]}
    install_start = phases["install_servers"]["started_at"]
    return {"recovery_s": report["recovery_s"], "duration_s": report["duration_s"],
            "install_to_ready_s": round(report["recovery_end_at"] - install_start, 3),
            "bootstrap_to_ready_s": round(report["recovery_end_at"] - phases["bootstrap"]["started_at"], 3),
            "phases": {name: p["duration_s"] for name, p in phases.items()}}


def manual_rebuild(full: FullLab, wait_s: int = 120, timeout_s: float = 600) -> dict:
    """One run of the manual procedure (its waits bounded by ``wait_s``); returns its JSON.
    Raises RuntimeError when it fails."""
    res = subprocess.run([sys.executable, "-m", "tests.bench.baseline_manual", "--inventory", str(full.inventory),
                          "--timeout", str(wait_s)], cwd=REPO, capture_output=True, text=True, env=full.env(),
                         timeout=timeout_s, stdin=subprocess.DEVNULL)
    try:
        out = json.loads(res.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise RuntimeError(f"manual procedure exited {res.returncode}: {res.stderr.strip()[-300:]}") from None
    if not out["ok"]:
        raise RuntimeError(f"manual procedure failed: {out['error']}")
    return out


def run(progress, subnet: str, reps: int = 5, while_up: Callable[[FullLab], None] | None = None) -> BenchResult:
    """``reps`` rounds of drtool + manual on one homelab lab; ``while_up(lab)`` runs before the lab stops."""
    result = BenchResult("recovery")
    full = start_full_lab(subnet, nodes=2)
    try:
        cp = critical_path_s(full)
        progress(f"recovery: critical path {cp:.2f} s; warm-up rebuild")
        drtool_rebuild(full)
        ours: list[dict] = []
        manual: list[dict] = []
        failures: list[str] = []
        for i in range(reps):
            order = ("drtool", "manual") if i % 2 == 0 else ("manual", "drtool")
            got: dict[str, dict] = {}
            for who in order:
                try:
                    got[who] = drtool_rebuild(full) if who == "drtool" else manual_rebuild(full)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    failures.append(f"round {i + 1} {who}: {exc}")
            if len(got) == 2:       # only complete rounds give a ratio
                ours.append(got["drtool"])
                manual.append(got["manual"])
                progress(f"recovery: round {i + 1}/{reps}: drtool {got['drtool']['recovery_s']:.2f} s, "
                         f"manual {got['manual']['total_s']:.2f} s")
            else:
                progress(f"recovery: round {i + 1}/{reps} incomplete: {failures[-1]}")
        if while_up:
            while_up(full)
    finally:
        stop_full_lab_dir(full.lab)
    result.data = {"critical_path_s": round(cp, 3), "failures": failures, "drtool_runs": ours, "manual_runs": manual}
    if not ours:
        result.error = "no complete round: " + "; ".join(failures[-2:])
        return result
    rec = [r["recovery_s"] for r in ours]
    inst = [r["install_to_ready_s"] for r in ours]
    man = [m["total_s"] for m in manual]
    result.data.update({
        "drtool_recovery_s": Spread.of(rec).as_dict(),
        "drtool_install_to_ready_s": Spread.of(inst).as_dict(),
        "drtool_bootstrap_to_ready_s": Spread.of([r["bootstrap_to_ready_s"] for r in ours]).as_dict(),
        "manual_total_s": Spread.of(man).as_dict(),
        "drtool_phase_median_s": {p: round(Spread.of([r["phases"][p] for r in ours]).median, 3)
                                  for p in ("teardown", *PHASES_AFTER_TEARDOWN)},
        "manual_step_median_s": {s["step"]: round(Spread.of([next(x["seconds"] for x in m["steps"] if x["step"] == s["step"])
                                                             for m in manual]).median, 3)
                                 for s in manual[0]["steps"]},
        "notes": [
            "manual baseline = tests/bench/baseline_manual.py: Pattern 3 one node at a time over ssh/scp, "
            "flux bootstrap github, then real kubectl wait on kustomizations, helmreleases and pods; it needs "
            "fixes a user must know (node password file, labels/taints, sops-age Secret, retry on 'no matching "
            "resources', and `--field-selector=status.phase!=Succeeded` because Completed helm-install pods never "
            "turn Ready and plain `kubectl wait pod --all -A` would wait out its timeout).",
            "critical path = the homelab scenario's least time to all Ready counted from the API answering and "
            "`flux bootstrap` applying (drtool.lab.scenarios.critical_path): it excludes teardown, the K3s install "
            "and the bootstrap CLI's own run, which drtool's figures include; per-phase medians are in the JSON.",
        ],
    })
    cps = [cp] * len(rec)
    result.rows += [
        Row("recovery (homelab): drtool `recovery_s` vs manual procedure", Spread.of(rec).show("s"),
            f"manual {Spread.of(man).show('s')}", ratios(rec, man).show("×"), "< 1× (faster than manual)",
            ratios(rec, man).median < 1),
        Row("recovery (homelab): drtool `recovery_s` vs critical path", Spread.of(rec).show("s"),
            f"critical path {cp:.2f} s", ratios(rec, cps).show("×")),
        Row("recovery (homelab): drtool install→all Ready vs critical path", Spread.of(inst).show("s"),
            f"critical path {cp:.2f} s", ratios(inst, cps).show("×")),
    ]
    return result
