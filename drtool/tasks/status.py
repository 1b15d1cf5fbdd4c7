"""`inv status`: one snapshot of the live cluster through the convergence engine's rules."""
from __future__ import annotations

import json
import time
from pathlib import Path

from invoke import Exit

from drtool.tasks._cli import console, guarded, inventory_task, load, read_only


def find_kubeconfig(inv, explicit: str | None) -> tuple[str, str | None]:
    """(kubeconfig path, context): --kubeconfig, else the newest run's for this cluster, else ~/.kube/config."""
    if explicit:
        return explicit, inv.cluster.context_name
    from drtool.run import runs_dir

    newest = None
    for journal in sorted(runs_dir().glob("*/journal.json")):
        try:
            rec = json.loads(journal.read_text())
        except (OSError, ValueError):
            continue
        kc = journal.parent / "kubeconfig"
        if rec.get("cluster") == inv.cluster.name and kc.exists():
            newest = kc
    if newest:
        return str(newest), inv.cluster.context_name
    return str(Path.home() / ".kube" / "config"), inv.cluster.context_name


def _render(snap, con, elapsed: float | None = None) -> None:
    from rich.table import Table

    title = "cluster status" + (f" ({elapsed:.0f}s)" if elapsed is not None else "")
    table = Table(title=title)
    for col in ("kind", "namespace", "name", "state", "reason / problem"):
        table.add_column(col)
    for r in snap.rows:
        if r.done:
            continue
        table.add_row(r.kind, r.namespace, r.name, r.state, r.problem or r.reason or r.message[:80])
    counts = "  ".join(f"{k} {d}/{t}" for k, (d, t) in sorted(snap.counts.items()))
    con.print(counts)
    if table.row_count:
        con.print(table)
    for m in snap.missing:
        con.print(f"[red]missing[/]: {m}")
    con.print("[green]all ready[/]" if snap.ok else f"[yellow]{len(snap.not_done)} not ready[/]")


@inventory_task(help={"inventory": "inventory file", "kubeconfig": "kubeconfig to use (default: the newest run's)",
            "watch": "refresh until everything is ready (bounded by timeouts.converge)", "json": "print JSON"})
@guarded
@read_only()
def status(c, inventory=None, kubeconfig=None, watch=False, json=False):
    """One snapshot of the cluster (Flux objects, workloads, pods, expectations); exit 4 when not all ready."""
    import json as jsonlib

    from drtool.converge import snapshot
    from drtool.errors import ExitCode
    from drtool.kube.client import api_client_from_kubeconfig
    from drtool.converge import ConvergeOptions

    inv = load(inventory, c)
    path, context = find_kubeconfig(inv, kubeconfig)
    client = api_client_from_kubeconfig(path, context=context)
    options = ConvergeOptions(deadline_s=inv.timeouts.converge, ignore_namespaces=tuple(inv.converge.ignore_namespaces),
                              crashloop_restarts=inv.converge.crashloop_restarts, unschedulable_grace_s=inv.converge.unschedulable_grace,
                              expected_kustomizations=tuple(inv.expectations.kustomizations),
                              expected_helmreleases=tuple((h.namespace, h.name, h.version) for h in inv.expectations.helmreleases))
    con = console()
    start = time.monotonic()
    try:
        while True:
            snap = snapshot(client, options)
            if json:
                print(jsonlib.dumps({"ok": snap.ok, "counts": snap.counts, "missing": list(snap.missing),
                                     "not_ready": [r.__dict__ for r in snap.not_done]}, indent=2))
            else:
                _render(snap, con, time.monotonic() - start if watch else None)
            if not watch or snap.ok or time.monotonic() - start > inv.timeouts.converge:
                break
            time.sleep(2)
    finally:
        client.close()
    if not snap.ok:
        raise Exit(code=int(ExitCode.NOT_CONVERGED))
