"""--json on the read-only views, and their tables at 80 columns (run as an operator does)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.unit.test_drill_history import drill, write_run

ROOT = Path(__file__).resolve().parents[2]
INV = Path(sys.executable).parent / "inv"
PHASES = {"preflight": 3.0, "backup": 12.0, "teardown": 20.0, "install_servers": 40.0, "join_agents": 25.0,
          "kubeconfig": 1.0, "nodes_ready": 15.0, "restore_secrets": 2.0, "bootstrap": 30.0, "converge": 200.0}


def inv(*args: str, runs: Path | None = None, columns: int = 80) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns)}
    if runs is not None:
        env["DRTOOL_RUNS_DIR"] = str(runs)
    return subprocess.run([str(INV), *args], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)


def lab_inventory(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "inventory/lab.yaml").read_text())
    data["cluster"]["name"] = "homelab"
    path = tmp_path / "inv.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def history_runs(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    for day in range(5):
        write_run(runs, drill(f"2026090{day}-030000-homelab-drill", day, PHASES))
    write_run(runs, drill("20260906-030000-homelab-drill", 6, {**PHASES, "converge": 400.0}, verdict="over-objective",
                          objective=300.0))
    return runs


def test_drill_history_json(tmp_path):
    res = inv("drill.history", "-i", str(lab_inventory(tmp_path)), "--json", runs=history_runs(tmp_path))
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["schema"] == "drtool.drill-history/v1" and data["cluster"] == "homelab"
    assert [d["run_id"] for d in data["drills"]][-1] == "20260906-030000-homelab-drill"
    last = data["drills"][-1]
    assert last["verdict"] == "over-objective" and last["phases"]["converge"]["regressed"] is True
    assert last["phases"]["converge"]["median_s"] == 200.0 and last["regressions"][0]["phase"] == "converge"


def test_drill_history_json_with_no_drills_is_an_empty_list(tmp_path):
    res = inv("drill.history", "-i", str(lab_inventory(tmp_path)), "--json", runs=tmp_path / "none")
    assert res.returncode == 0 and json.loads(res.stdout)["drills"] == []


def test_drill_history_table_fits_80_columns(tmp_path):
    runs = history_runs(tmp_path)
    res = inv("drill.history", "-i", str(lab_inventory(tmp_path)), runs=runs, columns=80)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
    last = next(line for line in lines if "20260906-030000-homelab-drill" in line)
    assert "over-objective" in last and "548.0s" in last
    assert "20260906-030000-homelab-drill: converge 400.0s (+100%)" in lines
    # A wide terminal still gets a column per phase.
    wide = inv("drill.history", "-i", str(lab_inventory(tmp_path)), runs=runs, columns=250)
    assert "install_servers" in wide.stdout and "--json has them all" not in wide.stdout


def test_report_compare_json(tmp_path):
    from drtool.report.sample import sample_record

    runs = tmp_path / "runs"
    for rid, t0 in (("run-a", 1_790_000_000.0), ("run-b", 1_790_086_400.0)):
        record = {**sample_record("complete", t0), "run_id": rid}
        (runs / rid).mkdir(parents=True)
        (runs / rid / "journal.json").write_text(json.dumps(record))
    res = inv("report.compare", "run-a", "run-b", "--json", runs=runs)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["schema"] == "drtool.report-compare/v1"
    assert (data["a"]["run_id"], data["b"]["run_id"]) == ("run-a", "run-b")
    assert "converge" in [p["name"] for p in data["phases"]] and data["recovery"]["delta_s"] == 0
    assert data["objects"] and all("delta_s" in o for o in data["objects"])


def test_runbook_list_json_and_80_columns():
    res = inv("runbook.list", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    books = {b["name"]: b for b in data["runbooks"]}
    assert {"full-rebuild", "agent-replace"} <= set(books)
    assert "agent" in books["agent-replace"]["parameters"] and books["full-rebuild"]["steps"] > 5
    table = inv("runbook.list", columns=80)
    assert table.returncode == 0 and max(len(line) for line in table.stdout.splitlines()) <= 80, table.stdout


def test_dry_run_plan_json(tmp_path):
    res = inv("rebuild", "-i", str(ROOT / "inventory/lab.yaml"), "--dry-run", "--json", runs=tmp_path / "runs")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["schema"] == "drtool.plan/v1" and data["dry_run"] is True
    phases = [s["phase"] for s in data["steps"]]
    assert phases.index("teardown") < phases.index("install_servers") < phases.index("converge")
    assert all(set(s) == {"phase", "target", "action"} for s in data["steps"])
    assert not (tmp_path / "runs").exists()


def test_json_without_dry_run_is_refused_before_anything(tmp_path):
    res = inv("rebuild", "-i", str(ROOT / "inventory/lab.yaml"), "--json", "--yes", runs=tmp_path / "runs")
    assert res.returncode == 2 and "--json: only with --dry-run" in res.stderr
    assert not (tmp_path / "runs").exists()


def test_runbook_show_fits_80_columns():
    listed = json.loads(inv("runbook.list", "--json").stdout)["runbooks"]
    # One process shows them all (invoke runs the tasks in turn); each starts "<name>: ".
    res = inv(*[word for book in listed for word in ("runbook.show", book["name"])], columns=80)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, res.stdout
    starts = [next(i for i, line in enumerate(lines) if line.startswith(f"{book['name']}: ")) for book in listed]
    assert starts == sorted(starts), res.stdout
    for book, start, end in zip(listed, starts, [*starts[1:], len(lines)]):
        shown = lines[start:end]
        assert sum(line.lstrip().split(".")[0].isdigit() for line in shown) == book["steps"], "\n".join(shown)


def test_runbook_dry_run_plan_json(tmp_path):
    res = inv("runbook.run", "agent-replace", str(ROOT / "inventory/lab.yaml"), "--param", "agent=node2",
              "--dry-run", "--json", runs=tmp_path / "runs")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["schema"] == "drtool.runbook-plan/v1" and data["runbook"] == "agent-replace"
    assert [s["index"] for s in data["steps"]] == list(range(1, len(data["steps"]) + 1))
    assert all("{{" not in s["title"] for s in data["steps"])  # parameters filled in
    assert any(c["target"] == "node2" for s in data["steps"] for c in s["commands"])
    assert not (tmp_path / "runs").exists()
    refused = inv("runbook.run", "agent-replace", str(ROOT / "inventory/lab.yaml"), "--param", "agent=node2",
                  "--json", "--yes", runs=tmp_path / "runs")
    assert refused.returncode == 2 and "--json: only with --dry-run" in refused.stderr
