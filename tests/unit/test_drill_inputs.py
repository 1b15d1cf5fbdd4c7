"""What an operator sets up for unattended drills: webhooks checked at load, crontab installed once."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INV = Path(sys.executable).parent / "inv"
TOKEN = "T00000000/B00000000/XXXXsecretXXXX"


def inventory(tmp_path: Path, **drill) -> Path:
    data = yaml.safe_load((ROOT / "inventory/lab.yaml").read_text())
    data["drill"] = {**(data.get("drill") or {}), "enabled": True, **drill}
    path = tmp_path / "inv.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def inv(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(INV), *args], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("hook,field", [
    ({"name": "team", "type": "slack", "url": f"hooks.slack.com/services/{TOKEN}"}, "drill.notify[0].url"),
    ({"name": "team", "type": "slack", "url": f"ftp://hooks.slack.com/services/{TOKEN}"}, "drill.notify[0].url"),
    ({"name": "team", "type": "slack", "url": f"https://hooks.slack.com:99999/services/{TOKEN}"}, "drill.notify[0].url"),
    ({"name": "team", "type": "teams", "url": f"https://hooks.slack.com/services/{TOKEN}"}, "drill.notify[0].type"),
    ({"name": "team", "type": "json", "url": "https://h.example/x", "timeout": "5m"}, "drill.notify[0].timeout"),
    ({"name": "team", "type": "json", "url": "https://h.example/x", "headers": {"X-A": "a\nb"}},
     "drill.notify[0].headers"),
])
def test_malformed_webhook_is_rejected_when_the_inventory_loads(tmp_path, hook, field):
    path = inventory(tmp_path, notify=[hook])
    check = inv("inventory.check", str(path))
    assert check.returncode == 2, check.stdout + check.stderr
    assert f"{path}: {field}:" in check.stderr and TOKEN not in check.stderr + check.stdout
    # The drill stops before anything happens: no run directory, no SSH.
    runs = tmp_path / "runs"
    drill = inv("drill", "-i", str(path), env={"DRTOOL_RUNS_DIR": str(runs)})
    assert drill.returncode == 2 and f"{field}:" in drill.stderr, drill.stderr
    assert not runs.exists() or not any(runs.iterdir())


def test_duplicate_webhook_names_are_rejected(tmp_path):
    hook = {"name": "team", "type": "json", "url": "https://h.example/x"}
    check = inv("inventory.check", str(inventory(tmp_path, notify=[hook, hook])))
    assert check.returncode == 2 and "drill.notify[1].name: duplicate webhook name 'team'" in check.stderr


def fake_crontab(tmp_path: Path, list_fails: bool = False) -> dict:
    """A `crontab` on PATH that keeps the table in a file, like the real one keeps the spool."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    table = tmp_path / "crontab.txt"
    list_cmd = ('echo "crontab: cannot open spool" >&2; exit 1' if list_fails else
                f'[ -f {table} ] || {{ echo "no crontab for $(id -un)" >&2; exit 1; }}; cat {table}; exit 0')
    (bin_dir / "crontab").write_text(
        f'#!/bin/sh\nif [ "$1" = "-l" ]; then {list_cmd}; fi\n'
        f'if [ "$1" = "-" ]; then cat > {table}; exit 0; fi\nexit 2\n')
    (bin_dir / "crontab").chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_crontab_install_adds_the_line_once_however_often_run(tmp_path):
    env = fake_crontab(tmp_path)
    table = tmp_path / "crontab.txt"
    path = inventory(tmp_path)
    for _ in range(3):
        res = inv("drill.schedule", "-i", str(path), "--cron", "0 3 * * 0", "--install", env=env)
        assert res.returncode == 0, res.stderr
    lines = table.read_text().splitlines()
    assert sum("drill -i" in line for line in lines) == 1, lines
    # The operator's own jobs survive, and a changed schedule replaces the drill line.
    table.write_text("MAILTO=ops@example.org\n15 1 * * * /usr/local/bin/backup\n" + table.read_text())
    res = inv("drill.schedule", "-i", str(path), "--cron", "30 2 * * 6", "--install", env=env)
    assert res.returncode == 0, res.stderr
    lines = table.read_text().splitlines()
    assert lines[:2] == ["MAILTO=ops@example.org", "15 1 * * * /usr/local/bin/backup"]
    drill_lines = [line for line in lines if "drill -i" in line]
    assert len(drill_lines) == 1 and drill_lines[0].startswith("30 2 * * 6 "), lines


def test_crontab_that_cannot_be_read_is_not_overwritten(tmp_path):
    env = fake_crontab(tmp_path, list_fails=True)
    res = inv("drill.schedule", "-i", str(inventory(tmp_path)), "--cron", "0 3 * * 0", "--install", env=env)
    assert res.returncode == 1 and "crontab -l failed" in res.stderr and "nothing changed" in res.stderr
    assert not (tmp_path / "crontab.txt").exists()
