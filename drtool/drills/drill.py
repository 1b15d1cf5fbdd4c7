"""A drill: the full rebuild, unattended, then post-checks, judged against the objective.

Allowed only where the inventory says ``drill: enabled: true`` (so a stray timer
never wipes production). Before the wipe the protected paths are checksummed;
after convergence the post-checks verify HTTP endpoints, HelmRelease versions and
that the protected data is byte-identical. Recovery time runs until the post-checks
pass. The drill's outputs (history regressions, JUnit, textfile, notifications)
are published afterwards and never change the verdict.
"""
from __future__ import annotations

import json
import time

from drtool.errors import DrtoolError, Refused
from drtool.inventory import Inventory, Node
from drtool.phases.context import Context
from drtool.phases.result import PhaseResult, ok, skipped
from drtool.remote.runner import q


def require_enabled(inv: Inventory) -> None:
    if not inv.drill.enabled:
        raise Refused(f"{inv.path}: drill.enabled is not true: drills wipe the cluster and run only where the inventory allows it")


def digest_command(paths: tuple[str, ...]) -> str:
    """sha256 of every file under the paths, sorted, one ``<sha>  <path>`` line each."""
    quoted = " ".join(q(p) for p in paths)
    return f"for p in {quoted}; do [ -e \"$p\" ] && find \"$p\" -type f -print0; done | sort -z | xargs -0 -r sha256sum"


def protected_digests(ctx: Context) -> dict[str, str]:
    nodes = [n for n in ctx.inv.nodes if n.protected_paths]

    def one(node: Node) -> str:
        return ctx.runner.run(node, digest_command(node.protected_paths), sudo=True, step="checksum").stdout

    results = ctx.runner.fan_out(nodes, one).raise_on_failure("checksumming protected paths")
    return {name: str(out) for name, out in results.items()}


class ProtectSnapshot:
    """Checksums of the protected paths before anything is wiped."""

    NAME = "protect_snapshot"

    @staticmethod
    def run(ctx: Context) -> PhaseResult:
        if not ctx.inv.drill.verify_protected:
            return skipped("skipped (drill.verify_protected is false)")
        digests = protected_digests(ctx)
        ctx.state["protected_before"] = digests
        files = sum(len(v.splitlines()) for v in digests.values())
        return ok(f"{files} protected file(s) checksummed on {len(digests)} node(s)", files=files)


def _http_check(check, ctx: Context) -> tuple[bool, str]:
    last = ""
    for attempt in range(check.retries + 1):
        ctx.check_stop()
        status, why = ctx.runner.http_status(check.url, timeout=check.timeout, step="post_checks")
        if status == check.status:
            return True, f"HTTP {status} after {attempt + 1} attempt(s)"
        last = f"HTTP {status}, expected {check.status}" if status is not None else why
        if attempt < check.retries:
            ctx.sleep(check.delay)
    return False, f"{last} after {check.retries + 1} attempt(s)"


def _helm_versions(ctx: Context) -> list[dict]:
    from drtool.kube.client import KubeTransport

    wanted = [h for h in ctx.inv.expectations.helmreleases if h.version]
    if not wanted:
        return []
    client = ctx.api_client()
    try:
        transport = KubeTransport(client)
        items = transport.get_json("/apis/helm.toolkit.fluxcd.io/v2/helmreleases").get("items", [])
    finally:
        client.close()
    from drtool.kube.readiness import helmrelease_chart_version

    have = {(o["metadata"]["namespace"], o["metadata"]["name"]): helmrelease_chart_version(o) for o in items}
    out = []
    for h in wanted:
        got = have.get((h.namespace, h.name))
        # Charts are versioned "v1.4.6" or "1.4.6" alike (Helm stores the version without the v).
        same = got is not None and got.lstrip("v") == (h.version or "").lstrip("v")
        out.append({"name": f"helmrelease {h.namespace}/{h.name}", "ok": same,
                    "message": f"chart {got or 'missing'}" + ("" if same else f", expected {h.version}")})
    return out


class PostChecks:
    """After convergence: HTTP endpoints, HelmRelease versions, protected data unchanged."""

    NAME = "post_checks"

    @staticmethod
    def run(ctx: Context) -> PhaseResult:
        checks: list[dict] = []
        for check in ctx.inv.drill.http_checks:
            t0 = time.monotonic()
            passed, message = _http_check(check, ctx)
            checks.append({"name": f"http {check.name}", "ok": passed, "message": message, "duration_s": round(time.monotonic() - t0, 3)})
        t0 = time.monotonic()
        for c in _helm_versions(ctx):
            checks.append({**c, "duration_s": round(time.monotonic() - t0, 3)})
        before = ctx.state.get("protected_before")
        if before is not None:
            t0 = time.monotonic()
            after = protected_digests(ctx)
            for node, digest in before.items():
                same = after.get(node) == digest
                changed = sorted(set(digest.splitlines()) ^ set(after.get(node, "").splitlines()))
                checks.append({"name": f"protected data {node}", "ok": same, "duration_s": round(time.monotonic() - t0, 3),
                               "message": f"{len(digest.splitlines())} file(s) unchanged" if same else f"changed: {', '.join(l.split('  ', 1)[-1] for l in changed[:5])}"})
        ctx.run.record["post_checks"] = checks
        failed = [c for c in checks if not c["ok"]]
        if failed:
            raise DrtoolError("post-checks failed: " + "; ".join(f"{c['name']}: {c['message']}" for c in failed))
        return ok(f"{len(checks)} post-check(s) passed", checks=len(checks))


def drill_phases() -> list:
    from drtool.pipeline import PHASES

    return [PHASES[0], ProtectSnapshot, *PHASES[1:], PostChecks]


def webhooks(inv: Inventory, environ=None) -> list:
    """The inventory's webhooks ready to send, URLs from ``url_env`` read now; raises
    ``BadInput`` naming the field when a variable is unset or holds no http(s) URL, so a
    drill finds out before the wipe rather than after it."""
    import os

    from drtool.drills.notify import load_webhooks
    from drtool.errors import BadInput
    from drtool.inventory import http_url

    env = os.environ if environ is None else environ
    items = []
    for i, h in enumerate(inv.drill.notify):
        url = h.url
        if h.url_env is not None:
            url = env.get(h.url_env, "")
            if not url:
                raise BadInput(str(inv.path), f"drill.notify[{i}].url_env", f"environment variable {h.url_env} is not set")
            try:
                http_url(url)
            except ValueError:
                raise BadInput(str(inv.path), f"drill.notify[{i}].url_env",
                               f"environment variable {h.url_env} does not hold an http:// or https:// URL") from None
        # The inventory names the per-request bound ``timeout``; the notifier calls it ``timeout_s``.
        items.append({**h.model_dump(exclude={"timeout", "url_env"}), "url": url, "timeout_s": h.timeout})
    return load_webhooks(items, f"{inv.path}: drill.notify")


def publish(inv: Inventory, run_dir, junit: str | None, textfile_dir: str | None, history_html: str | None,
            hooks: list | None = None):
    """Publish the drill's outputs from its report.json; returns DrillOutputs (never raises)."""
    from drtool.drills import publish_drill
    from drtool.run import runs_dir

    report = json.loads((run_dir / "report.json").read_text())
    if hooks is None:
        hooks = webhooks(inv)
    tf_dir = textfile_dir or (str(inv.resolve(inv.drill.textfile_dir)) if inv.drill.textfile_dir else None)
    outputs = publish_drill(report, runs_dir(), margin=inv.drill.regression_margin, junit_path=junit or run_dir / "junit.xml",
                            textfile_dir=tf_dir, history_html_path=history_html or run_dir / "history.html", webhooks=hooks)
    # The GitOps check's findings travel with the outputs: what this drill proved Git alone cannot rebuild.
    (run_dir / "drill-outputs.json").write_text(json.dumps({**outputs.to_dict(),
                                                             "gitops_check": report.get("gitops_check")}, indent=2))
    return report, outputs
