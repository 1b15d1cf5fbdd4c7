"""report.json, report.md and compare: what an operator reads after a rebuild."""
from __future__ import annotations

import json
import re

import pytest

from drtool.errors import BadInput
from drtool.report import build_report, compare, load_report, render_compare_md, render_markdown, write_reports
from drtool.report.mermaid import gantt, task_text
from drtool.report.sample import T0, sample_record
from drtool.secret import Secret

NOW = T0 + 400


def report_of(variant: str = "complete", **changes) -> dict:
    record = sample_record(variant)
    record.update(changes)
    return build_report(record, now=NOW)


# --- build_report --------------------------------------------------------------------------

def test_complete_run_times_recovery_from_teardown_to_converged():
    r = report_of("complete")
    assert r["schema"] == "drtool.report/v1"
    assert (r["run_id"], r["cluster"], r["inventory"]) == ("20251126-234501-homelab", "homelab", "inventory/homelab.yaml")
    assert r["versions"]["k3s"] == "v1.31.4+k3s1"
    # teardown starts at +28.0 s; converge starts at +156.2 s and ends 187.4 s later
    assert r["recovery_start_phase"] == "teardown"
    assert r["recovery_start_at"] == T0 + 28.0
    assert r["recovery_s"] == pytest.approx(156.2 + 187.4 - 28.0)
    assert r["objective_margin_s"] == pytest.approx(1200 - r["recovery_s"])
    assert (r["verdict"], r["partial"], r["stopped_at"]) == ("pass", False, None)
    assert r["duration_s"] == pytest.approx(348.5)


def test_complete_run_phases_steps_and_objects():
    r = report_of("complete")
    phases = {p["name"]: p for p in r["phases"]}
    assert list(phases)[:3] == ["preflight", "backup", "teardown"]
    assert phases["install_servers"]["duration_s"] == pytest.approx(34.1)
    assert phases["install_servers"]["offset_s"] == pytest.approx(47.5)
    install = phases["install_servers"]["nodes"]["node1"][1]
    assert (install["step"], install["duration_s"], install["exit_code"]) == ("install", pytest.approx(27.5), 0)

    objects = {o["id"]: o for o in r["objects"]}
    loki = objects["HelmRelease/logging/loki"]
    # ready 118.9 s into converge; converge started 128.2 s after teardown did
    assert loki["ready_s"] == pytest.approx(128.2 + 118.9)
    assert loki["wait_s"] == pytest.approx(118.9 - 9.9)
    assert loki["critical"] and loki["outcome"] == "ready"
    assert not objects["HelmRelease/logging/alloy"]["critical"]
    assert [h["state"] for h in loki["history"]] == ["InProgress", "Current"]
    assert loki["history"][-1]["t_s"] == pytest.approx(loki["ready_s"])
    assert r["converge"]["objects_ready"] == r["converge"]["objects_total"] == len(r["objects"])


def test_critical_path_says_what_each_link_added():
    path = report_of("complete")["critical_path"]
    assert [s["id"] for s in path][-1] == "Kustomization/flux-system/workloads"
    assert path[0]["waits_on"] is None
    # infrastructure was Ready 2.8 s after loki, which it health-checks
    infra = next(s for s in path if s["id"] == "Kustomization/flux-system/infrastructure")
    assert infra["waits_on"] == "HelmRelease/logging/loki"
    assert infra["added_s"] == pytest.approx(121.7 - 118.9)
    # The first link is charged its own wait only, not everything since recovery start.
    r = report_of("complete")
    first = next(o for o in r["objects"] if o["id"] == path[0]["id"])
    assert path[0]["added_s"] == pytest.approx(first["wait_s"]) and path[0]["added_s"] < path[0]["ready_s"]


def test_journal_state_never_reaches_the_report():
    text = json.dumps(report_of("complete"))
    assert "token_file" not in text and "backup/token" not in text


def test_preflight_failure_is_a_partial_failed_report():
    r = report_of("preflight-failed")
    assert (r["verdict"], r["partial"], r["stopped_at"]) == ("fail", True, "preflight")
    assert r["recovery_s"] is None and r["recovery_start_phase"] is None
    assert r["error"]["type"] == "PreflightFailed" and r["error"]["exit_code"] == 3
    assert "sudo requires a password" in r["verdict_reason"]
    assert r["objects"] == [] and r["converge"] is None and r["post_checks"] == []


def test_interrupted_run_says_where_it_stopped():
    r = report_of("interrupted")
    assert (r["verdict"], r["partial"], r["stopped_at"], r["status"]) == ("incomplete", True, "install_servers",
                                                                          "interrupted")
    last = r["phases"][-1]
    assert (last["name"], last["outcome"], last["ended_at"], last["duration_s"]) == \
        ("install_servers", "interrupted", None, None)
    md = render_markdown(load_report(r))
    assert "**Partial report:** the run stopped in `install_servers` (status: interrupted)" in md


def test_stopped_at_is_derived_when_the_journal_lacks_it():
    record = sample_record("interrupted")
    record.update(stopped_at=None, error=None, status="running", ended_at=None)
    r = build_report(record, now=NOW)
    assert (r["stopped_at"], r["verdict"]) == ("install_servers", "incomplete")


def test_not_converged_lists_failures_and_pending():
    r = report_of("not-converged")
    assert r["verdict"] == "fail" and r["recovery_s"] is None
    (f,) = r["failures"]
    assert (f["object"], f["reason"]) == ("HelmRelease/logging/loki", "RetriesExceeded")
    assert f["blocks"] == ["Kustomization/flux-system/infrastructure", "Kustomization/flux-system/workloads"]
    assert any("InstallFailed" in e for e in f["events"])
    assert "Kustomization/flux-system/workloads" in r["pending"]
    outcomes = {o["id"]: o["outcome"] for o in r["objects"]}
    assert outcomes["HelmRelease/logging/loki"] == "failed"
    assert outcomes["StatefulSet/logging/loki"] == "pending"


def test_recovery_counts_from_run_start_without_teardown():
    record = sample_record("complete")
    record["phases"] = [p for p in record["phases"] if p["name"] != "teardown"]
    r = build_report(record, now=NOW)
    assert r["recovery_start_phase"] is None and r["recovery_start_at"] == T0
    assert r["recovery_s"] == pytest.approx(156.2 + 187.4)


def _verdict(**changes) -> tuple[str, str]:
    record = sample_record("complete")
    for key, value in changes.items():
        if key == "converged":
            record["converge"]["converged"] = value
            record["converge"]["outcome"] = "deadline"
        elif key == "check_ok":
            record["post_checks"][1]["ok"] = value
        else:
            record[key] = value
    r = build_report(record, now=NOW)
    return r["verdict"], r["verdict_reason"]


@pytest.mark.parametrize("changes, verdict, words", [
    ({}, "pass", "within the 1200s objective"),
    ({"objective_s": None}, "pass", "no objective"),
    ({"objective_s": 300}, "over-objective", "over the 300s objective"),
    ({"objective_s": 316}, "pass", "within"),               # 315.6 s is within 316 s
    ({"converged": False}, "fail", "did not converge"),
    ({"check_ok": False}, "fail", "pvc-data-present"),
    ({"status": "running", "ended_at": None}, "incomplete", "still running"),
    ({"status": "interrupted"}, "incomplete", "interrupted"),
    ({"status": "failed", "error": {"phase": "bootstrap", "type": "PermanentError", "message": "repo not found"}},
     "fail", "repo not found"),
    ({"converge": None, "flags": {"dry_run": True}}, "incomplete", "dry run"),
    ({"converge": None}, "incomplete", "before the cluster converged"),
])
def test_verdict_rules(changes, verdict, words):
    got, reason = _verdict(**changes)
    assert got == verdict
    assert words in reason


def test_bad_record_names_the_field():
    record = sample_record("complete")
    record["phases"][2]["started_at"] = "yesterday"
    with pytest.raises(BadInput, match=r"phases\[2\]\.started_at"):
        build_report(record)
    with pytest.raises(BadInput, match="schema"):
        build_report({**sample_record(), "schema": "drtool.run/v9"})


def test_secrets_are_redacted_everywhere(tmp_path):
    token = Secret("K10aa3f9c0ffee1234::server:s3cr3t", label="k3s-token")
    record = sample_record("not-converged")
    record["error"]["message"] = f"join failed with token {token.reveal()}"
    record["converge"]["failures"][0]["events"].append(f"Warning: bad token {token.reveal()}")
    paths = write_reports(tmp_path, record, now=NOW)
    for path in paths.values():
        text = path.read_text()
        assert token.reveal() not in text
        assert "***" in text.replace("\\*", "*")  # Markdown escapes the mask's stars


# --- write_reports -------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["complete", "preflight-failed", "interrupted", "not-converged"])
def test_write_reports_writes_three_files_atomically(tmp_path, variant):
    paths = write_reports(tmp_path, sample_record(variant), now=NOW)
    assert set(paths) == {"json", "md", "html"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.json", "report.md"]
    assert json.loads(paths["json"].read_text()) == build_report(sample_record(variant), now=NOW)
    assert paths["md"].read_text().startswith("# Rebuild report: homelab")


# --- markdown ------------------------------------------------------------------------------

GANTT_LINE = [
    re.compile(r"^gantt$"),
    re.compile(r"^    title [A-Za-z0-9 ._/()=+,-]+$"),
    re.compile(r"^    dateFormat x$"),
    re.compile(r"^    axisFormat %H:%M:%S$"),
    re.compile(r"^    section [A-Za-z0-9 ._/()=+,-]+$"),
    # task: text without ':' '#' ';' '%', then tags, a unique id, start and end in epoch ms
    re.compile(r"^    (?!(section|title|click|call|dateFormat|axisFormat)\b)[A-Za-z0-9 ._/()=+,-]+ "
               r":((done|active|crit|milestone), )*[a-z][a-z0-9]*, \d{13}, \d{13}$"),
]


def _gantt_block(md: str) -> list[str]:
    blocks = re.findall(r"```mermaid\n(.*?)\n```", md, re.S)
    assert len(blocks) == 1
    return blocks[0].split("\n")


def _check_gantt(lines: list[str]) -> None:
    assert lines[0] == "gantt"
    ids = []
    for line in lines:
        assert any(p.match(line) for p in GANTT_LINE), f"not valid gantt syntax: {line!r}"
        m = re.search(r", ([a-z][a-z0-9]*), (\d+), (\d+)$", line)
        if m:
            ids.append(m.group(1))
            assert int(m.group(3)) > int(m.group(2))
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("variant", ["complete", "interrupted", "not-converged", "preflight-failed"])
def test_markdown_has_a_valid_gantt_chart(variant):
    lines = _gantt_block(render_markdown(load_report(report_of(variant))))
    _check_gantt(lines)
    assert "    section Phases" in lines


def test_gantt_survives_hostile_names():
    record = sample_record("complete")
    objs = record["converge"]["objects"]
    objs[0]["name"] = "evil: name #35; %% comment"
    objs[0]["kind"] = "section"
    objs[1]["name"] = "line\nbreak"
    record["phases"][0]["name"] = "title: x"
    lines = gantt(load_report(build_report(record, now=NOW))).split("\n")
    _check_gantt(lines)
    assert task_text("click me") == "- click me"
    assert task_text("a:b#c;d%e") == "a-b-c-d-e"


def test_markdown_reads_in_a_minute():
    md = render_markdown(load_report(report_of("complete")))
    assert md.splitlines()[2] == "**homelab: PASS, recovered in 5m 16s (objective 20m 00s)**"
    for heading in ("## Timeline", "## Phases", "### Steps per node", "## Critical path", "## Slowest objects",
                    "## Post-deploy checks"):
        assert heading in md
    assert "| `install_servers` | ok | +0:48 | 34.1s |" in md
    slow = md.split("## Slowest objects")[1].split("##")[0]
    rows = [line for line in slow.splitlines() if line.startswith("| `")]
    assert len(rows) == 10
    assert rows[0].startswith("| `Kustomization/flux-system/workloads` | +2:15 | +5:15 | 3m 00s | yes |")


def test_markdown_failures_section():
    md = render_markdown(load_report(report_of("not-converged")))
    assert "### HelmRelease/logging/loki: RetriesExceeded" in md
    assert "Blocks: workloads waits on infrastructure which waits on HelmRelease logging/loki" in md
    assert "- InstallFailed: Helm install failed for release logging/loki (x3)" in md
    assert "## Still pending" in md


def test_markdown_escapes_table_breakers():
    record = sample_record("complete")
    record["phases"][0]["message"] = "a | b <img src=x onerror=alert(1)>\nsecond line"
    md = render_markdown(load_report(build_report(record, now=NOW)))
    row = next(line for line in md.splitlines() if line.startswith("| `preflight`"))
    assert row.count(" | ") == 4          # still five cells
    assert "<img" not in md and "a \\| b &lt;img" in row


# --- compare -------------------------------------------------------------------------------

def test_compare_phase_and_object_deltas():
    a = report_of("complete")
    slower = sample_record("complete")
    slower["run_id"] = "20251203-010000-homelab"
    phases = {p["name"]: p for p in slower["phases"]}
    phases["install_servers"]["ended_at"] += 12.0
    del phases["backup"]
    slower["phases"] = list(phases.values())
    loki = next(o for o in slower["converge"]["objects"] if o["id"] == "HelmRelease/logging/loki")
    loki["ready_at"] += 20.0
    slower["converge"]["ended"] += 25.0
    b = build_report(slower, now=NOW)

    c = compare(a, b)
    assert c["recovery"]["delta_s"] == pytest.approx(25.0)
    rows = {p["name"]: p for p in c["phases"]}
    assert rows["install_servers"]["delta_s"] == pytest.approx(12.0)
    assert rows["install_servers"]["delta_pct"] == pytest.approx(35.2)
    assert rows["teardown"]["delta_s"] == 0
    assert rows["backup"]["b_s"] is None and rows["backup"]["delta_s"] is None
    assert c["objects"][0]["id"] == "HelmRelease/logging/loki"
    assert c["objects"][0]["delta_s"] == pytest.approx(20.0)

    md = render_compare_md(c)
    assert "| `install_servers` | 34.1s | 46.1s | +12.0s | +35% |" in md
    assert "| `backup` | 24.8s | — | — | — |" in md
    assert "| `HelmRelease/logging/loki` | +4:07 | +4:27 | +20.0s |" in md
    assert "Recovery time: 5m 16s → 5m 41s (+25.0s, +8%)" in md


def test_charts_of_big_clusters_keep_what_matters():
    record = sample_record("complete")
    base = record["converge"]["objects"][4]
    for i in range(500):
        record["converge"]["objects"].append({**base, "id": f"Pod/ns/p{i}", "kind": "Pod", "name": f"p{i}",
                                              "namespace": "ns", "history": []})
    lines = _gantt_block(render_markdown(load_report(build_report(record, now=NOW))))
    _check_gantt(lines)
    assert "    section Flux objects (40 of 516)" in lines
    tasks = "\n".join(lines)
    for oid in ("Kustomization flux-system/workloads", "HelmRelease logging/loki", "Deployment llm/llama-cpp"):
        assert oid in tasks  # the critical path is always drawn
