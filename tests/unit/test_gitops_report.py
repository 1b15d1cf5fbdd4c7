"""The GitOps check's findings in the run's report (JSON, Markdown, HTML) and the drill's JUnit."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from drtool.drills.junit import junit_xml
from drtool.report.html import render_html
from drtool.report.markdown import render_markdown
from drtool.report.model import build_report, load_report
from drtool.report.sample import sample_record

DEADLOCK = "crd-ordering:infrastructure:Gateway/envoy-gateway-system/public"
CHECK = {
    "ok": True, "blockers": 1, "warnings": 1, "accepted": [DEADLOCK], "checkout": "/srv/gitops", "live": True,
    "notes": ["Kustomization flux-system/apps reads OCIRepository/flux-system/x: its content is not checked"],
    "findings": [
        {"id": DEADLOCK, "kind": "crd-ordering", "severity": "blocker", "subject": "Gateway/envoy-gateway-system/public",
         "message": "needs the CRD that HelmRelease/envoy-gateway-system/eg installs", "fix": "move it",
         "kustomization": "flux-system/infrastructure", "file": "infrastructure/gateway.yaml", "accepted": True},
        {"id": "drift:-:Deployment/web/debug", "kind": "drift", "severity": "warning", "subject": "Deployment/web/debug",
         "message": "will not come back", "fix": "commit it", "kustomization": "", "file": "", "accepted": False},
    ],
}


def _report(check=CHECK, kind="drill"):
    record = sample_record()
    record["kind"] = kind
    record["gitops_check"] = check
    return build_report(record)


def test_report_json_keeps_every_finding_and_what_was_accepted():
    report = _report()
    g = report["gitops_check"]
    assert g["accepted"] == [DEADLOCK] and g["live"] is True and g["checkout"] == "/srv/gitops"
    assert [(f["id"], f["accepted"], f["file"]) for f in g["findings"]] == [
        (DEADLOCK, True, "infrastructure/gateway.yaml"), ("drift:-:Deployment/web/debug", False, "")]
    assert (g["blockers"], g["warnings"]) == (1, 1)  # the check's counters travel with it


def test_markdown_and_html_list_the_findings():
    typed = load_report(_report())
    md = render_markdown(typed)
    assert "## GitOps check" in md and f"`{DEADLOCK}`" in md and "**blocker** (accepted)" in md
    assert "infrastructure/gateway.yaml" in md and "Accepted with `--accept`" in md
    html = render_html(typed)
    assert "GitOps check" in html and DEADLOCK in html
    skipped = load_report(_report({"skipped": "no flux.checkout in the inventory", "findings": []}))
    assert "Skipped: no flux.checkout in the inventory." in render_markdown(skipped)
    assert "GitOps check" not in render_markdown(load_report(build_report(sample_record())))


def test_junit_has_a_testcase_per_finding_and_fails_only_unaccepted_blockers():
    unaccepted = {**CHECK, "accepted": [], "findings": [{**CHECK["findings"][0], "accepted": False}, CHECK["findings"][1]]}
    for check, failed in ((CHECK, set()), (unaccepted, {f"gitops_check.{DEADLOCK}"})):
        root = ET.fromstring(junit_xml(_report(check)))
        cases = {c.get("name"): c for c in root.iter("testcase") if c.get("name", "").startswith("gitops_check.")}
        assert set(cases) == {f"gitops_check.{DEADLOCK}", "gitops_check.drift:-:Deployment/web/debug"}
        assert {n for n, c in cases.items() if c.find("failure") is not None} == failed


def test_the_drills_outputs_file_lists_the_findings(tmp_path, monkeypatch):
    import json
    from pathlib import Path

    from drtool.drills.drill import publish
    from drtool.inventory import load_inventory

    monkeypatch.setenv("DRTOOL_RUNS_DIR", str(tmp_path))
    run_dir = tmp_path / "20261206-070000-lab"
    run_dir.mkdir()
    (run_dir / "report.json").write_text(json.dumps(_report()))
    inv = load_inventory(Path(__file__).resolve().parents[2] / "inventory" / "lab.yaml")
    publish(inv, run_dir, None, None, None)
    outputs = json.loads((run_dir / "drill-outputs.json").read_text())
    assert [f["id"] for f in outputs["gitops_check"]["findings"]] == [DEADLOCK, "drift:-:Deployment/web/debug"]
    assert f"gitops_check.{DEADLOCK}" in (run_dir / "junit.xml").read_text()
