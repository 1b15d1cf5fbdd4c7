"""Drills: history of drill runs and what is made from it.

- ``history``: load past ``runs/*/report.json``, phase regressions, table data.
- ``html_history``: a self-contained HTML trend page.
- ``junit``: JUnit XML for CI.
- ``textfile``: node_exporter textfile metrics and example alert rules.
- ``notify``: webhook notifications (JSON, Slack, Discord, ntfy, Alertmanager).
- ``schedule``: systemd service/timer units and crontab lines for scheduled drills.

Everything here works on report dicts (schema ``drtool.report/v1``) and writes files or
sends HTTP; nothing here touches a cluster. :func:`publish_drill` is the one call the
drill task makes once a drill's report is written.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from drtool.drills.history import Regression, history_table, load_history, regressions
from drtool.drills.html_history import write_history_html
from drtool.drills.junit import write_junit
from drtool.drills.notify import NotifyResult, Webhook, notify_all
from drtool.drills.textfile import write_textfile
from drtool.secret import redact

log = logging.getLogger(__name__)

__all__ = ["DrillOutputs", "Regression", "history_table", "load_history", "publish_drill", "regressions"]


@dataclass(frozen=True)
class DrillOutputs:
    """What :func:`publish_drill` produced; ``errors`` lists outputs that could not be written."""

    regressions: tuple[Regression, ...]
    history_size: int                       #: earlier drills the regressions were measured against
    junit_path: Path | None = None
    textfile_path: Path | None = None
    history_html_path: Path | None = None
    notifications: tuple[NotifyResult, ...] = ()
    errors: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for the run's report."""
        return {
            "regressions": [r.to_dict() for r in self.regressions],
            "history_size": self.history_size,
            "junit": str(self.junit_path) if self.junit_path else None,
            "textfile": str(self.textfile_path) if self.textfile_path else None,
            "history_html": str(self.history_html_path) if self.history_html_path else None,
            "notifications": [n.to_dict() for n in self.notifications],
            "errors": list(self.errors),
        }


def publish_drill(
    report: Mapping[str, Any],
    runs_dir: str | Path,
    *,
    history_last: int = 20,
    margin: float = 0.25,
    min_delta_s: float = 1.0,
    junit_path: str | Path | None = None,
    textfile_dir: str | Path | None = None,
    history_html_path: str | Path | None = None,
    webhooks: Sequence[Webhook] = (),
    report_url: str | None = None,
    notify_tries: int = 3,
) -> DrillOutputs:
    """Compare a finished drill with its history and publish every configured output.

    Regressions are measured against the last ``history_last`` earlier drills of the same
    cluster under ``runs_dir`` (the drill's own directory is excluded). Each output is
    optional and independent: one that fails is recorded in ``errors`` and the others
    still happen. Never raises for an output failure; the drill's verdict stands.
    """
    cluster = str(report.get("cluster", ""))
    run_id = report.get("run_id")
    history = [r for r in load_history(runs_dir, cluster, kind=str(report.get("kind", "drill")))
               if r.get("run_id") != run_id]
    previous = history[-history_last:] if history_last > 0 else []
    regs = tuple(regressions(report, previous, margin=margin, min_delta_s=min_delta_s))
    errors: list[str] = []
    written: dict[str, Path | None] = {"junit": None, "textfile": None, "history_html": None}

    def attempt(key: str, what: str, fn) -> None:
        try:
            written[key] = fn()
        except Exception as exc:  # an output failing must not hide the others or the verdict
            msg = redact(f"{what}: {exc.__class__.__name__}: {exc}")
            log.warning("could not write %s", msg)
            errors.append(msg)

    if junit_path:
        attempt("junit", f"JUnit XML {junit_path}", lambda: write_junit(junit_path, report, list(regs)))
    if textfile_dir:
        attempt("textfile", f"metrics textfile in {textfile_dir}", lambda: write_textfile(textfile_dir, report, regs))
    if history_html_path:
        attempt("history_html", f"history page {history_html_path}",
                lambda: write_history_html(history_html_path, [*history[-max(history_last, 1):], report], cluster,
                                           margin=margin, min_delta_s=min_delta_s))
    results = tuple(notify_all(webhooks, report, regs, report_url=report_url, tries=notify_tries)) if webhooks else ()
    errors += [f"notification {n.name} ({n.url}): {n.error}" for n in results if not n.ok]
    return DrillOutputs(regs, len(previous), written["junit"], written["textfile"], written["history_html"],
                        results, tuple(errors))
