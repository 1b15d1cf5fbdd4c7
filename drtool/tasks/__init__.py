"""drtool's Invoke collection. Task modules import heavy libraries lazily so `inv --list` stays fast."""
from invoke import Collection

from drtool.tasks import backup, bench, drill, gitops, inventory_tasks, lab, preflight, rebuild, report, runbook, status

ns = Collection()
ns.add_task(preflight.preflight)
ns.add_task(rebuild.rebuild)
ns.add_task(backup.backup)
ns.add_task(status.status)
ns.add_task(bench.bench)
ns.add_collection(Collection.from_module(report, name="report"))
ns.add_collection(Collection.from_module(inventory_tasks, name="inventory"))
ns.add_collection(Collection.from_module(lab, name="lab"))
ns.add_collection(Collection.from_module(drill, name="drill"))
ns.add_collection(Collection.from_module(runbook, name="runbook"))
ns.add_collection(Collection.from_module(gitops, name="gitops"))
