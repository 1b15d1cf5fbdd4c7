"""Label and field selectors, parsed once and matched many times.

Label selectors follow the Kubernetes grammar: ``a=b``, ``a==b``, ``a!=b``,
``a in (x,y)``, ``a notin (x)``, ``a`` (exists) and ``!a`` (does not exist),
joined by commas. Field selectors support ``=``, ``==`` and ``!=`` on any dotted
path of the object (``metadata.name``, ``spec.nodeName``, ``status.phase``,
``involvedObject.kind``...), which covers every field real kinds index.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .status import BadRequest

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_SET_RE = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s+\(([^)]*)\)\s*$")
_CMP_RE = re.compile(rf"^\s*({_KEY})\s*(==|!=|=)\s*([^\s,]*)\s*$")
_EXISTS_RE = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


@dataclass(frozen=True)
class Requirement:
    """One clause of a selector: ``key op values``."""

    key: str
    op: str                      # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, value: str | None) -> bool:
        """True when a field/label value (``None`` = absent) satisfies the clause."""
        if self.op == "exists":
            return value is not None
        if self.op == "!exists":
            return value is None
        if self.op in ("=", "in"):
            return value is not None and value in self.values
        # "!=" and "notin" match objects without the key too, as in Kubernetes.
        return value is None or value not in self.values


def _split_clauses(text: str) -> list[str]:
    """Split on commas that are not inside ``( )`` (set values contain commas)."""
    clauses, depth, current = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            clauses.append("".join(current))
            current = []
        else:
            current.append(ch)
    clauses.append("".join(current))
    return [c for c in (c.strip() for c in clauses) if c]


@dataclass(frozen=True)
class LabelSelector:
    """A parsed label selector; an empty one matches everything."""

    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> "LabelSelector":
        """Parse ``text``; raise ``BadRequest`` (HTTP 400) when it is malformed."""
        reqs = []
        for clause in _split_clauses(text or ""):
            if m := _SET_RE.match(clause):
                values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
                reqs.append(Requirement(m.group(1), m.group(2), values))
            elif m := _CMP_RE.match(clause):
                op = "=" if m.group(2) == "==" else m.group(2)
                reqs.append(Requirement(m.group(1), op, (m.group(3),)))
            elif m := _EXISTS_RE.match(clause):
                reqs.append(Requirement(m.group(2), "!exists" if m.group(1) else "exists"))
            else:
                raise BadRequest(f"unable to parse requirement: {clause!r}")
        return cls(tuple(reqs))

    def matches(self, labels: dict[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels.get(r.key)) for r in self.requirements)

    def __bool__(self) -> bool:
        return bool(self.requirements)


def field_value(obj: dict[str, Any], path: str) -> str | None:
    """The string value at a dotted ``path`` of ``obj``, or ``None`` when absent."""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    if cur is None or isinstance(cur, (dict, list)):
        return None
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


@dataclass(frozen=True)
class FieldSelector:
    """A parsed field selector (``=``, ``==``, ``!=`` on dotted paths)."""

    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> "FieldSelector":
        """Parse ``text``; raise ``BadRequest`` (HTTP 400) when it is malformed."""
        reqs = []
        for clause in _split_clauses(text or ""):
            m = _CMP_RE.match(clause)
            if not m:
                raise BadRequest(f"invalid field selector: {clause!r}")
            op = "=" if m.group(2) == "==" else m.group(2)
            reqs.append(Requirement(m.group(1), op, (m.group(3),)))
        return cls(tuple(reqs))

    def matches(self, obj: dict[str, Any]) -> bool:
        # An absent field compares as "" the way the API server's field sets do.
        return all(r.matches(field_value(obj, r.key) or "") for r in self.requirements)

    def exact_name(self) -> str | None:
        """The name when the selector pins ``metadata.name`` (lets a list skip a scan)."""
        for r in self.requirements:
            if r.key == "metadata.name" and r.op == "=":
                return r.values[0]
        return None

    def __bool__(self) -> bool:
        return bool(self.requirements)
