"""Secrets as a type that never prints, and a redactor for logs and reports.

A ``Secret`` shows as ``***`` in str/repr/format; only ``.reveal()`` gives the value,
and only code that hands it to a remote process or the API should call it.
Every value that was ever wrapped is registered with the process-wide redactor,
so command logs, reports and error messages can be scrubbed as a last line of defence.
"""
from __future__ import annotations

import threading

MASK = "***"


class Secret:
    __slots__ = ("_value", "label")

    def __init__(self, value: str, label: str = "secret"):
        self._value = value
        self.label = label
        REDACTOR.add(value)

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({self.label}={MASK})"

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


class Redactor:
    """Replaces every registered secret value (and its lines) with ``***``."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        # Very short values would mask innocent text everywhere; real tokens are long.
        if value and len(value) >= 6:
            with self._lock:
                self._values.add(value)
                for line in value.splitlines():
                    if len(line.strip()) >= 6:
                        self._values.add(line.strip())

    def __call__(self, text: str) -> str:
        if not text:
            return text
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for v in values:
            if v in text:
                text = text.replace(v, MASK)
        return text


REDACTOR = Redactor()


def redact(text: str) -> str:
    return REDACTOR(text)
