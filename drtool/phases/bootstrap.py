"""Flux bootstrap with the pinned CLI; transient failures retried with backoff, permanent ones reported.

Bootstrap only waits for the flux-system GitRepository and Kustomization; the
converge phase waits for everything else.
"""
from __future__ import annotations

import subprocess
import time

from drtool.errors import PermanentError, RetryableError
from drtool.flux import FLUX_TOKEN_VARIABLE, bootstrap_argv, bootstrap_env, is_permanent
from drtool.phases.context import Context
from drtool.phases.preflight import flux_cli
from drtool.secret import Secret, redact

NAME = "bootstrap"
ATTEMPTS = 3


def _attempt(ctx: Context, argv: list[str], env: dict[str, str], timeout: float) -> str:
    ctx.check_stop()
    start = time.time()
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise RetryableError(f"flux bootstrap timed out after {timeout:g}s") from None
    except OSError as exc:
        raise PermanentError(f"cannot run {argv[0]}: {exc.strerror}") from None
    out = redact((proc.stdout or "") + (proc.stderr or ""))
    ctx.runner.log.write(node="local", step=NAME, command=redact(" ".join(argv)), duration=round(time.time() - start, 3), exit_code=proc.returncode)
    (ctx.run.dir / "bootstrap.log").open("a").write(out + "\n")
    if proc.returncode == 0:
        return out
    tail = "\n".join(out.strip().splitlines()[-8:])
    if is_permanent(out):
        raise PermanentError(f"flux bootstrap failed (not retried):\n{tail}")
    raise RetryableError(f"flux bootstrap failed (exit {proc.returncode}):\n{tail}")


def run(ctx: Context) -> str:
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
    budget = ctx.deadline("bootstrap")
    tries = 0
    with ctx.step("local", "flux bootstrap"):
        for attempt in Retrying(stop=stop_after_attempt(ATTEMPTS) | stop_after_delay(budget),
                                wait=wait_exponential(multiplier=1, min=1, max=10),
                                retry=retry_if_exception_type(RetryableError), reraise=True):
            with attempt:
                tries += 1
                if tries > 1:
                    ctx.progress.print(f"    retrying flux bootstrap (attempt {tries}/{ATTEMPTS})")
                _attempt(ctx, argv, env, timeout=budget)
    ctx.run.record["versions"]["flux"] = ctx.inv.flux.version
    return f"flux {ctx.inv.flux.version} bootstrapped {ctx.inv.flux.provider} path {ctx.inv.flux.path}" + (f" after {tries} attempts" if tries > 1 else "")


def plan(ctx: Context) -> list[tuple[str, str]]:
    var = ctx.inv.flux.token_variable and FLUX_TOKEN_VARIABLE[ctx.inv.flux.provider]
    argv = bootstrap_argv(ctx.inv, flux_cli(ctx.inv), "runs/<id>/kubeconfig")
    return [("local", (f"{var}=*** " if var else "") + " ".join(argv))]
