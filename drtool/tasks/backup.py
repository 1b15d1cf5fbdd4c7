"""`inv backup`: the backup phase on its own, for nightly backups (no Flux CLI or Git token needed)."""
from __future__ import annotations

from drtool.tasks._cli import guarded, inventory_task, load, prune_runs


@inventory_task(help={
    "inventory": "inventory file (YAML)",
    "dry_run": "print what would be read from each node; change nothing",
    "quiet": "print only errors and the final line",
    "accept_new_host_keys": "record unknown SSH host keys instead of refusing",
})
@guarded
def backup(c, inventory=None, dry_run=False, quiet=False, accept_new_host_keys=False):
    """Back up what a wipe would destroy (token, datastore, kubeconfig, Flux secrets, volumes), then rotate old runs."""
    from drtool.phases import backup as backup_phase
    from drtool.phases.context import Options
    from drtool.pipeline import Pipeline
    from drtool.secret import redact
    from drtool.tasks.rebuild import print_plan

    inv = load(inventory, c)
    options = Options(yes=True, quiet=quiet, accept_new_host_keys=accept_new_host_keys)
    pipeline = Pipeline(inv, options, kind="backup", phases=[backup_phase])
    if dry_run:
        print(f"Plan for backing up cluster {inv.cluster.name} (dry run: nothing is changed)")
        print_plan([(p, t, redact(a)) for p, t, a in pipeline.plan()])
        return
    try:
        pipeline.run()
        if pipeline.run_obj is not None:
            print(f"backup of cluster {inv.cluster.name}: {pipeline.run_obj.dir / 'backup'}")
    finally:
        prune_runs(inv, pipeline.run_obj.record["run_id"] if pipeline.run_obj else None, quiet)
