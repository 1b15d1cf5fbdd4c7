"""Reading user input files (inventories, runbooks, scenarios) into one-line errors.

Every problem becomes ``BadInput(file, field, problem)``: the task layer prints it
as one line and exits 2. Field paths come from pydantic's error locations,
rendered as ``nodes[1].role``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Mapping, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from drtool.errors import BadInput
from drtool.suggest import did_you_mean

# PyYAML's libyaml binding reads the same YAML 1.1 into the same values (the resolvers are
# shared; only scanning and parsing are in C) about nine times faster; PyYAML built without
# libyaml has only the Python loader. Every YAML drtool reads in bulk goes through it.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
        return yaml.load(text, Loader=SAFE_LOADER)
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


def _inner_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model a field holds (through Optional, tuple/list, dict values, Annotated), and
    whether the next location part is a dict key rather than a field name."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is dict and len(args) == 2:
        inner, _ = _inner_model(args[1])
        return inner, inner is not None
    for arg in args:
        inner, keyed = _inner_model(arg)
        if inner is not None:
            return inner, keyed
    return None, False


def allowed_keys(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> list[str]:
    """The keys a mapping at ``loc`` (a pydantic error location) may have, for "did you mean"."""
    current, skip_key = model, False
    for part in loc:
        if current is None:
            return []
        if isinstance(part, int) or skip_key:
            skip_key = False
            continue
        info = current.model_fields.get(str(part))
        if info is None:
            continue  # a validator's wrapper name in the location
        current, skip_key = _inner_model(info.annotation)
    if current is None:
        return []
    return [name for name, info in current.model_fields.items() if not info.exclude]


def _problem(err: Mapping[str, Any], model: type[BaseModel] | None) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        key = err["loc"][-1] if err["loc"] else ""
        return f"unknown key {key!r}" + (did_you_mean(str(key), allowed_keys(model, tuple(err["loc"])[:-1]))
                                         or " (check the spelling)")
    if kind == "missing":
        return "required field is missing"
    msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "literal_error":
        msg = "expected " + msg.removeprefix("Input should be ").replace("'", "")
        choices = re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected", "")))
        if isinstance(err.get("input"), str):
            msg += did_you_mean(err["input"], choices)
    return msg


def validation_error(source: str, exc: ValidationError, field: Callable[[tuple], str] = field_path,
                     model: type[BaseModel] | None = None) -> BadInput:
    """Every problem of a ValidationError in one BadInput (one line each), unknown keys first:
    a typo such as ``roel:`` is shown as the unknown key next to the ``role`` it left missing.
    ``model`` lets an unknown key suggest the closest allowed one."""
    errors = exc.errors(include_url=False)
    # pydantic lists a mapping's unknown keys after its missing ones; show the typo first,
    # next to the key it left missing, and keep the file's order otherwise.
    parents: dict[tuple, int] = {}
    for err in errors:
        parents.setdefault(tuple(err["loc"][:-1]), len(parents))
    errors = sorted(errors, key=lambda e: (parents[tuple(e["loc"][:-1])], e["type"] != "extra_forbidden"))
    seen: dict[str, str] = {}
    for err in errors:
        where = field(tuple(err["loc"]))
        # A union reports one error per member at the same field: the first says enough.
        seen.setdefault(where, _problem(err, model))
    (first_field, first), *more = seen.items()
    return BadInput(source, first_field, first, tuple(more))
