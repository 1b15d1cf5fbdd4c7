"""node_exporter textfile: parsed back with prometheus_client's own parser."""
from __future__ import annotations

import os
import stat

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from drtool.drills.history import PHASE_NAMES, Regression
from drtool.drills.textfile import EXAMPLE_ALERT_RULES, METRICS, render_textfile, write_textfile

T0 = 1_790_000_000.0


def report(verdict="pass", cluster="homelab", ended=T0 + 500, phases=None):
    phases = phases if phases is not None else [
        {"name": "preflight", "duration_s": 2.5, "outcome": "ok"},
        {"name": "install-servers", "duration_s": 41.0, "outcome": "ok"},
        {"name": "converge", "duration_s": 300.0, "outcome": "failed" if verdict == "fail" else "ok"},
        {"name": "run-01HXYZ custom step", "duration_s": 1.0, "outcome": "ok"},
    ]
    return {"run_id": "01HXYZ", "kind": "drill", "cluster": cluster, "started_at": ended - 500,
            "ended_at": ended, "recovery_s": 480.0, "objective_s": 900.0, "verdict": verdict, "phases": phases}


def parse(text: str) -> dict[tuple[str, tuple], float]:
    """{(name, sorted labels): value}; also checks every family is a documented gauge."""
    out = {}
    for fam in text_string_to_metric_families(text):
        assert fam.type == "gauge", fam.name
        assert fam.documentation, fam.name
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def val(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


def test_passing_drill_metrics(tmp_path):
    path = write_textfile(tmp_path, report(), [Regression("converge", 300.0, 200.0, 3)])
    assert path == tmp_path / "drtool_drill.prom"
    text = path.read_text()
    s = parse(text)
    c = {"cluster": "homelab"}
    assert val(s, "drtool_drill_last_success_timestamp_seconds", **c) == T0 + 500
    assert val(s, "drtool_drill_last_run_timestamp_seconds", **c) == T0 + 500
    assert val(s, "drtool_drill_success", **c) == 1
    assert val(s, "drtool_drill_recovery_seconds", **c) == 480
    assert val(s, "drtool_drill_objective_seconds", **c) == 900
    assert val(s, "drtool_drill_regressions", **c) == 1
    assert val(s, "drtool_drill_phase_duration_seconds", phase="install_servers", **c) == 41.0
    phases = {dict(k[1])["phase"] for k in s if k[0] == "drtool_drill_phase_duration_seconds"}
    # Only the fixed label set: the custom step (which carries a run id) is not exported.
    assert phases == {"preflight", "install_servers", "converge"} and phases <= set(PHASE_NAMES)
    assert "01HXYZ" not in text
    for name in METRICS:
        assert f"# HELP {name} " in text and f"# TYPE {name} gauge" in text
    # Readable by node_exporter's user; no temp file left behind.
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["drtool_drill.prom"]


def test_failed_drill_keeps_last_success_from_previous_file(tmp_path):
    write_textfile(tmp_path, report(ended=T0))
    write_textfile(tmp_path, report("fail", ended=T0 + 86400))
    s = parse((tmp_path / "drtool_drill.prom").read_text())
    c = {"cluster": "homelab"}
    assert val(s, "drtool_drill_last_success_timestamp_seconds", **c) == T0
    assert val(s, "drtool_drill_last_run_timestamp_seconds", **c) == T0 + 86400
    assert val(s, "drtool_drill_success", **c) == 0
    # The failed phase's duration is still exported (a deadline hit is worth seeing).
    assert val(s, "drtool_drill_phase_duration_seconds", phase="converge", **c) == 300.0


def test_never_passed_has_no_last_success_and_other_clusters_are_kept(tmp_path):
    write_textfile(tmp_path, report("pass", cluster="office", ended=T0))
    write_textfile(tmp_path, report("over-objective", cluster='lab "b"\\x', ended=T0 + 10))
    s = parse((tmp_path / "drtool_drill.prom").read_text())
    assert val(s, "drtool_drill_success", cluster="office") == 1
    assert val(s, "drtool_drill_last_success_timestamp_seconds", cluster="office") == T0
    odd = 'lab "b"\\x'  # label escaping round-trips
    assert val(s, "drtool_drill_success", cluster=odd) == 0
    assert ("drtool_drill_last_success_timestamp_seconds", (("cluster", odd),)) not in s


def test_garbage_previous_file_is_replaced(tmp_path):
    (tmp_path / "drtool_drill.prom").write_text("this is {{ not prometheus\n")
    write_textfile(tmp_path, report())
    assert val(parse((tmp_path / "drtool_drill.prom").read_text()), "drtool_drill_success", cluster="homelab") == 1


def test_render_is_pure_and_orders_phases():
    text = render_textfile(report())
    lines = [ln for ln in text.splitlines() if ln.startswith("drtool_drill_phase_duration_seconds")]
    assert [ln.split('phase="')[1].split('"')[0] for ln in lines] == ["preflight", "install_servers", "converge"]


def test_failed_write_leaves_old_file_intact(tmp_path, monkeypatch):
    write_textfile(tmp_path, report(ended=T0))
    before = (tmp_path / "drtool_drill.prom").read_text()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_textfile(tmp_path, report("fail", ended=T0 + 5))
    assert (tmp_path / "drtool_drill.prom").read_text() == before
    assert os.listdir(tmp_path) == ["drtool_drill.prom"]


def test_example_alert_rules_are_valid_yaml_on_our_metrics():
    doc = yaml.safe_load(EXAMPLE_ALERT_RULES)
    rules = doc["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == {"DrtoolDrillNoRecentSuccess", "DrtoolDrillOverObjective",
                                           "DrtoolDrillRegression"}
    exprs = " ".join(r["expr"] for r in rules)
    assert "8 * 86400" in exprs
    for name in ("drtool_drill_last_success_timestamp_seconds", "drtool_drill_recovery_seconds",
                 "drtool_drill_objective_seconds", "drtool_drill_regressions"):
        assert name in exprs and name in METRICS
