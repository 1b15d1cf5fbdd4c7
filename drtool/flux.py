"""The flux CLI: the bootstrap command built from the inventory, and its failures classified.

Pure code: the bootstrap phase runs what this builds. The Git token travels only
in the environment variable the provider's flux reads (GITHUB_TOKEN, GITLAB_TOKEN,
GIT_PASSWORD), whatever variable the operator keeps it in.
"""
from __future__ import annotations

import re

from drtool.inventory import FLUX_DEFAULT_COMPONENTS, Inventory

# The only variable each `flux bootstrap` provider reads its token from (fluxcd/flux2 v2.4.0
# cmd/flux/bootstrap_github.go ghTokenEnvVar, bootstrap_gitlab.go glTokenEnvVar,
# bootstrap_git.go gitPasswordEnvVar). Without it flux prompts on stdin and, with no
# terminal, fails with "could not read token".
FLUX_TOKEN_VARIABLE = {"github": "GITHUB_TOKEN", "gitlab": "GITLAB_TOKEN", "git": "GIT_PASSWORD"}

# Output that retrying will not fix: bad credentials, missing repository, bad flags, no token.
_PERMANENT = re.compile(
    r"(401|403|bad credentials|unauthorized|authentication failed|repository not found|404 not found|"
    r"could not read token|environment variable not set|unknown flag|invalid argument|permission denied)",
    re.IGNORECASE,
)
# GitHub answers an exhausted rate limit with 403 (go-github RateLimitError / AbuseRateLimitError:
# "403 API rate limit exceeded ...", "403 You have exceeded a secondary rate limit"), GitLab with
# 429: both pass once the limit resets, so they are retried despite the 403.
_TRANSIENT = re.compile(r"(rate limit|429 too many requests)", re.IGNORECASE)


def bootstrap_argv(inv: Inventory, cli: str, kubeconfig: str) -> list[str]:
    f = inv.flux
    argv = [cli, "bootstrap", f.provider]
    if f.provider in ("github", "gitlab"):
        argv += [f"--owner={f.owner}", f"--repository={f.repository}"]
        if f.personal:
            argv.append("--personal")
    else:
        argv.append(f"--url={f.url}")
        if f.private_key_file is not None:
            argv.append(f"--private-key-file={inv.resolve(f.private_key_file)}")
        argv.append("--silent")
    argv += [f"--branch={f.branch}", f"--path={f.path}", f"--timeout={int(f.timeout)}s",
             f"--kubeconfig={kubeconfig}", f"--context={inv.cluster.context_name}"]
    return argv + component_flags(inv)


def component_flags(inv: Inventory) -> list[str]:
    """The flags gotk-components.yaml is generated from, where they differ from flux's defaults
    (flux2 v2.4.0 cmd/flux/bootstrap.go): bootstrap regenerates the file from these alone."""
    f = inv.flux
    flags = []
    if f.components != FLUX_DEFAULT_COMPONENTS:
        flags.append(f"--components={','.join(f.components)}")
    if f.components_extra:
        flags.append(f"--components-extra={','.join(f.components_extra)}")
    if f.toleration_keys:
        flags.append(f"--toleration-keys={','.join(f.toleration_keys)}")
    if not f.network_policy:
        flags.append("--network-policy=false")
    if not f.watch_all_namespaces:
        flags.append("--watch-all-namespaces=false")
    if f.cluster_domain != "cluster.local":
        flags.append(f"--cluster-domain={f.cluster_domain}")
    if f.registry != "ghcr.io/fluxcd":
        flags.append(f"--registry={f.registry}")
    if f.log_level != "info":
        flags.append(f"--log-level={f.log_level}")
    if f.image_pull_secret:
        flags.append(f"--image-pull-secret={f.image_pull_secret}")
    return flags


def is_permanent(output: str) -> bool:
    if _TRANSIENT.search(output):
        return False
    return bool(_PERMANENT.search(output))


def bootstrap_env(inv: Inventory, environ: dict[str, str]) -> dict[str, str]:
    """The environment for `flux bootstrap`: drtool's own, without the other secrets the inventory
    names (the K3s token, webhook URLs: flux needs none of them), and the token (read from
    ``flux.token_env``) under the one name this provider's flux reads. Raises KeyError naming the
    variable when it is unset."""
    var = inv.flux.token_variable
    env = {k: v for k, v in environ.items() if k == var or k not in inv.secret_variables}
    if not var:
        return env
    token = environ.get(var, "")
    if not token:
        raise KeyError(var)
    env[FLUX_TOKEN_VARIABLE[inv.flux.provider]] = token
    return env


def parse_version(output: str) -> str | None:
    m = re.search(r"flux:\s*(v?\d+\.\d+\.\d+)", output)
    if not m:
        return None
    return m.group(1) if m.group(1).startswith("v") else "v" + m.group(1)
