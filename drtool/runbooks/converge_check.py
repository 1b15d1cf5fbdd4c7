"""A runbook's ``check: {converge: ...}`` step: readiness through the convergence engine.

One function runs it, for the executor and for a dry run alike (a dry run records the API
reads it makes, ``drtool.runbooks.plan``); ``converge_text`` says what it waits for.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from drtool.errors import NotConverged
from drtool.runbooks.model import ConvergeCheck
from drtool.secret import redact

if TYPE_CHECKING:
    from drtool.inventory import Inventory
    from drtool.phases.context import Context


def release(text: str) -> tuple[str, str, str | None]:
    """``namespace/name[@version]`` as (namespace, name, version or None)."""
    ref, _, version = text.partition("@")
    ns, _, name = ref.partition("/")
    return ns, name, version or None


def converge_text(c: ConvergeCheck, inv: Inventory | None) -> str:
    deadline = c.deadline or (inv.timeouts.converge if inv is not None else None)
    what = []
    if c.kustomizations is not None:
        what.append("Kustomizations " + (", ".join(c.kustomizations) or "-"))
    if c.helmreleases is not None:
        what.append("HelmReleases " + (", ".join(c.helmreleases) or "-"))
    within = f" (≤ {deadline:g}s)" if deadline else ""
    extra = f"; expect {'; '.join(what)}" if what else ""
    return f"wait until every Flux object, workload, pod and node is ready{within}{extra}"


def run_converge_check(ctx: Context, c: ConvergeCheck) -> str:
    """Wait (bounded by the check's deadline, else the inventory's) until everything the check
    names is ready; its summary, or ``NotConverged``."""
    from drtool.converge import Converger
    from drtool.phases.converge import options_for
    from drtool.runbooks.action_support import ensure_kubeconfig

    changes: dict = {}
    if c.deadline:
        changes["deadline_s"] = c.deadline
    if c.kustomizations is not None:
        changes["expected_kustomizations"] = tuple(c.kustomizations)
    if c.helmreleases is not None:
        changes["expected_helmreleases"] = tuple(release(h) for h in c.helmreleases)
    if c.ignore_namespaces is not None:
        changes["ignore_namespaces"] = tuple(c.ignore_namespaces)
    if c.keep_waiting is not None:
        changes["keep_waiting"] = c.keep_waiting
    opts = replace(options_for(ctx), **changes)
    ensure_kubeconfig(ctx)
    client = ctx.api_client()
    try:
        result = Converger(client, opts).run()
    finally:
        client.close()
    ctx.check_stop()
    if not result.converged:
        raise NotConverged(redact(result.summary()))
    return result.summary()
