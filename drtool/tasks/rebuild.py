"""`inv rebuild`: back up, wipe, reinstall K3s, bootstrap Flux, wait, report."""
from __future__ import annotations

import sys


from drtool.tasks._cli import guarded, inventory_task, load, prune_runs

HELP = {
    "inventory": "inventory file (YAML)",
    "yes": "do not ask for confirmation (required without a terminal)",
    "dry_run": "print every command per node in order (secrets masked) and change nothing",
    "skip_backup": "wipe without a backup (the report says so)",
    "resume": "continue run RUN_ID from its first unfinished phase",
    "from": "first phase to run (e.g. bootstrap)",
    "to": "last phase to run",
    "merge_kubeconfig": "merge the new kubeconfig into ~/.kube/config (replacing the old cluster's credentials)",
    "keep_waiting": "do not fail fast on errors that may fix themselves; wait until the converge deadline",
    "quiet": "print only errors and the final line",
    "accept_new_host_keys": "record unknown SSH host keys instead of refusing",
    "json": "with --dry-run: print the plan as JSON",
    "discard_volume_data": "wipe even when local-path volumes under the K3s data dir hold data the backup did not archive",
    "accept": "go on despite this GitOps-check blocker (finding id; repeatable); the report records it",
}


def confirm(cluster: str, yes: bool, stdin=None) -> None:
    """Interactive runs must type the cluster name; without a terminal, --yes is required."""
    from drtool.errors import Refused

    if yes:
        return
    stdin = stdin or sys.stdin
    if not stdin or not stdin.isatty():
        raise Refused(f"refusing to wipe cluster {cluster} without confirmation: no terminal; pass --yes")
    print(f"This WIPES cluster {cluster!r} and rebuilds it from Git.")
    answer = input(f"Type the cluster name ({cluster}) to continue: ").strip()
    if answer != cluster:
        raise Refused("confirmation did not match the cluster name; nothing was changed")


def print_plan(steps) -> None:
    current = None
    for phase, target, action in steps:
        if phase != current:
            print(f"\n== {phase}")
            current = phase
        print(f"  [{target}] {action}")


@inventory_task(help=HELP, iterable=["accept"])
@guarded
def rebuild(c, inventory=None, yes=False, dry_run=False, skip_backup=False, resume=None, from_=None, to=None,
            merge_kubeconfig=False, keep_waiting=False, quiet=False, accept_new_host_keys=False, discard_volume_data=False,
            accept=None, json=False):
    """Rebuild the cluster from Git: preflight, backup, teardown, install, join, bootstrap, converge, report."""
    from drtool.phases.context import Options
    from drtool.pipeline import Pipeline
    from drtool.secret import redact

    inv = load(inventory, c)
    options = Options(yes=yes, dry_run=dry_run, skip_backup=skip_backup, merge_kubeconfig=merge_kubeconfig,
                      keep_waiting=keep_waiting, quiet=quiet, accept_new_host_keys=accept_new_host_keys,
                      discard_volume_data=discard_volume_data, accept=tuple(accept or ()))
    pipeline = Pipeline(inv, options, start=from_, stop=to, resume=resume)
    if json and not dry_run:
        from drtool.tasks._cli import bad_arg

        raise bad_arg("--json", "only with --dry-run (a rebuild writes report.json in its run directory)")
    if dry_run:
        steps = [(p, t, redact(a)) for p, t, a in pipeline.plan()]
        if json:
            import json as jsonlib

            print(jsonlib.dumps({"schema": "drtool.plan/v1", "cluster": inv.cluster.name, "dry_run": True,
                                 "steps": [{"phase": p, "target": t, "action": a} for p, t, a in steps]}, indent=2))
            return
        print(f"Plan for rebuilding cluster {inv.cluster.name} (dry run: nothing is changed)")
        print_plan(steps)
        return
    confirm(inv.cluster.name, yes)
    try:
        pipeline.run()
    finally:
        if pipeline.run_obj is not None:
            prune_runs(inv, pipeline.run_obj.record["run_id"], quiet)
