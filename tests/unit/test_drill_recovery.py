"""A drill's recovery time runs until its post-checks pass; a failed post-check fails the drill."""
from __future__ import annotations

import copy

from drtool.report import build_report
from drtool.report.sample import sample_record


def _with_post_checks(kind: str, outcome: str) -> dict:
    rec = copy.deepcopy(sample_record("complete"))
    rec["kind"] = kind
    rec["phases"] = [p for p in rec["phases"] if p["name"] != "post_checks"]
    end = max(p["ended_at"] for p in rec["phases"])
    rec["phases"].append({"name": "post_checks", "started_at": end, "ended_at": end + 30.0, "outcome": outcome,
                          "message": "", "nodes": {}})
    rec["ended_at"] = end + 30.0
    if outcome != "ok":
        rec["status"], rec["stopped_at"] = "failed", "post_checks"
        rec["error"] = {"phase": "post_checks", "type": "DrtoolError", "message": "post-checks failed", "exit_code": 1}
    return rec


def test_drill_recovery_includes_post_checks():
    rebuild = build_report(_with_post_checks("rebuild", "ok"))
    drill = build_report(_with_post_checks("drill", "ok"))
    assert drill["recovery_s"] > rebuild["recovery_s"]
    post = next(p for p in drill["phases"] if p["name"] == "post_checks")
    assert abs(drill["recovery_end_at"] - post["ended_at"]) < 1e-3


def test_failed_post_check_fails_the_drill():
    report = build_report(_with_post_checks("drill", "failed"))
    assert report["verdict"] == "fail"
    assert report["recovery_s"] is None


def test_over_objective_status_gives_the_over_objective_verdict():
    rec = copy.deepcopy(sample_record("complete"))
    rec["status"] = "over-objective"
    rec["objective_s"] = 1.0
    report = build_report(rec)
    assert report["verdict"] == "over-objective", report.get("verdict_reason")
    assert report["partial"] is False
