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
from drtool.suggest import did_you_mean


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
            raise BadInput("command line", "--param", f"unknown parameter {name!r} for runbook {book.name}"
                           f"{did_you_mean(name, book.parameters)} (parameters: {known})")
    values: dict[str, str] = {}
    for name, spec in book.parameters.items():
        if name in given:
            values[name] = given[name]
            check_value(book, name, given[name], inv, source="command line", field=f"--param {name}")
        elif spec.default is not None:
            values[name] = spec.default
            check_value(book, name, spec.default, inv, source=str(book.path), field=f"parameters.{name}.default")
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


def _nodes_text(nodes) -> str:
    return ", ".join(f"{n.name} ({n.role})" for n in nodes) or "none"


def check_value(book: Runbook, name: str, value: str, inv: Inventory | None, *, source: str, field: str) -> None:
    """Refuse a value that does not fit its parameter's type, before any step runs.

    ``node``/``agent``/``server`` must name a node of the inventory with that role (an
    ``agent-replace`` given the server would delete the server's Node and reinstall it);
    ``run`` must be a run under ``runs/``. Node types need the inventory: without one
    (documentation) they are not checked.
    """
    kind = book.parameters[name].type
    if kind == "string":
        return
    if kind == "run":
        from drtool.run import runs_dir

        if not value or "/" in value or value.startswith(".") or not NODE_NAME.match(value.lower()):
            raise BadInput(source, field, f"{value!r} is not a run id (a directory name under {runs_dir()})")
        if not (runs_dir() / value / "journal.json").is_file():
            known = sorted(p.parent.name for p in runs_dir().glob("*/journal.json"))
            latest = f"; latest: {', '.join(known[-3:])}" if known else ""
            raise BadInput(source, field, f"no run {value!r} under {runs_dir()}{did_you_mean(value, known)}{latest}")
        return
    if inv is None:
        return
    try:
        node = inv.node(value)
    except KeyError:
        raise BadInput(source, field, f"unknown node {value!r}{did_you_mean(value, [n.name for n in inv.nodes])}; "
                                      f"inventory {inv.path} has {_nodes_text(inv.nodes)}") from None
    if kind in ("agent", "server") and node.role != kind:
        same = inv.agents if kind == "agent" else inv.servers
        article = {"agent": "an", "server": "a"}
        raise BadInput(source, field, f"{value} is {article[node.role]} {node.role}; runbook {book.name} needs "
                                      f"{article[kind]} {kind} here ({kind}s: {_nodes_text(same)})")


def sample_values(book: Runbook, inv: Inventory, values: Mapping[str, str]) -> dict[str, str]:
    """For linting: placeholders of node-typed parameters replaced by a node of that role, so
    every step's targets can be resolved against the inventory."""
    out = dict(values)
    pools = {"node": inv.nodes, "agent": inv.agents, "server": inv.servers}
    for name, spec in book.parameters.items():
        if out.get(name) == f"<{name}>" and spec.type in pools and pools[spec.type]:
            out[name] = pools[spec.type][0].name
    return out


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
            hint = did_you_mean(name, [n.name for n in inv.nodes])
            raise BadInput(source, field, f"unknown node {name!r}{hint} (inventory {inv.path} has {known})") from None
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
