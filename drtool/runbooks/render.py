"""A runbook as Markdown: what it is for, its parameters, and every step with its exact commands.

Given an inventory, each command is shown per node exactly as ``inv runbook.run``
would send it (sudo wrapping, quoting, node names); without one, per target group.
The output is for a wiki page or a printout next to the rack.
"""
from __future__ import annotations

from typing import Mapping

from drtool.inventory import Inventory
from drtool.runbooks.model import Runbook
from drtool.runbooks.params import resolve_params, substitute
from drtool.runbooks.plan import dry_context, plan_step, policy_text
from drtool.secret import redact

KIND_LABEL = {"phase": "rebuild phase", "remote": "command on nodes", "local": "local command", "check": "check",
              "manual": "manual step", "wait": "wait", "action": "drtool action"}


def render_markdown(book: Runbook, inv: Inventory | None = None, params: Mapping[str, str] | None = None) -> str:
    """The runbook as Markdown; missing parameter values show as ``<name>``."""
    values = resolve_params(book, inv, params or {}, lenient=True)
    ctx = dry_context(inv, book=book) if inv is not None else None
    out = [f"# Runbook: {book.name}", "", book.description.strip(), ""]
    if inv is not None:
        out += [f"Resolved for cluster `{inv.cluster.name}` (inventory `{inv.path}`): "
                + ", ".join(f"{n.name} ({n.role})" for n in inv.nodes) + ".", ""]
    out += [f"Run it with `inv runbook.run {book.name} -i INVENTORY"
            + "".join(f" --param {k}=…" for k, p in book.parameters.items() if p.default is None) + "`"
            + " (add `--dry-run` to see every command first, `--step` to confirm each step).", ""]
    if book.parameters:
        out += ["## Parameters", "", "| name | type | default | value used here | description |", "|---|---|---|---|---|"]
        for name, p in book.parameters.items():
            default = f"`{p.default}`" if p.default is not None else "(required)"
            out.append(f"| `{name}` | {p.type} | {default} | `{values[name]}` | {p.description} |")
        out.append("")
    out += ["## Steps", ""]
    for i, step in enumerate(book.steps):
        out += [f"### {i + 1}. {substitute(step.title, values, shell=False)}", "",
                f"`{step.id}` — {KIND_LABEL[step.kind]}" + (f" `{step.phase or step.action}`" if step.phase or step.action else "")
                + (f" ({policy_text(step)})" if policy_text(step) else ""), ""]
        if step.doc:
            out += [substitute(step.doc, values, shell=False).strip(), ""]
        lines = plan_step(book, i, values, ctx)
        if step.kind == "manual":
            out += ["> " + line for line in lines[0][1].strip().splitlines()] + [""]
            continue
        if ctx is None and step.kind in ("phase", "action", "wait") or step.check is not None and step.check.converge:
            # Without an inventory these are descriptions, not commands.
            out += [f"- {redact(what)}" for _, what in lines] + [""]
            continue
        out.append("```sh")
        for target, what in lines:
            out.append(f"# on {target}")
            out.append(redact(what))
        out += ["```", ""]
    return "\n".join(out).rstrip() + "\n"
