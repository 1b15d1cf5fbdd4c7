"""The one duration format drtool reads everywhere (inventory, runbooks, command line).

A number of seconds (``90``, ``90.5``, ``"90"``), or a sequence of decimal numbers each
with a unit, added up, as Go's ``time.ParseDuration`` reads them (the form Flux and
Kubernetes users write: ``"90s"``, ``"1.5m"``, ``"1h30m"``, ``"500ms"``); blanks between
parts are allowed (``"1h 30m"``). Units: ``ms``, ``s``, ``m``, ``h``.
"""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

HINT = "expected a duration such as 90, '90s', '1.5m' or '1h30m'"
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)")
_WHOLE = re.compile(rf"\s*(?:{_PART.pattern}\s*)+")
_NUMBER = re.compile(r"\s*(\d+(?:\.\d+)?)\s*")


def parse_seconds(value: Any, positive: bool = False) -> float:
    """Seconds in ``value`` (``timedelta`` too); ``ValueError`` with :data:`HINT` otherwise.
    Bools are refused (YAML ``yes`` is not a duration); zero is refused when ``positive``."""
    if isinstance(value, bool):
        raise ValueError(HINT)
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (m := _NUMBER.fullmatch(value)):
        seconds = float(m.group(1))
    elif isinstance(value, str) and _WHOLE.fullmatch(value):
        seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(value))
    else:
        raise ValueError(HINT)
    if seconds != seconds or seconds == float("inf"):
        raise ValueError(HINT)
    if positive and seconds <= 0:
        raise ValueError("a duration must be positive")
    if seconds < 0:
        raise ValueError("a duration must not be negative")
    return seconds
