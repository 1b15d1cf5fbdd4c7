"""Phases return typed results: the journal records the outcome the phase said, never one read from text."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from drtool.inventory import parse_inventory
from drtool.phases import backup, join
from drtool.phases.context import Options
from drtool.phases.result import PhaseResult, ok
from drtool.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def servers_only(tmp_path, monkeypatch):
    monkeypatch.setenv("DRTOOL_RUNS_DIR", str(tmp_path / "runs"))
    data = yaml.safe_load((REPO / "inventory" / "lab.yaml").read_text())
    data["nodes"] = [n for n in data["nodes"] if n["role"] == "server"]
    return parse_inventory(data, REPO / "inventory" / "lab.yaml")


def _phases(pipeline: Pipeline) -> dict[str, dict]:
    journal = json.loads((pipeline.run_obj.dir / "journal.json").read_text())
    return {p["name"]: p for p in journal["phases"]}


class SaysNothingButWorked:
    NAME = "kubeconfig"

    @staticmethod
    def run(ctx):
        return ok("nothing left to fetch, wrote the kubeconfig", path="x")


def test_noop_and_skipped_are_recorded_as_the_phase_says(servers_only):
    pipeline = Pipeline(servers_only, Options(quiet=True, skip_backup=True), phases=[backup, join, SaysNothingButWorked])
    assert pipeline.run() == 0
    phases = _phases(pipeline)
    assert phases["join_agents"]["outcome"] == "noop"
    assert phases["join_agents"]["message"] == "no agents in the inventory"
    assert phases["backup"]["outcome"] == "skipped"
    # A message starting with "nothing" is not a noop: the phase said ok.
    assert phases["kubeconfig"]["outcome"] == "ok"
    assert phases["kubeconfig"]["details"] == {"path": "x"}


def test_noop_phases_are_not_run_again_on_resume(servers_only):
    first = Pipeline(servers_only, Options(quiet=True, skip_backup=True), phases=[backup, join])
    first.run()
    again = Pipeline(servers_only, Options(quiet=True), resume=first.run_obj.record["run_id"], phases=[backup, join])
    assert again._todo(again._open_run()) == []


def test_a_plain_message_is_an_ok_result():
    assert PhaseResult.of("done") == PhaseResult("ok", "done")
    assert PhaseResult.of(None).outcome == "ok"
