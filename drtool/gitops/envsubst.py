"""Flux's variable substitution dialect (``${var}``, ``${var:=default}``, ``$${escaped}``).

kustomize-controller v1.4.0 substitutes ``postBuild`` variables with fluxcd/pkg
``envsubst`` v1.1.0 (``envsubst/parse/scan.go``, ``envsubst/template.go``), a bash-like
template language. What this module follows from there:

* only ``${...}`` is an expression; a bare ``$var`` is plain text;
* ``$$`` is an escaped ``$``: ``$${var}`` renders as the literal ``${var}``;
* ``${var=d}``, ``${var:=d}``, ``${var:-d}``, ``${var-d}``, ``${var:+d}``, ``${var+d}``,
  ``${var:?d}`` all take the default ``d`` when the value is empty (upstream maps every one
  of them to the same ``toDefault``); defaults may nest expressions;
* ``${#var}`` is the length, ``${var^}``/``${var^^}``/``${var,}``/``${var,,}`` change case,
  ``${var:pos}``/``${var:pos:len}`` take a substring;
* in non-strict mode (the controller's default, ``--feature-gates=StrictPostBuildSubstitutions``
  off) an unset variable renders as the empty string.

Pattern operators (``#``/``%`` trims, ``/`` replacements) are not implemented: they raise
``SubstitutionError`` rather than render something Flux would not.
"""
from __future__ import annotations

import re
from typing import Callable

_IDENT = re.compile(r"[A-Za-z0-9_]+")
_DEFAULT_OPS = (":=", ":-", ":?", ":+", "=", "-", "+", "?")


class SubstitutionError(ValueError):
    """The text has a malformed or unsupported ``${...}`` expression."""


Lookup = Callable[[str], "tuple[str, bool]"]


def render(text: str, lookup: Lookup, strict: bool = False) -> str:
    """``text`` with every ``${...}`` expression evaluated through ``lookup(name) -> (value, set)``."""
    out, _ = _render(text, 0, lookup, strict, nested=False)
    return out


def _render(text: str, pos: int, lookup: Lookup, strict: bool, nested: bool) -> tuple[str, int]:
    """Render from ``pos``; inside an expression argument stop at its closing ``}``."""
    out: list[str] = []
    n = len(text)
    while pos < n:
        ch = text[pos]
        if ch == "$" and pos + 1 < n and text[pos + 1] == "$":
            out.append("$")
            pos += 2
            continue
        if ch == "$" and pos + 1 < n and text[pos + 1] == "{":
            value, pos = _expression(text, pos + 2, lookup, strict)
            out.append(value)
            continue
        if nested and ch == "}":
            return "".join(out), pos
        if nested and ch == "\\" and pos + 1 < n and text[pos + 1] in "/\\":
            out.append(text[pos + 1])
            pos += 2
            continue
        out.append(ch)
        pos += 1
    if nested:
        raise SubstitutionError("missing closing brace")
    return "".join(out), pos


def _expression(text: str, pos: int, lookup: Lookup, strict: bool) -> tuple[str, int]:
    """Evaluate the expression whose name starts at ``pos`` (just after ``${``)."""
    length = False
    if text.startswith("#", pos):
        length = True
        pos += 1
    match = _IDENT.match(text, pos)
    if match is None:
        raise SubstitutionError(f"bad substitution at {text[max(0, pos - 2):pos + 10]!r}")
    name = match.group(0)
    pos = match.end()
    value, is_set = lookup(name)
    if length:
        if not text.startswith("}", pos):
            raise SubstitutionError(f"bad substitution: ${{#{name}...")
        return str(len(value)), pos + 1
    if text.startswith("}", pos):
        if strict and not is_set:
            raise SubstitutionError(f'variable not set (strict mode): "{name}"')
        return value, pos + 1
    for op in ("^^", ",,", "^", ","):
        if text.startswith(op + "}", pos):
            if op == "^^":
                value = value.upper()
            elif op == ",,":
                value = value.lower()
            elif op == "^":
                value = value[:1].upper() + value[1:]
            else:
                value = value[:1].lower() + value[1:]
            return value, pos + len(op) + 1
    for op in _DEFAULT_OPS:
        if text.startswith(op, pos):
            default, pos = _render(text, pos + len(op), lookup, strict, nested=True)
            return (value if value else default), pos + 1
    if text.startswith(":", pos):
        args, end = _render(text, pos + 1, lookup, strict, nested=True)
        parts = args.split(":")
        try:
            start = int(parts[0])
            size = int(parts[1]) if len(parts) > 1 else None
        except ValueError:
            raise SubstitutionError(f"bad substring in ${{{name}:{args}}}") from None
        piece = value[start:] if size is None else value[start:start + size]
        return piece, end + 1
    raise SubstitutionError(f"unsupported substitution operator in ${{{name}{text[pos:pos + 4]}...")
