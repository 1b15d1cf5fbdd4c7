"""JUnit XML for drills: structure CI tools read, failures with messages, unique names."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from drtool.drills.history import Regression
from drtool.drills.junit import junit_xml, write_junit
from drtool.secret import Secret

T0 = 1_790_000_000.0


def report(run_id="01HX", verdict="fail", cluster="homelab"):
    return {
        "run_id": run_id, "kind": "drill", "cluster": cluster, "started_at": T0, "ended_at": T0 + 620.5,
        "recovery_s": 600.0, "objective_s": 900.0, "verdict": verdict, "trigger": "timer", "host": "ops1",
        "git_revision": "abc123", "versions": {"k3s": "v1.30.4+k3s1", "flux": "2.3.0"},
        "phases": [
            {"name": "preflight", "duration_s": 2.0, "outcome": "ok", "message": "all good"},
            {"name": "backup", "duration_s": 0, "outcome": "skipped", "message": "resumed run"},
            {"name": "teardown", "started_at": T0 + 2, "ended_at": T0 + 2.5, "outcome": "noop",
             "message": "nothing to wipe"},
            {"name": "converge", "duration_s": 300.0, "outcome": "ok", "message": ""},
            # a retried phase appears twice
            {"name": "converge", "duration_s": 298.25, "outcome": "failed",
             "message": "HelmRelease logging/loki: \x1b[31mRetriesExceeded\x1b[0m\x00 install failed"},
            {"name": "post_checks", "outcome": "pending"},  # never reached
        ],
        "post_checks": [
            {"name": "pods-ready", "ok": True, "message": "42 pods", "duration_s": 1.5},
            {"name": "llm-on-node2", "ok": False, "message": "pod Pending: Unschedulable", "duration_s": 0.5},
        ],
    }


def cases(suite):
    return {tc.get("name"): tc for tc in suite.iter("testcase")}


def test_one_failed_drill():
    root = ET.fromstring(junit_xml(report()))
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "drill homelab 01HX"
    assert suite.get("timestamp") == "2026-09-21T14:13:20"
    assert suite.get("hostname") == "ops1" and suite.get("time") == "620.500"
    tc = cases(suite)
    assert list(tc) == ["phase.preflight", "phase.backup", "phase.teardown", "phase.converge",
                        "phase.converge #2", "phase.post_checks", "post_check.pods-ready",
                        "post_check.llm-on-node2", "recovery_objective"]
    assert tc["phase.teardown"].find("failure") is None and tc["phase.teardown"].get("time") == "0.500"
    assert tc["phase.post_checks"].find("skipped") is not None
    assert {t.get("classname") for t in tc.values()} == {"drtool.drill.homelab"}
    assert tc["phase.converge #2"].get("time") == "298.250"
    fail = tc["phase.converge #2"].find("failure")
    # Colour codes and NUL stripped, message kept.
    assert fail.get("message") == "HelmRelease logging/loki: RetriesExceeded install failed"
    assert fail.get("type") == "failed"
    assert tc["phase.backup"].find("skipped") is not None
    assert tc["phase.preflight"].find("failure") is None
    assert tc["post_check.llm-on-node2"].find("failure").get("message") == "pod Pending: Unschedulable"
    assert "verdict fail" in tc["recovery_objective"].find("failure").get("message")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped"), suite.get("errors")) == \
        ("9", "3", "2", "0")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["verdict"] == "fail" and props["versions.k3s"] == "v1.30.4+k3s1" and props["regressions"] == "0"
    assert root.get("tests") == "9" and root.get("failures") == "3"


def test_regressions_are_failed_testcases_or_properties():
    rep = report(verdict="pass")
    rep["phases"] = rep["phases"][:3]
    rep["post_checks"] = rep["post_checks"][:1]
    reg = Regression("converge", 300.0, 200.0, 4)
    suite = ET.fromstring(junit_xml(rep, [reg])).find("testsuite")
    tc = cases(suite)
    assert tc["recovery_objective"].find("failure") is None
    f = tc["regression.converge"].find("failure")
    assert f.get("type") == "regression" and "median 200.0s" in f.get("message")
    assert suite.get("failures") == "1"

    quiet = ET.fromstring(junit_xml(rep, [reg], regressions_as_failures=False)).find("testsuite")
    assert "regression.converge" not in cases(quiet) and quiet.get("failures") == "0"
    props = {p.get("name"): p.get("value") for p in quiet.iter("property")}
    assert props["regressions"] == "1" and "median 200.0s" in props["regression.converge"]


def test_several_drills_and_over_objective(tmp_path):
    a, b = report("r1", "pass"), report("r2", "over-objective", cluster="office")
    for r in (a, b):
        r["phases"], r["post_checks"] = r["phases"][:1], []
    path = write_junit(tmp_path / "junit.xml", [a, b], {"r2": [Regression("preflight", 5.0, 2.0, 3)]})
    root = ET.parse(path).getroot()
    s1, s2 = root.findall("testsuite")
    assert cases(s1)["recovery_objective"].find("failure") is None
    over = cases(s2)["recovery_objective"].find("failure")
    assert over.get("type") == "over-objective" and "600.0s exceeded the objective 900s" in over.get("message")
    assert "regression.preflight" in cases(s2) and "regression.preflight" not in cases(s1)
    assert {t.get("classname") for t in s2.iter("testcase")} == {"drtool.drill.office"}
    assert root.get("tests") == str(int(s1.get("tests")) + int(s2.get("tests")))


def test_secrets_never_reach_the_xml():
    token = Secret("K10deadbeefcafe::server:0123456789", "k3s token")
    rep = report()
    rep["phases"][3]["message"] = f"join failed with K3S_TOKEN={token.reveal()}"
    text = junit_xml(rep)
    assert "deadbeef" not in text and "K3S_TOKEN=***" in text


def test_plain_regression_list_needs_one_drill():
    with pytest.raises(ValueError):
        junit_xml([report("a"), report("b")], [Regression("converge", 1, 1, 1)])
