"""The timed rebuild report: report.json (schema ``drtool.report/v1``), report.md, report.html.

``build_report(record)`` computes the report from a run record; ``write_reports(run_dir,
record)`` writes all three files; ``compare(a, b)`` and ``render_compare_md`` put two
reports side by side. The schema is documented in docs/report-schema.md.
"""
from drtool.report.compare import compare, render_compare_md
from drtool.report.html import render_html
from drtool.report.markdown import render_markdown
from drtool.report.model import REPORT_SCHEMA, Report, build_report, decide_verdict, load_report
from drtool.report.write import render_all, write_reports

__all__ = ["REPORT_SCHEMA", "Report", "build_report", "compare", "decide_verdict", "load_report",
           "render_all", "render_compare_md", "render_html", "render_markdown", "write_reports"]
