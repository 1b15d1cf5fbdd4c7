"""The run journal is written through the same typed models the report reads it with."""
from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from drtool.report.record import RunRecord, parse_record
from drtool.run import Run


@pytest.fixture(autouse=True)
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("DRTOOL_RUNS_DIR", str(tmp_path))
    return tmp_path


def _journal(run: Run) -> dict:
    return json.loads((run.dir / "journal.json").read_text())


def test_a_new_run_is_a_valid_typed_record():
    run = Run.create("rebuild", "inv.yaml", "lab", objective_s=600.0, flags={"dry_run": False})
    rec = parse_record(_journal(run))
    assert (rec.run_id, rec.kind, rec.cluster, rec.status, rec.objective_s) == (run.record["run_id"], "rebuild", "lab", "running", 600.0)
    assert rec.phases == [] and rec.state == {} and rec.runbook is None


def test_phases_steps_and_finish_are_journaled_typed():
    run = Run.create("rebuild", "inv.yaml", "lab")
    run.start_phase("teardown")
    run.node_step("teardown", "node1", "uninstall", 10.0, 12.5, 0)
    run.end_phase("teardown", "ok", "wiped: node1", {"wiped": ["node1"]})
    run.finish("failed", stopped_at="install_servers",
               error={"phase": "install_servers", "type": "RemoteError", "message": "boom", "exit_code": 1})
    rec = parse_record(_journal(run))
    teardown = rec.phases[0]
    assert (teardown.outcome, teardown.message, teardown.details) == ("ok", "wiped: node1", {"wiped": ["node1"]})
    assert teardown.nodes["node1"][0].exit_code == 0 and teardown.ended_at >= teardown.started_at
    assert rec.error.type == "RemoteError" and rec.stopped_at == "install_servers"


def test_a_wrongly_typed_field_fails_where_it_is_written_not_in_the_report():
    run = Run.create("rebuild", "inv.yaml", "lab")
    run.phase("teardown")["started_at"] = "yesterday"
    with pytest.raises(ValidationError, match="started_at"):
        run.save()
    # What is on disk is still the last good journal.
    assert parse_record(_journal(run)).phases == []


def test_fields_the_models_do_not_name_are_kept_and_state_stays_shared():
    run = Run.create("rebuild", "inv.yaml", "lab")
    state = run.state
    run.record["converge"] = {"converged": True, "ended": 5.0, "api_requests": {"list": 9, "watch": 11}}
    run.save()
    state["kubeconfig"] = "/x"  # a phase's reference into the record survives a save
    run.save()
    journal = _journal(run)
    assert journal["converge"]["api_requests"] == {"list": 9, "watch": 11}
    assert journal["state"] == {"kubeconfig": "/x"}


def test_resume_reads_back_through_the_model():
    run = Run.create("rebuild", "inv.yaml", "lab")
    run.start_phase("preflight")
    run.finish("interrupted", stopped_at="preflight")
    again = Run.load(run.record["run_id"])
    again.resumed()
    assert again.record["status"] == "running" and again.record["flags"]["resumed"] is True
    assert isinstance(again.typed, RunRecord) and again.typed.phases[0].name == "preflight"
