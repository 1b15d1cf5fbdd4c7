"""The GitOps check inside preflight, and its read-only view of the old cluster.

Runs before anything changes: it reads the local checkout and, when the old cluster still
answers, lists objects through its API with the kubeconfig read from the first server (a
``cat`` over SSH, the same read the kubeconfig phase does). A blocker stops the run with exit 3
unless the operator accepted that finding (``--accept FINDING_ID``); the run record keeps every
finding and what was accepted, so the report and the drill's outputs list them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from drtool.errors import DrtoolError
from drtool.inventory import Inventory

if TYPE_CHECKING:  # imported when first used: the kubernetes client costs start-up time
    from kubernetes.client import ApiClient


LIVE_TIMEOUT = (3.0, 10.0)
"""(connect, read) seconds per API request: the old cluster may be half dead."""


def live_from_server(inv: Inventory, runner, api_client: Callable[[Path], ApiClient] | None = None):
    """A read-only ``LiveSnapshot`` of the old cluster, or (None, why) when it does not answer.

    ``api_client`` makes the client for a kubeconfig file (a run's ``Context.api_client``, which
    a dry run records); by default the kubernetes client for that file's current context.
    """
    from drtool.gitops.check.live import read_live
    from drtool.kube.client import KubeTransport, api_client_for_config
    from drtool.kubeconfig import rewrite
    from drtool.remote.k3s import KUBECONFIG

    server = inv.servers[0]
    try:
        text = runner.read(server, KUBECONFIG, step="preflight")
        cfg = rewrite(text, inv.cluster.api_endpoint, inv.cluster.context_name)
    except DrtoolError as exc:
        return None, f"no kubeconfig on {server.name} ({str(exc).splitlines()[0]})"
    try:
        client = api_client_for_config(cfg, api_client)
    except DrtoolError as exc:
        return None, str(exc).splitlines()[0]
    try:
        transport = KubeTransport(client, timeout=LIVE_TIMEOUT)
        try:
            transport.get_json("/version", category="get")
        except DrtoolError as exc:
            return None, f"the API at {inv.cluster.api_endpoint} does not answer ({str(exc).splitlines()[0]})"
        return read_live(transport), ""
    finally:
        client.close()


def live_from_kubeconfig(path: str, context: str | None):
    """A read-only ``LiveSnapshot`` through an operator's kubeconfig."""
    from drtool.gitops.check.live import read_live
    from drtool.kube.client import KubeTransport, api_client_from_kubeconfig

    client = api_client_from_kubeconfig(path, context=context)
    try:
        return read_live(KubeTransport(client, timeout=LIVE_TIMEOUT))
    finally:
        client.close()


def inventory_checkout(inv: Inventory) -> Path | None:
    """The inventory's ``flux.checkout`` (None when not set); bad input when it is not a directory."""
    from drtool.gitops.check import checkout_of

    checkout = checkout_of(inv)
    if checkout is not None and not checkout.is_dir():
        from drtool.errors import BadInput

        raise BadInput(str(inv.path), "flux.checkout", f"{checkout} is not a directory (a local clone of the repository)")
    return checkout


def check_with_old_cluster(inv: Inventory, runner, checkout: Path,
                           api_client: Callable[[Path], ApiClient] | None = None):
    """The GitOps check of ``checkout``, with the old cluster's objects when it still answers."""
    from drtool.gitops.check import run_check

    live, why = live_from_server(inv, runner, api_client)
    result = run_check(inv, checkout, live)
    if live is None:
        result.notes = [n for n in result.notes if not n.startswith("live cluster not read")]
        result.notes.append(f"live cluster not read ({why}): drift and live data were not checked")
    return result


def findings_markup(result, accepted: set[str]) -> list[str]:
    """Each finding as rich markup: red for a blocker not accepted, yellow otherwise."""
    return [("[red]" if f.severity == "blocker" and f.id not in accepted else "[yellow]")
            + describe(f, f.id in accepted).replace("[", "\\[") + "[/]" for f in result.sorted()]


def describe(f, accepted: bool = False) -> str:
    """One line for a finding: severity, id, where, what; the fix on the next line."""
    where = " ".join(x for x in (f"[{f.kustomization}]" if f.kustomization else "", f.file) if x)
    tag = f"{f.severity} (accepted)" if accepted else f.severity
    return f"{tag}: {f.id}{(' ' + where) if where else ''}\n    {f.message}\n    fix: {f.fix}"


def run_in_preflight(ctx) -> str:
    """Run the check for the pipeline's preflight; raise ``PreflightFailed`` on an unaccepted blocker."""
    from drtool.errors import PreflightFailed

    inv = ctx.inv
    accepted = set(ctx.options.accept)
    checkout = inventory_checkout(inv)
    if checkout is None:
        ctx.run.record["gitops_check"] = {"skipped": "no flux.checkout in the inventory", "findings": []}
        return "gitops check skipped (set flux.checkout to a local clone of the repository)"
    result = check_with_old_cluster(inv, ctx.runner, checkout, ctx.api_client)
    record = {**result.to_dict(accepted), "checkout": str(checkout)}
    ctx.run.record["gitops_check"] = record
    (ctx.run.dir / "gitops-check.json").write_text(json.dumps(record, indent=2))
    for line in findings_markup(result, accepted):
        ctx.progress.print(line)
    unknown = sorted(accepted - {f.id for f in result.findings})
    if unknown:
        ctx.progress.print(f"[yellow]--accept matched no finding: {', '.join(unknown)}[/]")
    blocking = result.unaccepted_blockers(accepted)
    if blocking:
        raise PreflightFailed(
            f"gitops check: {len(blocking)} blocker(s): " + "; ".join(f"{f.id} ({f.file or f.kustomization})"
                                                                       for f in blocking)
            + " — fix them, or pass --accept FINDING_ID to go on anyway")
    taken = sorted(accepted & {f.id for f in result.blockers})
    return (f"gitops check: {len(result.blockers)} blocker(s)" + (f" ({len(taken)} accepted)" if taken else "")
            + f", {len(result.findings) - len(result.blockers)} warning(s)")
