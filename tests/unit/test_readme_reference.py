"""The README's inventory reference names every field the inventory model accepts."""
from __future__ import annotations

import re
import typing
from pathlib import Path

from pydantic import BaseModel

from drtool.inventory import Inventory

README = Path(__file__).resolve().parents[2] / "README.md"


def _models_in(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _is_sequence(annotation) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (tuple, list):
        return True
    return any(_is_sequence(a) for a in typing.get_args(annotation) if typing.get_origin(a) is not None)


def leaf_fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every key an inventory may set, as ``nodes[].ssh_key`` or ``k3s.install.method``."""
    out = []
    for name, info in model.model_fields.items():
        if info.exclude:
            continue
        path = prefix + name
        nested = _models_in(info.annotation)
        if nested and typing.get_origin(info.annotation) is not dict:
            sub = path + ("[]" if _is_sequence(info.annotation) else "") + "."
            for m in nested:
                out += leaf_fields(m, sub)
        else:
            out.append(path)
    return out


def documented_fields(text: str) -> set[str]:
    """Keys named in the first cell of the reference table's rows: the first key is a full
    path; bare names after it share its parent (``nodes[].port``, ``user``, ``ssh_key``)."""
    section = text.split("## Inventory reference", 1)[1].split("\n## ", 1)[0]
    keys: set[str] = set()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.split("|")[1]
        tokens = re.findall(r"`([^`]+)`", first_cell)
        parent = tokens[0].rsplit(".", 1)[0] + "." if "." in tokens[0] else ""
        for tok in tokens:
            keys.add(tok if "." in tok or not parent else parent + tok)
    return keys


def test_every_inventory_field_is_in_the_readme_reference():
    documented = documented_fields(README.read_text())
    missing = [f for f in leaf_fields(Inventory) if f not in documented]
    assert not missing, f"inventory fields missing from README.md's Inventory reference: {missing}"


def test_the_reference_names_no_field_the_model_lacks():
    fields = set(leaf_fields(Inventory))
    extra = sorted(k for k in documented_fields(README.read_text()) if k not in fields)
    assert not extra, f"README.md's Inventory reference names keys the inventory does not accept: {extra}"


def test_the_walk_sees_nested_and_listed_fields():
    fields = leaf_fields(Inventory)
    for f in ("cluster.name", "nodes[].ssh_key", "k3s.token.token_env", "k3s.install.method", "flux.token_env",
              "flux.timeout", "drill.notify[].url_env", "drill.http_checks[].url", "timeouts.converge", "objective"):
        assert f in fields
