"""`inv gitops.check`: what Git alone cannot rebuild, found before the wipe."""
from __future__ import annotations

import json as jsonlib

from invoke import Exit

from drtool.tasks._cli import bad_arg, console, guarded, inventory_task, load, read_only


@inventory_task(help={
    "inventory": "inventory file (YAML)",
    "repo": "local checkout of the GitOps repository (default: the inventory's flux.checkout)",
    "json": "print the findings as JSON",
    "live": "also read the old cluster (read-only) with the kubeconfig on the first server, over SSH",
    "kubeconfig": "also read the old cluster (read-only) through this kubeconfig",
    "context": "kubeconfig context for --kubeconfig (default: its current context)",
    "accept": "finding id to accept (repeatable): it is listed but does not fail the check",
}, iterable=["accept"])
@guarded
@read_only()
def check(c, inventory=None, repo=None, json=False, live=False, kubeconfig=None, context=None, accept=None):
    """Check the GitOps repository for what a rebuild from Git cannot bring back; exit 3 on a blocker."""
    from drtool.errors import ExitCode
    from drtool.gitops.check import checkout_of, run_check
    from drtool.phases.gitops_check import findings_markup, live_from_kubeconfig, live_from_server

    inv = load(inventory, c)
    checkout = checkout_of(inv, repo)
    if checkout is None:
        raise bad_arg("--repo", f"no checkout: pass --repo PATH or set flux.checkout in {inv.path}")
    if not checkout.is_dir():
        if repo:
            raise bad_arg("--repo", f"{checkout} is not a directory")
        from drtool.errors import BadInput

        raise BadInput(str(inv.path), "flux.checkout", f"{checkout} is not a directory (a local clone of the repository)")
    snapshot, why = None, ""
    if kubeconfig:
        snapshot = live_from_kubeconfig(kubeconfig, context)
    elif live:
        from drtool.remote.runner import Runner

        with Runner(inv) as runner:
            snapshot, why = live_from_server(inv, runner)
    result = run_check(inv, checkout, snapshot)
    if why:
        result.notes = [n for n in result.notes if not n.startswith("live cluster not read")]
        result.notes.append(f"live cluster not read ({why}): drift and live data were not checked")
    accepted = set(accept or ())
    if json:
        print(jsonlib.dumps({**result.to_dict(accepted), "checkout": str(checkout)}, indent=2))
    else:
        con = console()
        for line in findings_markup(result, accepted):
            con.print(line)
        for note in result.notes:
            con.print(f"note: {note}")
        con.print(f"gitops check of {checkout} ({inv.flux.path}): {len(result.blockers)} blocker(s), "
                  f"{len(result.findings) - len(result.blockers)} warning(s) in {result.kustomizations} "
                  f"Kustomization(s), {result.files} file(s), {result.duration_s:.2f}s")
    blocking = result.unaccepted_blockers(accepted)
    if blocking:
        raise Exit(f"error: gitops check: {len(blocking)} blocker(s): {', '.join(f.id for f in blocking)}",
                   code=int(ExitCode.PREFLIGHT))
