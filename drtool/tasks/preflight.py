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
        "accept": "GitOps-check finding id to accept (repeatable): listed, but it does not fail preflight",
    },
    iterable=["accept"],
)
@guarded
@read_only("accept_new_host_keys")
def preflight(c, inventory=None, json=False, accept_new_host_keys=False, accept=None):
    """Check nodes (SSH, host key, sudo, OS, disk, clock, protected paths), local prerequisites, and the GitOps repository."""
    from drtool.errors import ExitCode
    from drtool.phases.gitops_check import check_with_old_cluster, findings_markup, inventory_checkout
    from drtool.phases.preflight import run_preflight
    from drtool.remote.runner import Runner

    inv = load(inventory, c)
    # The same checks `inv rebuild` makes before it touches anything, the GitOps check included.
    checkout = inventory_checkout(inv)
    accepted = set(accept or ())
    with Runner(inv, accept_new_host_keys=accept_new_host_keys) as runner:
        result = run_preflight(inv, runner)
        gitops = check_with_old_cluster(inv, runner, checkout) if checkout is not None and result.ok else None
    blocking = gitops.unaccepted_blockers(accepted) if gitops is not None else []
    if json:
        doc = result.to_dict()
        if gitops is not None:
            doc["gitops_check"] = {**gitops.to_dict(accepted), "checkout": str(checkout)}
        print(jsonlib.dumps(doc, indent=2))
    else:
        con = console()
        render_checks(result, con)
        if gitops is not None:
            for line in findings_markup(gitops, accepted):
                con.print(line)
            con.print(f"gitops check of {checkout} ({inv.flux.path}): {len(gitops.blockers)} blocker(s), "
                      f"{len(gitops.findings) - len(gitops.blockers)} warning(s)")
        elif checkout is None:
            con.print("gitops check skipped: set flux.checkout to a local clone of the repository")
    if not result.ok:
        names = ", ".join(sorted({f"{c.target}: {c.name}" for c in result.failed()}))
        raise Exit(f"error: preflight failed ({names})", code=int(ExitCode.PREFLIGHT))
    if blocking:
        raise Exit(f"error: preflight failed (gitops check: {len(blocking)} blocker(s): "
                   + ", ".join(f.id for f in blocking) + "; fix them, or pass --accept FINDING_ID)",
                   code=int(ExitCode.PREFLIGHT))
