"""Flux bootstrap with the pinned CLI; transient failures retried with backoff, permanent ones reported.

Bootstrap only waits for the flux-system GitRepository and Kustomization; the
converge phase waits for everything else.
"""
from __future__ import annotations

from drtool.errors import PermanentError, RetryableError
from drtool.flux import FLUX_TOKEN_VARIABLE, bootstrap_argv, bootstrap_env, is_permanent
from drtool.phases.context import Context
from drtool.phases.result import PhaseResult, ok
from drtool.phases.preflight import flux_cli
from drtool.remote.runner import LocalCommandTimedOut
from drtool.secret import Secret, redact

NAME = "bootstrap"
ATTEMPTS = 3


# flux bootstrap bounds its whole run by --timeout (flux2 v2.4.0 cmd/flux/bootstrap_github.go:
# context.WithTimeout(rootArgs.timeout)) and then prints why it stopped; drtool's own bound leaves
# it this long past --timeout to do so, so the operator sees flux's reason, not a bare timeout.
def exit_grace(flux_timeout: float) -> float:
    """Seconds past flux's --timeout that drtool waits for flux to print its reason and exit."""
    return min(30.0, max(5.0, flux_timeout * 0.1))
# kustomize-controller v1.4.0 Ready=False reasons that a re-run of bootstrap cannot change: the
# repository's content does not build or apply (e.g. "dry-run failed: no matches for kind").
_PERMANENT_READY_REASONS = ("ReconciliationFailed", "BuildFailed", "ArtifactFailed")


def flux_system_status(ctx: Context) -> tuple[str, str, str] | None:
    """(status, reason, message) of the flux-system Kustomization's Ready condition, or None when it
    cannot be read (absent, API down): what real bootstrap reports when it gives up
    (flux2 v2.4.0 pkg/bootstrap/bootstrap_plain_git.go ReportKustomizationHealth)."""
    from drtool.kube.client import KubeTransport

    try:
        client = ctx.api_client()
    except Exception:  # best effort: the bootstrap error stands on its own
        return None
    try:
        transport = KubeTransport(client)
        transport.timeout = (3, 5)
        obj = transport.get_json("/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/flux-system")
    except Exception:
        return None
    finally:
        client.close()
    for c in (obj.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return str(c.get("status", "")), str(c.get("reason", "")), redact(str(c.get("message", "")))
    return None


def _attempt(ctx: Context, argv: list[str], env: dict[str, str], timeout: float) -> str:
    ctx.check_stop()
    code: int | None
    try:
        # Through the runner like every command: logged (commands.log), redacted, recordable in tests.
        res = ctx.runner.local(argv, env=env, timeout=timeout, step=NAME, check=False)
        out, code = res.stdout + res.stderr, res.exit_code
    except LocalCommandTimedOut as exc:
        # What flux printed until then is kept: it says how far it got.
        out, code = exc.output, None
    with (ctx.run.dir / "bootstrap.log").open("a") as log:
        log.write(out + ("\n" if code is not None else f"\n[drtool] flux bootstrap stopped after {timeout:g}s\n"))
    if code == 0:
        return out
    tail = "\n".join(out.strip().splitlines()[-8:])
    ready = flux_system_status(ctx)
    why = ""
    if ready is not None and ready[0] != "True":
        why = f"\nKustomization flux-system/flux-system Ready={ready[0]} {ready[1]}: {ready[2]}"
    head = (f"flux bootstrap did not finish within {timeout:g}s (see bootstrap.log)" if code is None
            else f"flux bootstrap failed (exit {code})")
    if is_permanent(out) or (ready is not None and ready[0] == "False" and ready[1] in _PERMANENT_READY_REASONS):
        raise PermanentError(f"{head}, not retried:\n{tail}{why}")
    raise RetryableError(f"{head}:\n{tail}{why}")


def run(ctx: Context) -> PhaseResult:
    from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, stop_after_delay, wait_exponential

    cli = flux_cli(ctx.inv)
    try:
        env = bootstrap_env(ctx.inv, dict(ctx.environ))
    except KeyError as exc:
        raise PermanentError(f"{exc.args[0]} is not set: flux bootstrap {ctx.inv.flux.provider} needs it") from None
    env["KUBECONFIG"] = str(ctx.ensure_kubeconfig())
    if ctx.inv.flux.token_variable:
        Secret(env[FLUX_TOKEN_VARIABLE[ctx.inv.flux.provider]], ctx.inv.flux.token_variable)
    argv = bootstrap_argv(ctx.inv, cli, str(ctx.kubeconfig_path))
    per_attempt = float(ctx.inv.flux.timeout) + exit_grace(float(ctx.inv.flux.timeout))
    budget = max(ctx.deadline("bootstrap"), per_attempt)
    tries = 0
    with ctx.step("local", "flux bootstrap"):
        for attempt in Retrying(stop=stop_after_attempt(ATTEMPTS) | stop_after_delay(budget),
                                wait=wait_exponential(multiplier=1, min=1, max=10),
                                retry=retry_if_exception_type(RetryableError), reraise=True):
            with attempt:
                tries += 1
                if tries > 1:
                    ctx.progress.print(f"    retrying flux bootstrap (attempt {tries}/{ATTEMPTS})")
                _attempt(ctx, argv, env, timeout=per_attempt)
    ctx.run.record["versions"]["flux"] = ctx.inv.flux.version
    return ok(f"flux {ctx.inv.flux.version} bootstrapped {ctx.inv.flux.provider} path {ctx.inv.flux.path}"
              + (f" after {tries} attempts" if tries > 1 else ""), attempts=tries)

