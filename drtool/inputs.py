"""Reading user input files (inventories, runbooks, scenarios) into one-line errors.

Every problem becomes ``BadInput(file, field, problem)``: the task layer prints it
as one line and exits 2. Field paths come from pydantic's error locations,
rendered as ``nodes[1].role``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import ValidationError

from drtool.errors import BadInput


def read_yaml(path: str | Path) -> Any:
    """The parsed YAML of ``path``; unreadable files and bad YAML are BadInput (with the line)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise BadInput(str(path), "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(str(path), "", f"cannot read: {getattr(exc, 'strerror', None) or exc.__class__.__name__}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise BadInput(str(path), where, f"invalid YAML: {getattr(exc, 'problem', None) or exc}") from None


def field_path(loc: tuple[Any, ...]) -> str:
    """pydantic's error location as ``a.b[2].c`` (validator wrapper names left out)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith("function-"):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def validation_error(source: str, exc: ValidationError, field: Callable[[tuple], str] = field_path) -> BadInput:
    """The first problem of a ValidationError as a one-line BadInput."""
    err = exc.errors(include_url=False)[0]
    where = field(tuple(err["loc"]))
    kind = err["type"]
    if kind == "extra_forbidden":
        return BadInput(source, where, "unknown key (check the spelling)")
    if kind == "missing":
        return BadInput(source, where, "required field is missing")
    msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "literal_error":
        msg = "expected " + msg.removeprefix("Input should be ").replace("'", "")
    return BadInput(source, where, msg)
