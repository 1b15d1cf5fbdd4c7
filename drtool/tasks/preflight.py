"""`inv preflight`: check everything that can be checked before a destructive step."""
from __future__ import annotations

import json as jsonlib

from invoke import Exit

from drtool.tasks._cli import console, guarded, inventory_task, load, read_only

_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red"}


def render_checks(result, con) -> None:
    from rich.table import Table

    table = Table(title=f"preflight ({result.duration:.1f}s)", show_lines=False)
    for col in ("target", "check", "state", "detail"):
        table.add_column(col)
    for c in result.checks:
        table.add_row(c.target, c.name, f"[{_STYLE[c.state]}]{c.state}[/]", c.detail)
    con.print(table)


@inventory_task(
    help={
        "inventory": "inventory file (YAML)",
        "json": "print the checks as JSON",
        "accept_new_host_keys": "record unknown SSH host keys in known_hosts instead of refusing",
    }
)
@guarded
@read_only("accept_new_host_keys")
def preflight(c, inventory=None, json=False, accept_new_host_keys=False):
    """Check nodes (SSH, host key, sudo, OS, disk, clock, protected paths) and local prerequisites."""
    from drtool.errors import ExitCode
    from drtool.phases.preflight import run_preflight
    from drtool.remote.runner import Runner

    inv = load(inventory, c)
    with Runner(inv, accept_new_host_keys=accept_new_host_keys) as runner:
        result = run_preflight(inv, runner)
    if json:
        print(jsonlib.dumps(result.to_dict(), indent=2))
    else:
        render_checks(result, console())
    if not result.ok:
        names = ", ".join(sorted({f"{c.target}: {c.name}" for c in result.failed()}))
        raise Exit(f"error: preflight failed ({names})", code=int(ExitCode.PREFLIGHT))
