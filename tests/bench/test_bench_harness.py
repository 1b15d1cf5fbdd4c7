"""The benchmark harness's own logic: spreads, ratios, the results files, `inv bench` options,
and the manual-procedure baseline's inputs. Fast and lab-free; the benchmarks themselves run
with `make bench`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from drtool.errors import BadInput
from drtool.tasks.bench import harness_command
from tests.bench.baseline_manual import Notes
from tests.bench.bench_stats import BenchResult, Row, Spread, markdown_table, ratios, write_results

REPO = Path(__file__).resolve().parents[2]


def test_spread_reports_median_and_range():
    s = Spread.of([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s.n, s.median, s.min, s.max, s.q1, s.q3) == (5, 3.0, 1.0, 5.0, 2.0, 4.0)
    assert s.show("s", 1) == "3.0 s (min 1.0, max 5.0, n=5)"


def test_spread_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        Spread.of([])


def test_ratios_are_per_run_pairs():
    r = ratios([2.0, 9.0, 4.0], [1.0, 3.0, 4.0])
    assert (r.median, r.min, r.max) == (2.0, 1.0, 3.0)
    with pytest.raises(ValueError):
        ratios([1.0], [1.0, 2.0])


def test_table_escapes_pipes_and_shows_whether_targets_are_met():
    table = markdown_table([Row("a|b", "1 s", "2 s", "0.5×", "< 1×", True), Row("c", "3 s", "1 s", "3×", "≤ 1.5×", False),
                            Row("d", "1", "1", "1×")])
    lines = table.splitlines()
    assert lines[0] == "| benchmark | figure | baseline | ratio | target | met? |"
    assert "a\\|b" in lines[2] and lines[2].endswith("| yes |")
    assert lines[3].endswith("| **no** |") and lines[4].endswith("| — | — |")


def test_results_files_hold_rows_data_and_failures(tmp_path):
    ok = BenchResult("startup", rows=[Row("start-up: `inv --list`", "0.3 s", "0.05 s", "6×", "< 0.5 s", True)],
                     data={"notes": ["measured cold"]})
    broken = BenchResult("fanout", error="skipped: time budget (840 s) would be exceeded")
    meta = {"date": "2026-01-02", "machine": "2 cores", "commit": "abc123", "reps": 5, "wall_s": 700.0}
    js, md = write_results([ok, broken], meta, tmp_path / "results")
    assert (js.name, md.name) == ("2026-01-02.json", "2026-01-02.md")
    payload = json.loads(js.read_text())
    assert payload["benchmarks"]["startup"]["rows"][0]["met"] is True
    assert payload["benchmarks"]["fanout"]["error"].startswith("skipped")
    text = md.read_text()
    assert "| start-up: `inv --list` | 0.3 s |" in text
    assert "- startup: measured cold" in text and "- fanout: skipped" in text


def test_inv_bench_options_become_harness_arguments(tmp_path):
    argv = harness_command("startup, fanout", "7", str(tmp_path), "600")
    assert argv[1:] == ["-m", "tests.bench.run", "--only", "startup", "fanout", "--reps", "7",
                        "--out", str(tmp_path), "--budget", "600.0"]
    assert harness_command(None, None, None, None)[1:] == ["-m", "tests.bench.run"]


@pytest.mark.parametrize("kwargs, flag", [({"only": "startup,nope"}, "--only"), ({"reps": "0"}, "--reps"),
                                          ({"reps": "many"}, "--reps"), ({"budget": "soon"}, "--budget")])
def test_inv_bench_rejects_bad_options_naming_them(kwargs, flag):
    args = {"only": None, "reps": None, "out": None, "budget": None, **kwargs}
    with pytest.raises(BadInput) as exc:
        harness_command(**args)
    assert flag in str(exc.value)


def test_harness_refuses_an_unknown_benchmark():
    res = subprocess.run([sys.executable, "-m", "tests.bench.run", "--only", "nope"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "invalid choice: 'nope'" in res.stderr


def test_manual_baseline_reads_the_operators_notes_from_a_lab_inventory():
    notes = Notes.load(REPO / "inventory" / "lab.yaml")
    assert [(n.name, n.role) for n in notes.nodes] == [("node1", "server"), ("node2", "agent")]
    agent = notes.nodes[1]
    assert agent.labels == (("hardware", "heavy"),) and agent.taints == ("heavy=true:NoSchedule",)
    assert notes.server_args == ("--disable", "traefik")
    assert notes.install_script == (REPO / ".lab" / "artifacts" / "install.sh").resolve()
    assert notes.flux["path"] == "clusters/homelab" and notes.age_key is not None


def test_manual_baseline_needs_the_git_token_and_says_so():
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_TOKEN"}
    res = subprocess.run([sys.executable, "-m", "tests.bench.baseline_manual", "--inventory",
                          str(REPO / "inventory" / "lab.yaml")], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 2
    assert "GITHUB_TOKEN is not set" in res.stderr and res.stdout == ""
