"""Drill history: loading runs/*/report.json, regressions against the median, table and HTML page."""
from __future__ import annotations

import json
import logging
import re
from html.parser import HTMLParser

import pytest
from rich.console import Console

from drtool.drills.history import (
    PHASE_NAMES,
    Regression,
    history_table,
    load_history,
    regressions,
    render_history_table,
)
from drtool.drills.html_history import render_history_html, write_history_html
from drtool.secret import Secret

T0 = 1_790_000_000.0  # a Wednesday in 2026, UTC


def drill(run_id: str, day: int, phases: dict[str, float], *, verdict: str = "pass", cluster: str = "homelab",
          outcome: dict[str, str] | None = None, objective: float = 900.0, kind: str = "drill") -> dict:
    started = T0 + day * 86400
    total = sum(phases.values())
    return {
        "schema": "drtool.report/v1", "run_id": run_id, "kind": kind, "cluster": cluster,
        "started_at": started, "ended_at": started + total, "recovery_s": total, "objective_s": objective,
        "verdict": verdict, "trigger": "timer", "host": "ops1",
        "phases": [{"name": n, "duration_s": d, "outcome": (outcome or {}).get(n, "ok"), "message": ""}
                   for n, d in phases.items()],
        "post_checks": [{"name": "pods-ready", "ok": verdict == "pass", "message": "", "duration_s": 1.0}],
    }


BASE = {"preflight": 3.0, "teardown": 20.0, "install_servers": 40.0, "bootstrap": 30.0, "converge": 200.0}


def write_run(runs, report):
    d = runs / report["run_id"]
    d.mkdir(parents=True)
    (d / "report.json").write_text(json.dumps(report))
    return d


# --------------------------------------------------------------------------- load_history


def test_load_history_sorts_filters_and_skips_broken_dirs(tmp_path, caplog):
    runs = tmp_path / "runs"
    # Directory names deliberately sort differently from start times.
    write_run(runs, drill("zz-oldest", 0, BASE))
    write_run(runs, drill("aa-newest", 2, BASE))
    write_run(runs, drill("mm-middle", 1, BASE))
    write_run(runs, drill("other-cluster", 3, BASE, cluster="office"))
    write_run(runs, drill("a-rebuild", 4, BASE, kind="rebuild"))
    (runs / "broken").mkdir()
    (runs / "broken" / "report.json").write_text("{not json")
    (runs / "empty").mkdir()
    (runs / "array").mkdir()
    (runs / "array" / "report.json").write_text("[]")
    with caplog.at_level(logging.WARNING, logger="drtool.drills.history"):
        got = load_history(runs, "homelab")
    assert [r["run_id"] for r in got] == ["zz-oldest", "mm-middle", "aa-newest"]
    warned = " ".join(r.getMessage() for r in caplog.records)
    for name in ("broken", "empty", "array"):
        assert name in warned
    assert [r["run_id"] for r in load_history(runs, "homelab", last=2)] == ["mm-middle", "aa-newest"]
    assert [r["run_id"] for r in load_history(runs, "homelab", kind="rebuild")] == ["a-rebuild"]
    assert load_history(tmp_path / "missing", "homelab") == []


# --------------------------------------------------------------------------- regressions


def test_regression_flagged_against_median_not_mean():
    # One wild outlier in history must not hide a real regression (a mean of 200,200,2000 would).
    prev = [drill("r1", 0, BASE), drill("r2", 1, BASE), drill("r3", 2, {**BASE, "converge": 2000.0})]
    cur = drill("r4", 3, {**BASE, "converge": 300.0})
    regs = regressions(cur, prev)
    assert regs == [Regression("converge", 300.0, 200.0, 3)]
    assert regs[0].delta_s == 100.0
    assert "converge 300.0s vs median 200.0s (+50%, 3 drills)" == regs[0].describe()


@pytest.mark.parametrize("phase,duration,flagged", [
    ("converge", 250.0, False),      # exactly +25 %: not more than the margin
    ("converge", 250.5, True),
    ("preflight", 3.9, False),       # +30 % but only 0.9 s: jitter, below min_delta_s
    ("preflight", 4.1, True),        # +37 % and 1.1 s
    ("install_servers", 20.0, False),  # faster is never a regression
])
def test_regression_needs_margin_and_min_delta(phase, duration, flagged):
    prev = [drill(f"r{i}", i, BASE) for i in range(3)]
    cur = drill("cur", 5, {**BASE, phase: duration})
    assert bool(regressions(cur, prev)) is flagged


def test_regressions_ignore_failed_phases_and_the_current_run_in_history():
    prev = [drill("r1", 0, BASE), drill("r2", 1, {**BASE, "converge": 900.0}, outcome={"converge": "failed"},
                                           verdict="fail")]
    cur = drill("cur", 2, {**BASE, "converge": 260.0})
    # r2's 900 s converge hit a deadline: it says nothing about speed, so the median is r1's 200 s.
    assert [r.phase for r in regressions(cur, prev)] == ["converge"]
    # Passing the whole history (current included) must not compare the drill with itself.
    assert regressions(cur, prev + [cur]) == regressions(cur, prev)
    # A failed current phase is reported as a failure, not as a regression.
    failed = drill("cur2", 3, {**BASE, "converge": 900.0}, outcome={"converge": "failed"}, verdict="fail")
    assert regressions(failed, prev) == []
    # No history: nothing to compare with.
    assert regressions(cur, []) == []


def test_regressions_come_in_pipeline_order():
    prev = [drill("r1", 0, BASE)]
    cur = drill("cur", 1, {k: v * 3 for k, v in BASE.items()})
    assert [r.phase for r in regressions(cur, prev)] == [p for p in PHASE_NAMES if p in BASE]


# --------------------------------------------------------------------------- table


def history_reports():
    return [
        drill("d1", 0, BASE),
        drill("d2", 7, {**BASE, "converge": 210.0}),
        drill("d3", 14, {**BASE, "converge": 400.0}, verdict="over-objective", objective=600.0),
        drill("d4", 21, {"preflight": 3.0, "teardown": 20.0, "install_servers": 41.0},
              outcome={"install_servers": "failed"}, verdict="fail"),
    ]


def test_history_table_rows_compare_with_earlier_drills():
    table = history_table(history_reports())
    assert table.cluster == "homelab"
    assert table.phases == ("preflight", "teardown", "install_servers", "bootstrap", "converge")
    d1, d2, d3, d4 = table.rows
    assert d1.date == "2026-09-21 14:13" and d1.verdict == "pass"
    assert d1.phases["converge"].median_s is None and d1.phases["converge"].text() == "200.0s"
    assert d2.phases["converge"].text() == "210.0s (+5%)" and not d2.phases["converge"].regressed
    assert d3.phases["converge"].median_s == 205.0 and d3.phases["converge"].regressed
    assert [r.phase for r in d3.regressions] == ["converge"]
    assert d4.phases["install_servers"].duration_s is None  # failed: not a duration to compare
    assert d4.phases["install_servers"].text() == "41.0s failed"
    assert d4.phases["converge"].text() == "-"


def test_rich_table_renders_without_interpreting_markup():
    reports = history_reports()
    reports[0]["run_id"] = "[bold]d1[/bold]"
    console = Console(width=250, record=True, color_system=None)
    console.print(render_history_table(history_table(reports)))
    out = console.export_text()
    assert "[bold]d1[/bold]" in out
    assert "over-objective" in out and "400.0s (+95%)" in out


# --------------------------------------------------------------------------- HTML


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs

    def handle_data(self, data):
        self.text.append(data)


def test_html_page_is_self_contained_and_escapes_untrusted_text(tmp_path):
    token = Secret("tok-SUPERSECRET-123", "test token")
    reports = history_reports()
    reports[1]["run_id"] = '<script>alert("x")</script>'
    reports[2]["cluster"] = reports[3]["cluster"] = "homelab"
    reports[3]["phases"][2]["message"] = f"failed with token {token.reveal()}"
    path = write_history_html(tmp_path / "history.html", reports, "homelab")
    page = path.read_text()
    parsed = _Collect()
    parsed.feed(page)
    assert "script" not in parsed.tags
    assert '<script>alert("x")</script>' in "".join(parsed.text)  # shown as text, not run
    assert "SUPERSECRET" not in page
    assert not re.search(r"https?://", page), "the page must not reference anything over the network"
    assert not [a for a in parsed.attrs if a[0] in ("src", "href")]
    assert parsed.tags.count("svg") == 2
    # Trend picture: one point per drill with a recovery time, the objective line, a regressed bar.
    # The failed drill's 64 s is not a recovery: marked on the axis, not drawn on the line.
    assert page.count("<circle") == 3 and page.count("&#x2715;") == 1
    assert 'class="objective"' in page
    assert page.count('class="regressed"') == 1 and page.count('class="failed"') == 1
    assert "Regressions in the latest drill" not in page  # latest drill (d4) failed, no regression
    assert '<td class="reg"' in page  # d3's converge


def test_html_lists_latest_regressions_and_handles_empty_history():
    reports = history_reports()[:3]
    page = render_history_html(reports)
    assert "Regressions in the latest drill" in page
    assert "converge 400.0s vs median 205.0s (+95%, 2 drills)" in page
    assert "No drills recorded yet" in render_history_html([], "homelab")


def test_noop_phases_pass_but_are_never_compared():
    # Teardown of already clean nodes is a 0.3 s "noop": it must not drag the median down.
    prev = [drill("r1", 0, BASE), drill("r2", 1, {**BASE, "teardown": 0.3}, outcome={"teardown": "noop"}),
            drill("r3", 2, {**BASE, "teardown": 0.3}, outcome={"teardown": "noop"})]
    cur = drill("cur", 3, {**BASE, "teardown": 21.0})
    assert regressions(cur, prev) == []
    # Journal-shaped entries (start/end, no duration_s) are measured too.
    j = drill("j", 4, BASE)
    for ph in j["phases"]:
        ph["started_at"], ph["ended_at"] = 100.0, 100.0 + ph.pop("duration_s") * 2
    assert [r.phase for r in regressions(j, prev)] == ["preflight", "teardown", "install_servers", "bootstrap",
                                                       "converge"]


def test_publish_drill_writes_every_output_and_survives_a_broken_one(tmp_path):
    import xml.etree.ElementTree as ET

    from prometheus_client.parser import text_string_to_metric_families

    from drtool.drills import publish_drill

    runs = tmp_path / "runs"
    for i in range(3):
        write_run(runs, drill(f"d{i}", i, BASE))
    cur = drill("d9", 9, {**BASE, "converge": 320.0})
    write_run(runs, cur)  # the drill's own report is already on disk: it must not be its own baseline
    prom = tmp_path / "textfile"
    prom.mkdir()
    out = publish_drill(cur, runs, junit_path=tmp_path / "junit.xml", textfile_dir=prom,
                        history_html_path=tmp_path / "missing-dir" / "history.html")
    assert [r.phase for r in out.regressions] == ["converge"] and out.history_size == 3
    assert ET.parse(out.junit_path).getroot().find("testsuite/testcase[@name='regression.converge']") is not None
    metrics = {s.name: s.value for f in text_string_to_metric_families(out.textfile_path.read_text())
               for s in f.samples}
    assert metrics["drtool_drill_regressions"] == 1
    # The history page could not be written; that is reported, not raised.
    assert out.history_html_path is None
    assert len(out.errors) == 1 and "history page" in out.errors[0]
    assert out.to_dict()["regressions"][0]["median_s"] == 200.0

    ok = publish_drill(cur, runs, history_html_path=tmp_path / "history.html")
    assert ok.errors == () and "d9" in ok.history_html_path.read_text()
