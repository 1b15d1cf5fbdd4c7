"""Scheduled drills: systemd service + timer units, or a crontab line.

A drill wipes and rebuilds a cluster, so *when* it runs matters as much as *that* it
runs. The timer uses ``Persistent=true`` so a drill missed while the host was off still
happens, but a catch-up run right after a power cut is the worst time to wipe the
cluster. The service therefore carries an ``ExecCondition=`` guard that only lets the
drill start inside the allowed window (local time of the host, like ``OnCalendar``
without a zone). Outside it, the condition exits 1: systemd records the unit as
skipped, not failed, and the next timer elapse tries again.

Builders here are pure and return file contents; :func:`install_units` only writes
files. ``systemctl daemon-reload`` / ``enable --now`` is the task layer's call.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Mapping, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from drtool.durations import parse_seconds
from drtool.errors import BadInput
from drtool.files import atomic_write

# --------------------------------------------------------------------------- validation

# The shorthands and what they stand for, as systemd.time(7) lists them under "Calendar Events"
# (systemd man/systemd.time.xml; parsed in src/shared/calendarspec.c, v252 here).
_SHORTHAND_FORMS = {
    "minutely": "*-*-* *:*:00", "hourly": "*-*-* *:00:00", "daily": "*-*-* 00:00:00",
    "monthly": "*-*-01 00:00:00", "weekly": "Mon *-*-* 00:00:00", "yearly": "*-01-01 00:00:00",
    "annually": "*-01-01 00:00:00", "quarterly": "*-01,04,07,10-01 00:00:00",
    "semiannually": "*-01,07-01 00:00:00", "semi-annually": "*-01,07-01 00:00:00",
}
_SHORTHANDS = set(_SHORTHAND_FORMS)
_DAY = r"(?:mon(?:day)?|tue(?:sday)?|wed(?:nesday)?|thu(?:rsday)?|fri(?:day)?|sat(?:urday)?|sun(?:day)?)"
_DOW_RE = re.compile(rf"{_DAY}(?:(?:\.\.|-){_DAY})?(?:,{_DAY}(?:(?:\.\.|-){_DAY})?)*", re.I)
# One calendar component: "*", "5", "1..7", "0/15", "1,4,7"; each item checked for range below.
_ITEM = re.compile(r"(\*|\d+)(?:\.\.(\d+))?(?:/(\d+))?")
_TIME_RE = re.compile(r"([^:]+):([^:]+)(?::([^:]+))?")
_DATE_RE = re.compile(r"(?:([^-~]+)-)?([^-~]+)([-~])([^-~]+)")
_CLUSTER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_HHMM = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def _component(value: str, lo: int, hi: int, expr: str, what: str, frac: bool = False) -> None:
    for item in value.split(","):
        if frac and re.fullmatch(r"\d+\.\d+", item):
            item = item.split(".")[0]
        m = _ITEM.fullmatch(item)
        if not m:
            raise BadInput("OnCalendar", "", f"{expr!r}: bad {what} {item!r}")
        for n in (m.group(1), m.group(2)):
            if n is not None and n != "*" and not lo <= int(n) <= hi:
                raise BadInput("OnCalendar", "", f"{expr!r}: {what} {n} out of range {lo}..{hi}")
        if m.group(3) is not None and int(m.group(3)) == 0:
            raise BadInput("OnCalendar", "", f"{expr!r}: {what} repetition /0")


def validate_on_calendar(expr: str) -> str:
    """Check a systemd ``OnCalendar=`` expression's syntax; returns it stripped.

    Accepts the shorthands (``daily``, ``weekly``...) and ``[weekdays] [[year-]month-day]
    [hour:minute[:second]] [timezone]`` with ``*``, lists, ``..`` ranges and ``/``
    repetitions. Raises ``BadInput`` (a basic check; ``systemd-analyze calendar`` is the
    full one) for anything else, including newlines that would inject unit lines.
    """
    if not isinstance(expr, str) or not expr.strip():
        raise BadInput("OnCalendar", "", "empty calendar expression")
    if any(c in expr for c in "\r\n\x00") or not expr.isprintable():
        raise BadInput("OnCalendar", "", f"{expr!r}: control characters are not allowed")
    text = expr.strip()
    if text.lower() in _SHORTHANDS:
        return text
    tokens = text.split()
    if tokens and _DOW_RE.fullmatch(tokens[0]):
        tokens = tokens[1:]
        has_dow = True
    else:
        has_dow = False
    if tokens and ":" not in tokens[-1] and not _DATE_RE.fullmatch(tokens[-1]) and "*" not in tokens[-1]:
        tz = tokens.pop()
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise BadInput("OnCalendar", "", f"{expr!r}: unknown time zone or bad token {tz!r}") from None
    if len(tokens) > 2 or (not tokens and not has_dow):
        raise BadInput("OnCalendar", "", f"{expr!r}: expected [weekday] [date] [time] [timezone]")
    seen_time = False
    for i, tok in enumerate(tokens):
        if ":" in tok:
            m = _TIME_RE.fullmatch(tok)
            if not m:
                raise BadInput("OnCalendar", "", f"{expr!r}: bad time {tok!r}")
            _component(m.group(1), 0, 23, expr, "hour")
            _component(m.group(2), 0, 59, expr, "minute")
            if m.group(3) is not None:
                _component(m.group(3), 0, 59, expr, "second", frac=True)
            seen_time = True
        else:
            if seen_time or i > 0:
                raise BadInput("OnCalendar", "", f"{expr!r}: the date must come before the time")
            m = _DATE_RE.fullmatch(tok)
            if not m:
                raise BadInput("OnCalendar", "", f"{expr!r}: bad date {tok!r}")
            if m.group(1) is not None:
                _component(m.group(1), 1970, 2199, expr, "year")
            _component(m.group(2), 1, 12, expr, "month")
            _component(m.group(4), 1, 31, expr, "day")
    return text


def parse_duration(value: int | float | str | timedelta, field: str = "duration") -> int:
    """Whole seconds from ``7200``, ``timedelta``, ``"2h"``, ``"1.5m"``, ``"1h30m"`` or ``"45s"``
    (drtool's one duration format, :mod:`drtool.durations`)."""
    try:
        return int(parse_seconds(value))
    except ValueError as exc:
        raise BadInput("schedule", field, f"{exc}; got {value!r}") from None


def _check_cluster(cluster: str) -> str:
    if not isinstance(cluster, str) or not _CLUSTER_RE.fullmatch(cluster):
        raise BadInput("schedule", "cluster",
                       f"{cluster!r}: use letters, digits, '.', '_' or '-' (it names the unit)")
    return cluster


def _check_text(value: str, field: str) -> str:
    s = str(value)
    if not s or not s.isprintable():
        raise BadInput("schedule", field, f"{s!r}: empty or has control characters")
    return s


def _window(window: tuple[str, int | float | str | timedelta]) -> tuple[int, int]:
    """``("02:00", "3h")`` -> (start minute of day, duration in minutes)."""
    try:
        start, duration = window
    except (TypeError, ValueError):
        raise BadInput("schedule", "window", "expected (start 'HH:MM', duration)") from None
    m = _HHMM.fullmatch(str(start).strip())
    if not m:
        raise BadInput("schedule", "window.start", f"{start!r}: expected HH:MM (00:00-23:59)")
    secs = parse_duration(duration, "window.duration")
    if not 60 <= secs <= 86400:
        raise BadInput("schedule", "window.duration", "must be between 1 minute and 24 hours")
    return int(m.group(1)) * 60 + int(m.group(2)), secs // 60


def calendar_fixed_times(expr: str) -> list[int] | None:
    """Minutes of day an ``OnCalendar=`` expression fires at, when they are plain numbers
    (``Sun 03:00``, ``Mon,Thu 2,4:15``); None when it cannot be told simply (``*``, ranges,
    repetitions, a time zone of its own). Shorthands count as their normalized form
    (``weekly`` fires at 00:00)."""
    tokens = _SHORTHAND_FORMS.get(expr.strip().lower(), expr).split()
    times = [t for t in tokens if ":" in t]
    if len(times) != 1 or tokens[-1] is not times[0]:
        return None  # no time (midnight shorthand), or a trailing time zone: local check is wrong
    m = _TIME_RE.fullmatch(times[0])
    if not m or not all(re.fullmatch(r"\d+(,\d+)*", g) for g in m.groups()[:2]):
        return None
    return sorted(int(h) * 60 + int(mi) for h in m.group(1).split(",") for mi in m.group(2).split(","))


_ELAPSE = re.compile(r"^\s*(?:Next elapse|Iter\. #\d+): \S+ \d{4}-\d\d-\d\d (\d\d):(\d\d):\d\d\b")


def systemd_analyze_times(expr: str, iterations: int = 30) -> list[int] | None:
    """Minutes of day of the next ``iterations`` elapses, from ``systemd-analyze calendar``
    (the real parser, in this host's local time like the window guard); None where
    systemd-analyze is not installed. Raises ``BadInput`` when systemd rejects ``expr``."""
    exe = shutil.which("systemd-analyze")
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, "calendar", f"--iterations={iterations}", "--", expr],
                              capture_output=True, text=True, timeout=10,
                              env={**os.environ, "LC_ALL": "C", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"})
    except (OSError, subprocess.TimeoutExpired):
        return None  # the basic check already passed; the guard still protects the cluster
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["rejected by systemd-analyze calendar"])[-1]
        raise BadInput("OnCalendar", "", f"{expr!r}: {why}")
    times = [int(m.group(1)) * 60 + int(m.group(2))
             for m in map(_ELAPSE.match, proc.stdout.splitlines()) if m]
    return sorted(set(times)) or None


def calendar_times(expr: str) -> list[int] | None:
    """Minutes of day ``expr`` fires at: systemd's own answer where systemd-analyze is
    installed, else :func:`calendar_fixed_times`."""
    found = systemd_analyze_times(expr)
    return found if found is not None else calendar_fixed_times(expr)


def _check_times_in_window(what: str, field: str, fixed: list[int] | None, delay_s: int,
                           start_min: int, duration_min: int) -> None:
    """Refuse a schedule whose guard would refuse every run: a drill that never happens is
    worse than no schedule, because everyone believes it runs."""
    if fixed is None or duration_min >= 1440:
        return
    end_delay = (delay_s + 59) // 60
    for t in fixed:
        first, last = (t - start_min) % 1440, (t + end_delay - start_min) % 1440
        if first >= duration_min or last >= duration_min or last < first:
            raise BadInput("schedule", field,
                           f"{what!r} (+{delay_s}s random delay) fires at {t // 60:02d}:{t % 60:02d}, outside the "
                           f"window {start_min // 60:02d}:{start_min % 60:02d} +{duration_min}min; "
                           "the guard would refuse every run")


def _check_calendar_in_window(calendar: str, delay_s: int, start_min: int, duration_min: int) -> None:
    _check_times_in_window(calendar, "on_calendar", calendar_times(calendar), delay_s, start_min, duration_min)


def parse_window(text: str, source: str = "command line", field: str = "--window") -> tuple[str, int]:
    """``"02:00-06:00"`` -> ``("02:00", 14400)``: the start and the length in seconds
    (a window may cross midnight; equal ends mean the whole day). Raises ``BadInput``."""
    m = re.fullmatch(r"\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)\s*", str(text))
    if not m:
        raise BadInput(source, field, f"{text!r}: expected HH:MM-HH:MM, e.g. 02:00-06:00")
    start = int(m.group(1)) * 60 + int(m.group(2))
    end = int(m.group(3)) * 60 + int(m.group(4))
    return f"{start // 60:02d}:{start % 60:02d}", (((end - start) % 1440) or 1440) * 60


# --------------------------------------------------------------------------- systemd


def unit_names(cluster: str) -> tuple[str, str]:
    """``(service, timer)`` file names for ``cluster``."""
    base = f"drtool-drill-{_check_cluster(cluster)}"
    return f"{base}.service", f"{base}.timer"


def _sd_escape_specifiers(s: str) -> str:
    # "%" starts a unit specifier (%h, %n...) and "$" an environment expansion in Exec lines.
    return s.replace("%", "%%").replace("$", "$$")


def _sd_quote(arg: str) -> str:
    """One argument of a systemd ``Exec*=`` command line."""
    if not arg or not arg.isprintable():
        raise BadInput("schedule", "command", f"{arg!r}: empty argument or control characters")
    if re.fullmatch(r"[A-Za-z0-9_@+=:,./-]+", arg):
        return _sd_escape_specifiers(arg)
    quoted = arg.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + _sd_escape_specifiers(quoted) + '"'


def _split_cmd(cmd: str | Sequence[str], field: str) -> list[str]:
    parts = shlex.split(cmd) if isinstance(cmd, str) else [str(x) for x in cmd]
    if not parts:
        raise BadInput("schedule", field, "empty command")
    return parts


def window_guard_script(start_min: int, duration_min: int) -> str:
    """POSIX sh that exits 0 inside the window and 1 (with a message) outside it.

    One ``date`` call, so the hour and minute come from the same instant; ``${h#0}``
    drops a leading zero because ``08`` is an invalid octal number in ``$(( ))``.
    """
    end_min = (start_min + duration_min) % 1440
    start_txt = f"{start_min // 60:02d}:{start_min % 60:02d}"
    if duration_min >= 1440:
        test = "true"
    elif start_min < end_min:
        test = f"[ $n -ge {start_min} ] && [ $n -lt {end_min} ]"
    else:  # the window crosses midnight
        test = f"[ $n -ge {start_min} ] || [ $n -lt {end_min} ]"
    return (
        "t=$(date +%H%M); h=${t%??}; m=${t#??}; n=$(( ${h#0} * 60 + ${m#0} )); "
        f"if {test}; then exit 0; fi; "
        f'echo "drtool: outside the drill window {start_txt} +{duration_min}min (now $h:$m), not starting" >&2; '
        "exit 1"
    )


def systemd_units(
    inventory_path: str | Path,
    cluster: str,
    on_calendar: str,
    randomized_delay_s: int | float | str | timedelta,
    window: tuple[str, int | float | str | timedelta],
    workdir: str | Path,
    invoke_cmd: str | Sequence[str],
    *,
    timeout_start_s: int | float | str | timedelta = 4 * 3600,
    environment: Mapping[str, str] | None = None,
    environment_file: str | Path | None = None,
    credentials: Mapping[str, str | Path] | None = None,
) -> dict[str, str]:
    """``{"drtool-drill-<cluster>.service": text, "drtool-drill-<cluster>.timer": text}``.

    The service (oneshot) runs ``<invoke_cmd> drill -i <inventory> --yes --trigger timer``
    in ``workdir`` behind the window guard; the timer fires on ``on_calendar`` plus up to
    ``randomized_delay_s``, persistently. ``window`` is ``("HH:MM", duration)`` in the
    host's local time; the randomized delay must fit in it. Secrets never go into the
    unit: ``environment_file`` becomes ``EnvironmentFile=`` and ``credentials``
    (``{NAME: file}``) become ``LoadCredential=NAME:file`` (systemd.exec(5)). Raises ``BadInput``.
    """
    service, timer = unit_names(cluster)
    calendar = validate_on_calendar(on_calendar)
    delay = parse_duration(randomized_delay_s, "randomized_delay_s")
    start_min, duration_min = _window(window)
    if delay >= duration_min * 60:
        raise BadInput("schedule", "randomized_delay_s",
                       f"{delay}s does not fit in the {duration_min}min window: most runs would be refused")
    _check_calendar_in_window(calendar, delay, start_min, duration_min)
    timeout = parse_duration(timeout_start_s, "timeout_start_s")
    inv = _split_cmd(invoke_cmd, "invoke_cmd")
    argv = [*inv, "drill", "-i", _check_text(str(inventory_path), "inventory_path"), "--yes", "--trigger", "timer"]
    wd = _check_text(str(workdir), "workdir")
    if not os.path.isabs(wd):
        raise BadInput("schedule", "workdir", f"{wd!r}: systemd needs an absolute path")
    env_lines = []
    for k, v in sorted({"PYTHONUNBUFFERED": "1", **(environment or {})}.items()):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
            raise BadInput("schedule", f"environment.{k}", "not a valid variable name")
        assignment = f"{k}={_check_text(v, 'environment.' + k)}"
        env_lines.append(f"Environment={_sd_quote(assignment)}")
    if environment_file is not None:
        ef = _check_text(str(environment_file), "environment_file")
        if not os.path.isabs(ef):
            raise BadInput("schedule", "environment_file", f"{ef!r}: systemd needs an absolute path")
        env_lines.append(f"EnvironmentFile={_sd_escape_specifiers(ef)}")
    for name, path in sorted((credentials or {}).items()):
        cp = _check_text(str(path), f"credentials.{name}")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or not os.path.isabs(cp) or ":" in cp:
            raise BadInput("schedule", f"credentials.{name}", "expected NAME and an absolute path without ':'")
        env_lines.append(f"LoadCredential={name}:{_sd_escape_specifiers(cp)}")
    guard = _sd_escape_specifiers(window_guard_script(start_min, duration_min))
    service_text = "\n".join([
        "# Generated by drtool (drill schedule). Regenerate rather than edit.",
        "[Unit]",
        f"Description=drtool DR drill of cluster {cluster}",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        f"WorkingDirectory={_sd_escape_specifiers(wd)}",
        *env_lines,
        "# Refuse to start outside the drill window (e.g. a Persistent= catch-up after downtime).",
        f"ExecCondition=/bin/sh -c '{guard}'",
        "ExecStart=" + " ".join(_sd_quote(a) for a in argv),
        f"TimeoutStartSec={timeout}",
        # drtool writes a partial report on SIGTERM; give it time before SIGKILL.
        "KillMode=mixed",
        "TimeoutStopSec=120",
        "",
    ])
    timer_text = "\n".join([
        "# Generated by drtool (drill schedule). Regenerate rather than edit.",
        "[Unit]",
        f"Description=Scheduled drtool DR drill of cluster {cluster}",
        "",
        "[Timer]",
        f"OnCalendar={calendar}",
        f"RandomizedDelaySec={delay}",
        "Persistent=true",
        "AccuracySec=1min",
        f"Unit={service}",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ])
    return {service: service_text, timer: timer_text}


def install_units(units: Mapping[str, str], dest: str | Path = "/etc/systemd/system") -> list[Path]:
    """Write each unit file into ``dest`` atomically (mode 0644); returns the paths.

    Only writes files: reloading and enabling is left to the caller (``--install``).
    """
    out: list[Path] = []
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    for name, text in units.items():
        if "/" in name or name.startswith(".") or not name.endswith((".service", ".timer")):
            raise BadInput("schedule", "units", f"{name!r}: not a unit file name")
        target = root / name
        atomic_write(target, text)
        out.append(target)
    return out


# --------------------------------------------------------------------------- cron

# The "@" nicknames and the five fields each stands for, as cronie's crontab(5) lists them.
_CRON_SHORTHANDS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
                    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
                    "@hourly": "0 * * * *"}
_CRON_FIELD = re.compile(r"[0-9A-Za-z*,/-]+")


def validate_cron(expr: str) -> str:
    """A 5-field crontab schedule (or ``@weekly``...) checked field by field, ranges
    included, by the cronsim library; raises ``BadInput`` naming the bad field."""
    from cronsim import CronSim, CronSimError

    text = str(expr).strip()
    if not text.isprintable():
        raise BadInput("cron", "", f"{expr!r}: control characters are not allowed")
    if text in _CRON_SHORTHANDS:
        return text
    fields = text.split()
    if len(fields) != 5 or not all(_CRON_FIELD.fullmatch(f) for f in fields):
        raise BadInput("cron", "", f"{expr!r}: expected 5 fields (minute hour day month weekday)")
    try:
        CronSim(" ".join(fields), datetime(2026, 1, 1))
    except CronSimError as exc:  # "Bad minute", "Bad day-of-month"...: the field out of range
        raise BadInput("cron", "", f"{expr!r}: {str(exc).lower() or 'invalid schedule'}") from None
    return " ".join(fields)


def cron_times(expr: str, count: int = 50) -> list[int]:
    """Minutes of day of the next ``count`` runs of a crontab schedule (local time)."""
    from cronsim import CronSim

    text = validate_cron(expr)
    it = CronSim(_CRON_SHORTHANDS.get(text, text), datetime.now().replace(second=0, microsecond=0))
    return sorted({t.hour * 60 + t.minute for t, _ in zip(it, range(count))})


def cron_line(
    inventory_path: str | Path,
    cluster: str,
    schedule: str,
    workdir: str | Path,
    invoke_cmd: str | Sequence[str],
    *,
    lock_file: str | Path | None = None,
    log_file: str | Path | None = None,
    trigger: str = "cron",
    window: tuple[str, int | float | str | timedelta] | None = None,
    environment_file: str | Path | None = None,
) -> str:
    """One crontab line running the drill under ``flock -n`` (a still-running drill makes
    the next one exit at once instead of queueing behind it).

    Cron has no catch-up after downtime, so no window guard is needed; with ``window``
    a schedule that fires outside it is refused. ``%`` is escaped as cron requires.
    Default lock: ``/run/lock/drtool-drill-<cluster>.lock``.
    """
    _check_cluster(cluster)
    when = validate_cron(schedule)
    if window is not None:
        start_min, duration_min = _window(window)
        _check_times_in_window(when, "cron", cron_times(when), 0, start_min, duration_min)
    lock = str(lock_file or f"/run/lock/drtool-drill-{cluster}.lock")
    argv = [*_split_cmd(invoke_cmd, "invoke_cmd"), "drill", "-i", _check_text(str(inventory_path), "inventory_path"),
            "--yes", "--trigger", trigger]
    # cron starts jobs with a bare environment: the tokens come from a 0600 file the shell
    # reads with allexport on, never from the crontab itself.
    env = ""
    if environment_file is not None:
        env = f"set -a && . {shlex.quote(_check_text(str(environment_file), 'environment_file'))} && set +a && "
    cmd = (f"cd {shlex.quote(_check_text(str(workdir), 'workdir'))} && {env}"
           f"flock -n {shlex.quote(_check_text(lock, 'lock_file'))} {shlex.join(argv)}")
    if log_file:
        cmd += f" >> {shlex.quote(_check_text(str(log_file), 'log_file'))} 2>&1"
    # In a crontab an unescaped % ends the command and starts stdin.
    return f"{when} {cmd.replace('%', chr(92) + '%')}"


def cron_marker(cluster: str) -> str:
    """The comment line drtool puts above its crontab line, so a re-install finds it."""
    return f"# drtool drill of cluster {_check_cluster(cluster)} (inv drill.schedule --install)"


def crontab_with(current: str, line: str, cluster: str) -> str:
    """``current`` crontab text with this cluster's drill line installed exactly once:
    an earlier drtool line for the cluster (the line after its marker) is replaced, every
    other line is kept as it was."""
    marker = cron_marker(cluster)
    kept: list[str] = []
    skip = False
    for existing in current.splitlines():
        if skip:
            skip = False
            continue
        if existing == marker:
            skip = True
            continue
        if existing.strip() == line.strip():
            continue  # the same line installed by hand, or by an older drtool without the marker
        kept.append(existing)
    return "\n".join([*kept, marker, line]) + "\n"
