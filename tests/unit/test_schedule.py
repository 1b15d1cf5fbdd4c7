"""Scheduled drills: systemd units (parsed, verified, guard executed) and crontab lines (executed)."""
from __future__ import annotations

import fcntl
import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from drtool.drills.schedule import (
    cron_line,
    install_units,
    parse_duration,
    systemd_units,
    validate_on_calendar,
    window_guard_script,
)
from drtool.errors import BadInput

INV = Path(sys.executable).parent / "inv"


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections -> [(key, value)] in order; keys may repeat (unlike configparser)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"key outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not key=value: {line}"
        current.append((key, value))
    return sections


def one(section: list[tuple[str, str]], key: str) -> str:
    values = [v for k, v in section if k == key]
    assert len(values) == 1, (key, values)
    return values[0]


def units(**kw):
    args = dict(inventory_path="inventory/homelab.yaml", cluster="homelab", on_calendar="Sun *-*-* 03:00",
                randomized_delay_s="15m", window=("02:30", "3h"), workdir="/opt/drtool dr",
                invoke_cmd=str(INV))
    args.update(kw)
    return systemd_units(**args)


def test_service_and_timer_contents():
    u = units()
    assert set(u) == {"drtool-drill-homelab.service", "drtool-drill-homelab.timer"}
    svc = parse_unit(u["drtool-drill-homelab.service"])
    tmr = parse_unit(u["drtool-drill-homelab.timer"])
    s = svc["Service"]
    assert one(s, "Type") == "oneshot"
    assert one(s, "WorkingDirectory") == "/opt/drtool dr"
    assert shlex.split(one(s, "ExecStart")) == [str(INV), "drill", "-i", "inventory/homelab.yaml", "--yes",
                                                "--trigger", "timer"]
    assert one(s, "ExecCondition").startswith("/bin/sh -c '")
    t = tmr["Timer"]
    assert (one(t, "OnCalendar"), one(t, "RandomizedDelaySec"), one(t, "Persistent")) == \
        ("Sun *-*-* 03:00", "900", "true")
    assert one(t, "Unit") == "drtool-drill-homelab.service"
    assert one(tmr["Install"], "WantedBy") == "timers.target"


def test_arguments_with_specials_are_quoted_for_systemd():
    u = units(inventory_path="inv/100% lab.yaml", environment={"DRTOOL_HOME": "/srv/$HOME"})
    s = parse_unit(u["drtool-drill-homelab.service"])["Service"]
    assert '"inv/100%% lab.yaml"' in one(s, "ExecStart")
    env = [v for k, v in s if k == "Environment"]
    assert '"DRTOOL_HOME=/srv/$$HOME"' in env and "PYTHONUNBUFFERED=1" in env


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
@pytest.mark.skipif(not INV.exists(), reason="inv not installed next to the interpreter")
def test_systemd_analyze_verify_accepts_units(tmp_path):
    paths = install_units(units(workdir=str(tmp_path), inventory_path="inv/100% lab.yaml"), tmp_path / "units")
    proc = subprocess.run(["systemd-analyze", "verify", *map(str, paths)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    # verify prints warnings without failing; our units must not produce any.
    assert "drtool-drill" not in proc.stderr, proc.stderr


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_analyze_verify_accepts_env_file_and_credentials(tmp_path):
    env_file = tmp_path / "drill.env"
    env_file.write_text("GITHUB_TOKEN=x\n")
    cred = tmp_path / "k3s-token"
    cred.write_text("K10x\n")
    made = units(workdir=str(tmp_path), environment_file=str(env_file), credentials={"K3S_TOKEN": str(cred)})
    service = parse_unit(made["drtool-drill-homelab.service"])["Service"]
    assert one(service, "EnvironmentFile") == str(env_file)
    assert one(service, "LoadCredential") == f"K3S_TOKEN:{cred}"
    paths = install_units(made, tmp_path / "units")
    proc = subprocess.run(["systemd-analyze", "verify", *map(str, paths)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "drtool-drill" not in proc.stderr, proc.stderr


def run_guard(tmp_path: Path, unit_text: str, hhmm: str) -> subprocess.CompletedProcess:
    """Run the unit's ExecCondition the way systemd would, with ``date`` faked to ``hhmm``."""
    cond = one(parse_unit(unit_text)["Service"], "ExecCondition")
    # systemd turns $$ into $ and %% into % before executing.
    argv = shlex.split(cond.replace("$$", "$").replace("%%", "%"))
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    date = fake / "date"
    date.write_text(f'#!/bin/sh\n[ "$1" = "+%H%M" ] || exit 9\necho {hhmm}\n')
    date.chmod(0o755)
    return subprocess.run(argv, capture_output=True, text=True, timeout=10,
                          env={"PATH": f"{fake}:/usr/bin:/bin"})


@pytest.mark.parametrize("window,hhmm,inside", [
    (("02:30", "3h"), "0230", True),
    (("02:30", "3h"), "0529", True),
    (("02:30", "3h"), "0530", False),    # end is exclusive
    (("02:30", "3h"), "0229", False),
    (("02:30", "3h"), "0809", False),    # "08"/"09" must not be read as octal
    (("02:30", "3h"), "1415", False),    # a Persistent= catch-up in the afternoon
    (("23:00", "2h"), "2330", True),     # window across midnight
    (("23:00", "2h"), "0059", True),
    (("23:00", "2h"), "0100", False),
    (("23:00", "2h"), "2259", False),
    (("00:00", "24h"), "1234", True),
])
def test_window_guard_runs_only_inside_the_window(tmp_path, window, hhmm, inside):
    unit = units(window=window, on_calendar=f"*-*-* {window[0]}", randomized_delay_s=0)
    proc = run_guard(tmp_path, unit["drtool-drill-homelab.service"], hhmm)
    assert proc.returncode == (0 if inside else 1), proc.stderr
    if not inside:
        assert "outside the drill window" in proc.stderr


def test_window_guard_script_is_plain_posix_sh():
    script = window_guard_script(150, 180)
    assert "'" not in script and "\\" not in script  # safe inside systemd single quotes


CALENDARS_OK = ["daily", "weekly", "Sun *-*-* 03:00", "Mon..Fri 02:30", "Sat,Sun 4:00", "03:00",
                "*-*~1 03:00", "2026-12-01", "Sun 03:00 UTC", "Sun *-*-1..7 03:00:00", "*:0/15",
                "Mon-Fri 02:00", "Sun,Wed 03:00:30.5", "Monday 03:00", "*-1,4,7,10-1 03:00"]
CALENDARS_BAD = ["", "   ", "bogus", "Sun 25:00", "Sun 03:60", "*-13-01 03:00", "Sun 03:00 Nowhere/Bogus",
                 "Sun 03:00\nExecStart=/bin/rm", "03:00 *-*-*", "Sun *:*/0", "Sun *-*-* 03:00 x y"]


@pytest.mark.parametrize("expr", CALENDARS_OK)
def test_on_calendar_accepted(expr):
    assert validate_on_calendar(expr) == expr.strip()


@pytest.mark.parametrize("expr", CALENDARS_BAD)
def test_on_calendar_rejected(expr):
    with pytest.raises(BadInput):
        validate_on_calendar(expr)


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_on_calendar_check_agrees_with_systemd():
    for expr in CALENDARS_OK + CALENDARS_BAD:
        if not expr.strip() or "\n" in expr:
            continue
        ok = subprocess.run(["systemd-analyze", "calendar", expr], capture_output=True, timeout=10).returncode == 0
        try:
            validate_on_calendar(expr)
            mine = True
        except BadInput:
            mine = False
        assert mine == ok, expr


@pytest.mark.parametrize("kw,field", [
    ({"cluster": "home lab"}, "cluster"),
    ({"cluster": "../etc"}, "cluster"),
    ({"randomized_delay_s": "3h"}, "randomized_delay_s"),   # would not fit in the 3 h window
    ({"window": ("25:00", "1h")}, "window.start"),
    ({"window": ("02:00", "0")}, "window.duration"),
    ({"window": ("02:00", "2 days")}, "window.duration"),
    ({"workdir": "relative/dir"}, "workdir"),
    ({"inventory_path": "inv.yaml\nExecStartPre=/bin/rm -rf /"}, "inventory_path"),
])
def test_bad_schedule_input(kw, field):
    with pytest.raises(BadInput) as exc:
        units(**kw)
    assert exc.value.field == field


@pytest.mark.parametrize("on_calendar,delay,window,ok", [
    ("Sun 03:00", "15m", ("02:30", "3h"), True),
    ("Sun 01:00", "0", ("02:30", "3h"), False),        # before the window: every run refused
    ("Sun 05:20", "15m", ("02:30", "3h"), False),      # the random delay pushes it past 05:30
    ("Sun 23:30", "15m", ("23:00", "2h"), True),       # across midnight
    ("Sun 00:50", "15m", ("23:00", "2h"), False),
    ("Mon,Thu 2,4:15", "10m", ("02:00", "3h"), True),
    ("Mon,Thu 2,6:15", "10m", ("02:00", "3h"), False),  # 06:15 is outside
    ("weekly", "10m", ("02:00", "3h"), False),         # weekly is Mon 00:00: before the window
    ("daily", "10m", ("23:30", "1h"), True),           # daily is 00:00: inside a window across midnight
])
def test_calendar_must_fire_inside_the_window(on_calendar, delay, window, ok):
    kw = dict(on_calendar=on_calendar, randomized_delay_s=delay, window=window)
    if ok:
        units(**kw)
    else:
        with pytest.raises(BadInput) as exc:
            units(**kw)
        assert exc.value.field == "on_calendar" and "refuse every run" in str(exc.value)


def test_parse_duration():
    assert parse_duration("1h30m") == 5400 and parse_duration(90) == 90 and parse_duration("45s") == 45
    assert parse_duration("600") == 600


def test_install_units_writes_readable_files(tmp_path):
    paths = install_units(units(), tmp_path / "etc-systemd")
    assert sorted(p.name for p in paths) == ["drtool-drill-homelab.service", "drtool-drill-homelab.timer"]
    for p in paths:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644
    assert sorted(os.listdir(tmp_path / "etc-systemd")) == sorted(p.name for p in paths)
    with pytest.raises(BadInput):
        install_units({"../evil.service": ""}, tmp_path)


# --------------------------------------------------------------------------- cron


def fake_invoke(tmp_path: Path) -> Path:
    script = tmp_path / "fake inv"
    script.write_text('#!/bin/sh\nprintf "%s\\n" "$PWD" "$@" > "$(dirname "$0")/called"\n')
    script.chmod(0o755)
    return script


def cron_command(line: str) -> str:
    """What cron hands to /bin/sh: the text after the 5 time fields, with \\% unescaped."""
    return line.split(None, 5)[5].replace("\\%", "%")


@pytest.mark.skipif(not shutil.which("flock"), reason="flock(1) not installed")
def test_cron_line_runs_the_drill_under_flock(tmp_path):
    inv = fake_invoke(tmp_path)
    lock = tmp_path / "drill.lock"
    line = cron_line("inventory/100% lab.yaml", "homelab", "0 3 * * 0", tmp_path, [str(inv)], lock_file=lock,
                     log_file=tmp_path / "drill.log")
    assert line.startswith("0 3 * * 0 cd ")
    assert "%" not in line.replace("\\%", "")  # every % escaped for cron
    cmd = cron_command(line)
    subprocess.run(["/bin/sh", "-c", cmd], check=True, timeout=10)
    called = (tmp_path / "called").read_text().splitlines()
    assert called == [str(tmp_path), "drill", "-i", "inventory/100% lab.yaml", "--yes", "--trigger", "cron"]

    # While another drill holds the lock, the next one exits at once without running.
    (tmp_path / "called").unlink()
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        proc = subprocess.run(["/bin/sh", "-c", cmd], timeout=10)
    assert proc.returncode != 0 and not (tmp_path / "called").exists()


@pytest.mark.parametrize("schedule", ["0 3 * *", "0 3 * * 0 extra", "0 3 * * 0;rm", "@sometimes"])
def test_cron_line_rejects_bad_schedules(schedule):
    with pytest.raises(BadInput):
        cron_line("inv.yaml", "homelab", schedule, "/opt/drtool", "inv")


# --------------------------------------------------------------------------- checks with real tools

ROOT = Path(__file__).resolve().parents[2]


def schedule_task(tmp_path, *args, env=None):
    inv = tmp_path / "inv.yaml"
    inv.write_text((ROOT / "inventory/lab.yaml").read_text().replace("\ndrill:\n", "\ndrill:\n  enabled: true\n", 1))
    return subprocess.run([str(INV), "drill.schedule", "-i", str(inv), *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("window", ["2-5", "02:00", "25:00-03:00", "02:00-06:00-07:00"])
def test_schedule_bad_window_is_bad_input_not_internal_error(tmp_path, window):
    proc = schedule_task(tmp_path, "--window", window, "--on-calendar", "Sun 03:00")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"error: command line: --window: {window!r}: expected HH:MM-HH:MM, e.g. 02:00-06:00"
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr


def test_schedule_task_window_and_shorthand(tmp_path):
    ok = schedule_task(tmp_path, "--window", "2:00-5:00", "--on-calendar", "Sun 03:00", "--randomized-delay", "0")
    assert ok.returncode == 0, ok.stderr
    assert "OnCalendar=Sun 03:00" in ok.stdout
    weekly = schedule_task(tmp_path, "--window", "02:00-05:00", "--on-calendar", "weekly")
    assert weekly.returncode == 2 and "fires at 00:00, outside the window 02:00" in weekly.stderr, weekly.stderr


@pytest.mark.parametrize("schedule,problem", [
    ("99 3 * * 0", "bad minute"),
    ("0 24 * * 0", "bad hour"),
    ("0 3 32 * *", "bad day-of-month"),
    ("0 3 * 13 *", "bad month"),
    ("0 3 * * 8", "bad day-of-week"),
    ("*/0 3 * * *", "bad minute"),
])
def test_cron_fields_are_range_checked(schedule, problem):
    with pytest.raises(BadInput) as exc:
        cron_line("inv.yaml", "homelab", schedule, "/opt/drtool", "inv")
    assert problem in str(exc.value)


@pytest.mark.parametrize("schedule,ok", [
    ("0 3 * * 0", True), ("30 2 * * 1-5", True), ("0 1 * * 0", False), ("@weekly", False), ("@hourly", False),
    ("0 */2 * * *", False),
])
def test_cron_schedule_must_fire_inside_the_window(schedule, ok):
    if ok:
        cron_line("inv.yaml", "homelab", schedule, "/opt/drtool", "inv", window=("02:00", "4h"))
    else:
        with pytest.raises(BadInput, match="outside the window"):
            cron_line("inv.yaml", "homelab", schedule, "/opt/drtool", "inv", window=("02:00", "4h"))


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
@pytest.mark.parametrize("on_calendar", ["*:0/30", "Sun 2..8:00", "hourly"])
def test_systemd_analyze_catches_what_the_simple_check_cannot(on_calendar):
    # Repetitions and ranges have no simple fixed times; systemd's own parser lists the elapses.
    with pytest.raises(BadInput, match="outside the window"):
        units(on_calendar=on_calendar, randomized_delay_s=0, window=("02:00", "3h"))


def test_without_systemd_analyze_shorthands_still_expand(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no systemd-analyze here: the fallback decides
    with pytest.raises(BadInput, match="fires at 00:00"):
        units(on_calendar="weekly", randomized_delay_s=0, window=("02:00", "3h"))
    units(on_calendar="*:0/30", randomized_delay_s=0, window=("02:00", "3h"))  # cannot tell: the guard decides


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_shorthand_forms_are_systemds_own():
    from drtool.drills.schedule import _SHORTHAND_FORMS

    for name, form in _SHORTHAND_FORMS.items():
        out = subprocess.run(["systemd-analyze", "calendar", name], capture_output=True, text=True, timeout=30,
                             env={**os.environ, "LC_ALL": "C"})
        normalized = next(line.split(": ", 1)[1] for line in out.stdout.splitlines() if "Normalized form:" in line)
        assert normalized == form, (name, normalized)
