"""Drills: history of drill runs and what is made from it.

- ``history``: load past ``runs/*/report.json``, phase regressions, table data.
- ``html_history``: a self-contained HTML trend page.
- ``junit``: JUnit XML for CI.
- ``textfile``: node_exporter textfile metrics and example alert rules.
- ``notify``: webhook notifications (JSON, Slack, Discord, ntfy, Alertmanager).
- ``schedule``: systemd service/timer units and crontab lines for scheduled drills.

Everything here works on report dicts (schema ``drtool.report/v1``) and writes files or
sends HTTP; nothing here touches a cluster.
"""
from drtool.drills.history import Regression, history_table, load_history, regressions

__all__ = ["Regression", "history_table", "load_history", "regressions"]
