"""Drill results as JUnit XML, so CI systems (GitLab, Jenkins, GitHub test reporters) show them.

Layout: ``<testsuites>`` holding one ``<testsuite>`` per drill. Inside, in this order:

- one testcase per phase (``phase.<name>``): failed phases carry their message in a
  ``<failure>``; skipped/resumed phases are ``<skipped>``;
- one testcase per post-check (``post_check.<name>``);
- ``recovery_objective``: fails when the recovery time exceeded the objective, or the
  drill ended without a recovery time (verdict ``incomplete``/``fail``);
- one testcase per regression (``regression.<phase>``) with ``<failure type="regression">``.

Regressions are failed testcases, not just properties, by default: a drill that got 50 %
slower should turn a CI dashboard red, since nobody reads properties. Pipelines that
want regressions informational pass ``regressions_as_failures=False``: they then appear
only as ``regression.<phase>`` properties of the suite (with the ``regressions`` count,
which is always there).

All classnames are ``drtool.drill.<cluster>``; testcase names are unique in a suite (a
repeated phase gets `` #2``). Every text is redacted and stripped of characters XML 1.0
cannot carry, so the output always parses.
"""
from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from drtool.drills.history import (
    Regression,
    normalize_phase,
    phase_duration,
    phase_skipped,
    phase_succeeded,
    report_time,
)
from drtool.secret import redact

# XML 1.0 forbids most C0 controls even escaped; ANSI colour codes from tools are common.
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _clean(text: Any) -> str:
    """Redacted, ANSI-free, XML-safe text."""
    s = "" if text is None else str(text)
    return _XML_BAD.sub("", _ANSI.sub("", redact(s)))


def _seconds(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return 0.0
    return f if math.isfinite(f) and f >= 0 else 0.0


def _time_attr(v: Any) -> str:
    return f"{_seconds(v):.3f}"


class _Suite:
    """Builds one testsuite, keeping counts and testcase names unique."""

    def __init__(self, parent: ET.Element, name: str, classname: str):
        self.el = ET.SubElement(parent, "testsuite", name=_clean(name))
        self.props = ET.SubElement(self.el, "properties")
        self.classname = classname
        self.names: dict[str, int] = {}
        self.tests = self.failures = self.skipped = 0
        self.time = 0.0

    def prop(self, name: str, value: Any) -> None:
        ET.SubElement(self.props, "property", name=_clean(name), value=_clean(value))

    def case(self, name: str, time_s: Any = 0.0, *, failure: str | None = None,
             failure_type: str = "failure", skipped: str | None = None, output: str = "") -> ET.Element:
        count = self.names.get(name, 0) + 1
        self.names[name] = count
        unique = name if count == 1 else f"{name} #{count}"
        tc = ET.SubElement(self.el, "testcase", classname=self.classname, name=_clean(unique),
                           time=_time_attr(time_s))
        self.tests += 1
        if failure is not None:
            lines = _clean(failure).strip().splitlines()
            first = lines[0] if lines else failure_type
            f = ET.SubElement(tc, "failure", message=first[:500], type=failure_type)
            f.text = _clean(failure)
            self.failures += 1
        elif skipped is not None:
            ET.SubElement(tc, "skipped", message=_clean(skipped))
            self.skipped += 1
        if output:
            ET.SubElement(tc, "system-out").text = _clean(output)
        return tc

    def finish(self, time_s: float, timestamp: float | None, hostname: str) -> None:
        self.el.set("tests", str(self.tests))
        self.el.set("failures", str(self.failures))
        self.el.set("errors", "0")
        self.el.set("skipped", str(self.skipped))
        self.el.set("time", _time_attr(time_s))
        if timestamp:
            # JUnit's schema wants ISO 8601 without a zone; it is UTC.
            self.el.set("timestamp", datetime.fromtimestamp(timestamp, tz=timezone.utc)
                        .strftime("%Y-%m-%dT%H:%M:%S"))
        if hostname:
            self.el.set("hostname", _clean(hostname))
        if not len(self.props):
            self.el.remove(self.props)


def _add_drill(root: ET.Element, report: Mapping[str, Any], regs: Sequence[Regression],
               regressions_as_failures: bool) -> _Suite:
    cluster = str(report.get("cluster", "unknown"))
    run_id = str(report.get("run_id", "?"))
    suite = _Suite(root, f"drill {cluster} {run_id}", f"drtool.drill.{cluster}")
    verdict = str(report.get("verdict", "incomplete"))
    for key in ("run_id", "cluster", "verdict", "trigger", "recovery_s", "objective_s", "git_revision"):
        if report.get(key) is not None:
            suite.prop(key, report[key])
    versions = report.get("versions")
    if isinstance(versions, Mapping):
        for k, v in sorted(versions.items()):
            suite.prop(f"versions.{k}", v)
    suite.prop("regressions", len(regs))

    for phase in report.get("phases") or []:
        if not isinstance(phase, Mapping):
            continue
        name = f"phase.{normalize_phase(phase.get('name', '?'))}"
        message = str(phase.get("message") or "")
        outcome = str(phase.get("outcome", "")).lower()
        duration = phase_duration(phase)
        if phase_succeeded(phase):
            suite.case(name, duration, output=message)
        elif phase_skipped(phase):
            suite.case(name, duration, skipped=message or outcome)
        else:
            suite.case(name, duration,
                       failure=message or f"phase {outcome or 'did not finish'}", failure_type=outcome or "failure")

    for check in report.get("post_checks") or []:
        if not isinstance(check, Mapping):
            continue
        name = f"post_check.{check.get('name', '?')}"
        message = str(check.get("message") or "")
        if check.get("ok"):
            suite.case(name, check.get("duration_s"), output=message)
        else:
            suite.case(name, check.get("duration_s"), failure=message or "check failed")

    gitops = report.get("gitops_check")
    for finding in (gitops.get("findings") or []) if isinstance(gitops, Mapping) else []:
        if not isinstance(finding, Mapping):
            continue
        # A blocker that stopped the drill is a failure; an accepted one or a warning is reported, not failed.
        text = f"{finding.get('message', '')} Fix: {finding.get('fix', '')} ({finding.get('file') or '-'})"
        name = f"gitops_check.{finding.get('id', '?')}"
        if finding.get("severity") == "blocker" and not finding.get("accepted"):
            suite.case(name, 0.0, failure=text, failure_type="gitops-blocker")
        else:
            suite.case(name, 0.0, output=f"{finding.get('severity')}{' (accepted)' if finding.get('accepted') else ''}: {text}")

    recovery, objective = report.get("recovery_s"), report.get("objective_s")
    rec_txt = f"{_seconds(recovery):.1f}s" if recovery is not None else "no recovery time"
    obj_txt = f"{_seconds(objective):.0f}s" if objective is not None else "no objective"
    if verdict == "pass":
        suite.case("recovery_objective", recovery, output=f"recovered in {rec_txt} (objective {obj_txt})")
    elif verdict == "over-objective":
        suite.case("recovery_objective", recovery,
                   failure=f"recovery {rec_txt} exceeded the objective {obj_txt}", failure_type="over-objective")
    else:
        suite.case("recovery_objective", recovery,
                   failure=f"drill verdict {verdict}: {rec_txt} (objective {obj_txt})", failure_type=verdict)

    for reg in regs:
        if regressions_as_failures:
            suite.case(f"regression.{reg.phase}", reg.duration_s,
                       failure=f"slower than usual: {reg.describe()}", failure_type="regression")
        else:
            suite.prop(f"regression.{reg.phase}", reg.describe())

    started = report_time(report)
    ended = report.get("ended_at")
    total = _seconds(ended) - started if ended is not None and started else _seconds(recovery)
    suite.finish(max(total, 0.0), started or None, str(report.get("host") or ""))
    return suite


def junit_xml(
    drills: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    regressions: Mapping[str, Sequence[Regression]] | Sequence[Regression] | None = None,
    *,
    regressions_as_failures: bool = True,
) -> str:
    """JUnit XML text for one drill report or a list of them (one testsuite each).

    ``regressions`` is either the list for a single drill, or ``{run_id: [Regression]}``
    for several. Returns a UTF-8 XML document as ``str`` (with declaration).
    """
    reports: list[Mapping[str, Any]] = [drills] if isinstance(drills, Mapping) else list(drills)
    if regressions is None:
        by_run: Mapping[str, Sequence[Regression]] = {}
    elif isinstance(regressions, Mapping):
        by_run = regressions
    else:
        if len(reports) != 1:
            raise ValueError("a plain list of regressions needs exactly one drill; pass {run_id: [...]}")
        by_run = {str(reports[0].get("run_id", "?")): list(regressions)}

    root = ET.Element("testsuites", name="drtool drills")
    tests = failures = skipped = 0
    total = 0.0
    for report in reports:
        suite = _add_drill(root, report, list(by_run.get(str(report.get("run_id", "?")), ())),
                           regressions_as_failures)
        tests, failures, skipped = tests + suite.tests, failures + suite.failures, skipped + suite.skipped
        total += float(suite.el.get("time", "0"))
    root.set("tests", str(tests))
    root.set("failures", str(failures))
    root.set("errors", "0")
    root.set("skipped", str(skipped))
    root.set("time", f"{total:.3f}")
    ET.indent(root)
    text = ET.tostring(root, encoding="unicode", xml_declaration=False)
    # Parse back: a broken file would silently hide the drill from CI.
    ET.fromstring(text)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n"


def write_junit(path: str | Path, drills: Mapping[str, Any] | Sequence[Mapping[str, Any]],
                regressions: Mapping[str, Sequence[Regression]] | Sequence[Regression] | None = None,
                *, regressions_as_failures: bool = True) -> Path:
    """Write :func:`junit_xml` to ``path`` (UTF-8) and return it."""
    p = Path(path)
    p.write_text(junit_xml(drills, regressions, regressions_as_failures=regressions_as_failures),
                 encoding="utf-8")
    return p


__all__ = ["junit_xml", "write_junit"]
