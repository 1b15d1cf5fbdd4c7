"""Converge: wait until every Flux object, workload and pod is ready (the convergence engine).

Fails fast on errors that will not fix themselves (Stalled HelmRelease,
CrashLoopBackOff, image pull errors, long Unschedulable, decryption failures)
unless ``--keep-waiting``; the result (per-object timings, critical path,
failures) goes into the run record for the report.
"""
from __future__ import annotations

from drtool.errors import NotConverged
from drtool.phases.context import Context
from drtool.phases.result import PhaseResult, ok

NAME = "converge"


def options_for(ctx: Context):
    from drtool.converge import ConvergeOptions

    inv = ctx.inv
    return ConvergeOptions(
        deadline_s=inv.timeouts.converge,
        ignore_namespaces=tuple(inv.converge.ignore_namespaces),
        crashloop_restarts=inv.converge.crashloop_restarts,
        unschedulable_grace_s=inv.converge.unschedulable_grace,
        stuck_grace_s=inv.converge.stuck_grace,
        nudge=inv.converge.nudge,
        keep_waiting=ctx.options.keep_waiting,
        expected_kustomizations=tuple(inv.expectations.kustomizations),
        expected_helmreleases=tuple((h.namespace, h.name, h.version) for h in inv.expectations.helmreleases),
    )


def applied_revision(client) -> str | None:
    """The Git revision Flux applied (flux-system GitRepository's artifact), for provenance."""
    from drtool.kube.client import KubeTransport

    try:
        repo = KubeTransport(client).get_json(
            "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories/flux-system")
    except Exception:  # provenance is best effort: the verdict never depends on it
        return None
    return (repo.get("status", {}).get("artifact") or {}).get("revision")


def _run_stoppable(ctx: Context, converger):
    """Run the converger in a worker so SIGINT/SIGTERM can stop the wait at once."""
    import threading

    box: dict = {}

    def work() -> None:
        try:
            box["result"] = converger.run()
        except BaseException as exc:  # re-raised in the calling thread
            box["error"] = exc

    worker = threading.Thread(target=work, name="converge", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.2)
        if ctx.stop.is_set():
            stop = getattr(converger, "stop", None)
            if callable(stop):
                stop()
            ctx.check_stop()
    if "error" in box:
        raise box["error"]
    if "result" not in box:
        raise NotConverged("the convergence engine stopped without a result")
    return box["result"]


def run(ctx: Context) -> PhaseResult:
    from drtool.converge import Converger

    client = ctx.api_client()
    last = {"line": ""}

    def on_progress(p) -> None:
        counts = ", ".join(f"{kind} {done}/{total}" for kind, (done, total) in sorted(p.counts.items()))
        pending = f"; pending: {', '.join(p.pending[:4])}{' …' if len(p.pending) > 4 else ''}" if p.pending else ""
        line = f"{counts}{pending}"
        if line != last["line"]:
            last["line"] = line
            ctx.progress.print(f"    {line}")

    try:
        converger = Converger(client, options_for(ctx), on_progress=on_progress)
        result = _run_stoppable(ctx, converger)
        ctx.run.record["git_revision"] = applied_revision(client)
    finally:
        client.close()
    data = result.to_dict()
    ctx.run.record["converge"] = data
    ctx.check_stop()
    if not data.get("converged"):
        failures = data.get("failures") or []
        if failures:
            f = failures[0]
            chain = f" (blocks {' → '.join(f['blocks'])})" if f.get("blocks") else ""
            why = (f"nothing changed for {result.stuck_s:.0f}s and every pending object waits on a kind the API "
                   "does not serve, which nothing pending can install: " if result.outcome == "stuck" else "")
            raise NotConverged(f"{why}{f['object']}: {f['reason']}: {f['message']}{chain}")
        pending = result.pending_described(10)
        more = f" (+{len(result.pending) - 10} more)" if len(result.pending) > 10 else ""
        raise NotConverged(f"not converged within {ctx.inv.timeouts.converge:g}s; still pending: {', '.join(pending)}{more}")
    n = len(data.get("objects", []))
    return ok(f"{n} objects ready", objects=n)
