"""Reading systemd unit files and environment files (pure parsing).

Only what the K3s units use: ``Type``, ``ExecStart`` (with backslash continuations and
quoted words), ``EnvironmentFile`` (``-`` for optional, ``%N`` for the unit's name),
``Environment``, ``TimeoutStartSec``/``TimeoutStopSec`` and ``Description``.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class Unit:
    name: str                                   # "k3s.service"
    description: str
    type: str
    exec_start: tuple[str, ...]
    environment_files: tuple[tuple[str, bool], ...]   # (path, optional)
    environment: tuple[tuple[str, str], ...]
    timeout_start: float                        # 0 = no limit (systemd's "infinity")
    timeout_stop: float

    @property
    def stem(self) -> str:
        return self.name.removesuffix(".service")


class UnitError(ValueError):
    """The unit file cannot be used."""


def unit_name(text: str) -> str:
    """``k3s`` → ``k3s.service``; a path gives its file name."""
    name = text.rsplit("/", 1)[-1]
    return name if "." in name else f"{name}.service"


def _seconds(text: str, default: float) -> float:
    text = text.strip()
    if text in ("infinity", "0"):
        return 0.0
    factor = 1.0
    for suffix, f in (("ms", 0.001), ("min", 60.0), ("s", 1.0)):
        if text.endswith(suffix):
            text, factor = text[: -len(suffix)], f
            break
    try:
        return float(text) * factor
    except ValueError:
        return default


def parse_unit(name: str, text: str) -> Unit:
    """Parse the ``[Unit]``/``[Service]`` keys the stand-in needs."""
    logical: list[str] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not buf and (not line.strip() or line.lstrip().startswith(("#", ";"))):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append(buf + line)
        buf = ""
    if buf:
        logical.append(buf)
    stem = name.removesuffix(".service")
    values: dict[str, list[str]] = {}
    for line in logical:
        line = line.strip()
        if line.startswith("[") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values.setdefault(key.strip(), []).append(value.strip())
    exec_lines = values.get("ExecStart") or []
    if not exec_lines or not exec_lines[-1]:
        raise UnitError(f"{name} has no ExecStart= setting")
    argv = shlex.split(exec_lines[-1])
    while argv and argv[0][:1] in "-@+!:":
        argv[0] = argv[0][1:]
    env_files: list[tuple[str, bool]] = []
    for item in values.get("EnvironmentFile", []):
        optional = item.startswith("-")
        env_files.append((item.lstrip("-").replace("%N", stem), optional))
    environment: list[tuple[str, str]] = []
    for item in values.get("Environment", []):
        for word in shlex.split(item):
            k, sep, v = word.partition("=")
            if sep:
                environment.append((k, v))
    return Unit(
        name=name,
        description=(values.get("Description") or [stem])[-1],
        type=(values.get("Type") or ["simple"])[-1],
        exec_start=tuple(argv),
        environment_files=tuple(env_files),
        environment=tuple(environment),
        timeout_start=_seconds((values.get("TimeoutStartSec") or ["90"])[-1], 90.0),
        timeout_stop=_seconds((values.get("TimeoutStopSec") or ["10"])[-1], 10.0),
    )


def parse_env_file(text: str) -> dict[str, str]:
    """``KEY=value`` / ``KEY='value'`` / ``KEY="value"`` lines, as systemd reads them."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip()
        if key.startswith("export "):
            key = key[len("export "):].strip()
        value = value.strip()
        if value[:1] in ("'", '"'):
            try:
                parts = shlex.split(value)
                value = parts[0] if parts else ""
            except ValueError:
                value = value.strip("'\"")
        out[key] = value
    return out
