"""The critical path with cached images counts the K3s start: each node imports its kept archives
before its kubelet runs (k3s pkg/cli/server/server.go, pkg/agent/run.go order)."""
from __future__ import annotations

import pytest
import yaml

from drtool.lab.gitops_repo import fixture_dir
from drtool.lab.scenarios import builtin_scenario_path, critical_path, parse_scenario

GRAFANA = "docker.io/grafana/grafana:12.2.0"          # 190 MB in homelab-costs
LLAMA = "ghcr.io/ggerganov/llama.cpp:server"          # 45 MB, runs on node2 (hardware=heavy)


def _costs(**images) -> object:
    data = yaml.safe_load(builtin_scenario_path("homelab-costs").read_text())
    data["time_scale"] = 1.0
    data["images"].update(images)
    return parse_scenario(data, "homelab-costs")


def test_without_kept_images_the_path_starts_when_the_api_answers() -> None:
    sc = _costs()
    base = critical_path(sc, fixture_dir(), nudged=True)
    assert critical_path(sc, fixture_dir(), nudged=True, kept={"node1": [], "node2": []}) == pytest.approx(base)


def test_the_servers_import_holds_up_the_flux_controllers() -> None:
    sc = _costs()
    base = critical_path(sc, fixture_dir(), nudged=True)
    # 190 MB compressed, archive 2× that, read at 200 MB/s: node1, where the Flux controllers run,
    # turns Ready 1.9 s later, and everything after it follows.
    assert critical_path(sc, fixture_dir(), nudged=True, kept={"node1": [GRAFANA]}) == pytest.approx(base + 1.9)
    # Timers or nudges, the start is the same.
    timers = critical_path(sc, fixture_dir())
    assert critical_path(sc, fixture_dir(), kept={"node1": [GRAFANA]}) == pytest.approx(timers + 1.9)


def test_an_agents_import_delays_only_what_runs_on_it() -> None:
    slow_disk = _costs(disk_mb_s=1.0)                  # llama.cpp's archive: 90 s to import
    base = critical_path(slow_disk, fixture_dir(), nudged=True)
    with_agent = critical_path(slow_disk, fixture_dir(), nudged=True, kept={"node2": [LLAMA]})
    # node2 registers 90 s later; its pods (loki, llama.cpp) and what waits on them follow.
    assert with_agent > base + 85
    assert with_agent <= base + 90 + 1e-6


def test_lab_critical_path_prints_the_nudged_figure_with_nudged() -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    inv = Path(sys.executable).parent / "inv"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(inv), "lab.critical-path", "--scenario", "homelab", *args], capture_output=True,
                              text=True, timeout=60, cwd=root)

    timers, nudged = run(), run("--nudged")
    assert timers.returncode == nudged.returncode == 0, timers.stderr + nudged.stderr
    # homelab: workloads waits one 30 s × 0.05 requeue for infrastructure without nudges (4.5 s).
    assert timers.stdout.startswith("4.50s") and "requeue takes 1.5 s" in timers.stdout
    assert nudged.stdout.startswith("3.20s") and "nudged: no 30 s dependency requeue waits" in nudged.stdout
