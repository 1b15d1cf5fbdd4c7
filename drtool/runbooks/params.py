"""Runbook parameters: ``--param k=v`` parsing, ``{{ name }}`` substitution and target nodes.

A value that reaches a shell is substituted shell-quoted, so a parameter can
never inject a command; node lists and action arguments get the raw value and
are checked against the inventory instead.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from drtool.errors import BadInput
from drtool.inventory import Inventory, Node
from drtool.remote.runner import q
from drtool.runbooks.model import BUILTIN_PARAMETERS, NODE_NAME, TEMPLATE, Runbook


def parse_param_args(pairs: Iterable[str] | None) -> dict[str, str]:
    """``["agent=node2", ...]`` → ``{"agent": "node2"}``; malformed pairs are bad input."""
    out: dict[str, str] = {}
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise BadInput("command line", "--param", f"{pair!r}: expected NAME=VALUE")
        out[name.strip()] = value
    return out


def resolve_params(book: Runbook, inv: Inventory | None, given: Mapping[str, str], *,
                   lenient: bool = False) -> dict[str, str]:
    """Every parameter's value: ``given``, else its default, plus the built-ins from the inventory.

    ``lenient`` (documentation) shows a missing value as ``<name>`` instead of failing.
    """
    for name in given:
        if name not in book.parameters:
            known = ", ".join(book.parameters) or "none"
            raise BadInput("command line", "--param", f"unknown parameter {name!r} for runbook {book.name} (parameters: {known})")
    values: dict[str, str] = {}
    for name, spec in book.parameters.items():
        if name in given:
            values[name] = given[name]
        elif spec.default is not None:
            values[name] = spec.default
        elif lenient:
            values[name] = f"<{name}>"
        else:
            hint = f" ({spec.description})" if spec.description else ""
            raise BadInput("command line", "--param", f"runbook {book.name} needs --param {name}=VALUE{hint}")
    if inv is not None:
        values["cluster"] = inv.cluster.name
        values["server"] = inv.servers[0].name
    else:
        values.update({k: f"<{k}>" for k in BUILTIN_PARAMETERS})
    return values


def substitute(text: str, params: Mapping[str, str], *, shell: bool) -> str:
    """Replace ``{{ name }}``; shell-quoted when the text is a shell command."""
    return TEMPLATE.sub(lambda m: q(params[m.group(1)]) if shell else params[m.group(1)], text)


def resolve_targets(inv: Inventory, on: str | tuple[str, ...], params: Mapping[str, str], *,
                    source: str, field: str) -> tuple[Node, ...]:
    """The inventory nodes a step targets; an unknown node is bad input naming the step."""
    if on == "servers":
        return inv.servers
    if on == "agents":
        return inv.agents
    if on == "all":
        return inv.nodes
    nodes = []
    for item in on:
        name = substitute(item, params, shell=False)
        if not NODE_NAME.match(name):
            raise BadInput(source, field, f"{name!r} is not a node name")
        try:
            nodes.append(inv.node(name))
        except KeyError:
            known = ", ".join(n.name for n in inv.nodes)
            raise BadInput(source, field, f"unknown node {name!r} (inventory {inv.path} has {known})") from None
    return tuple(nodes)


def substitute_args(args: Mapping, params: Mapping[str, str]) -> dict:
    """Action arguments with parameters substituted (raw: they never reach a shell as text)."""
    out: dict = {}
    for key, value in args.items():
        if isinstance(value, str):
            out[key] = substitute(value, params, shell=False)
        elif isinstance(value, (list, tuple)):
            out[key] = [substitute(v, params, shell=False) if isinstance(v, str) else v for v in value]
        else:
            out[key] = value
    return out
