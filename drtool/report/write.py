"""Write a run's reports next to its journal: report.json, report.md, report.html."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from drtool.files import atomic_write
from drtool.report.html import render_html
from drtool.report.markdown import render_markdown
from drtool.report.model import build_report, load_report
from drtool.secret import redact


def render_all(report: dict[str, Any]) -> dict[str, str]:
    """``{"json": text, "md": text, "html": text}`` for a report.json dict, all redacted."""
    typed = load_report(report)
    return {
        "json": redact(json.dumps(report, indent=2, ensure_ascii=False)) + "\n",
        "md": render_markdown(typed),
        "html": render_html(typed),
    }


def write_reports(run_dir: Path, record: dict[str, Any], *, now: float | None = None) -> dict[str, Path]:
    """Build the report from a run record (complete or partial) and write ``report.json``,
    ``report.md`` and ``report.html`` into ``run_dir``. Returns ``{"json"|"md"|"html": path}``.
    Raises ``BadInput`` when the record is not a ``drtool.run/v1`` record."""
    run_dir = Path(run_dir)
    texts = render_all(build_report(record, now=now))
    paths = {kind: run_dir / f"report.{kind}" for kind in texts}
    for kind, text in texts.items():
        atomic_write(paths[kind], text)
    return paths
