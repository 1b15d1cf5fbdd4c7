"""Read the GitOps repository the way bootstrap will find it: does it, the branch and the path
exist, and what does ``<path>/flux-system/`` hold.

A typo in owner, repository or branch makes real ``flux bootstrap github`` create a new, empty
repository or branch (flux2 v2.4.0 pkg/bootstrap/bootstrap_provider.go ReconcileRepository) and
a new cluster that syncs nothing; preflight refuses that before anything is wiped. Runs ``git``
(ls-remote, then a depth-1 fetch into a temporary directory) with bounded time, through the
runner's ``local`` (logged, and recorded instead of run in a dry run); the token goes in an HTTP
header through git's environment (GIT_CONFIG_*), never argv or a file.
"""
from __future__ import annotations

import base64
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from drtool.errors import DrtoolError
from drtool.flux_system import COMPONENTS_FILE, KUSTOMIZATION_FILE, SYNC_FILE
from drtool.inventory import Inventory
from drtool.secret import Secret

if TYPE_CHECKING:
    from drtool.remote.runner import Runner

# flux2 v2.4.0 cmd/flux/bootstrap_github.go / bootstrap_gitlab.go default --hostname.
PROVIDER_HOSTS = {"github": "github.com", "gitlab": "gitlab.com"}


@dataclass(frozen=True)
class RepoView:
    url: str
    problem: str = ""
    """Why the repository, branch or path cannot be used (empty when all exist)."""
    files: dict[str, str] = field(default_factory=dict)
    """``flux-system/`` files present at the path, by name."""


def repository_url(inv: Inventory) -> str:
    f = inv.flux
    if f.provider in PROVIDER_HOSTS:
        return f"https://{PROVIDER_HOSTS[f.provider]}/{f.owner}/{f.repository}.git"
    return str(f.url)


def git_env(inv: Inventory, environ: dict[str, str]) -> dict[str, str]:
    """The environment for drtool's git reads: no prompts, the inventory's git config, the token
    (in an HTTP header); none of the secret variables the inventory names, the token's included."""
    env = {k: v for k, v in environ.items() if not k.startswith("GIT_CONFIG") and k not in inv.secret_variables}
    env["GIT_TERMINAL_PROMPT"] = "0"
    if inv.flux.git_config_file is not None:
        env["GIT_CONFIG_GLOBAL"] = str(inv.resolve(inv.flux.git_config_file))
        env["GIT_CONFIG_NOSYSTEM"] = "1"
    var = inv.flux.token_variable
    token = environ.get(var or "", "")
    url = repository_url(inv)
    if token and url.startswith("https://"):
        # As flux authenticates its clone: basic auth, the owner (or "git") and the token.
        user = inv.flux.owner if inv.flux.provider == "github" else "git"
        header = "Authorization: Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()
        Secret(token, var or "git-token")
        Secret(header.split(" ", 2)[2], "git-auth")
        env.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0=f"http.{url.rsplit('/', 2)[0]}/.extraHeader",
                   GIT_CONFIG_VALUE_0=header)
    if inv.flux.private_key_file is not None and not url.startswith("http"):
        env["GIT_SSH_COMMAND"] = f"ssh -i {inv.resolve(inv.flux.private_key_file)} -o IdentitiesOnly=yes -o BatchMode=yes"
    return env


def _git(runner: Runner, args: list[str], env: dict[str, str], timeout: float, cwd: str | None = None,
         ) -> tuple[int, str, str]:
    """(exit code, stdout, stdout and stderr) of one bounded git command; output redacted."""
    from drtool.remote.runner import LocalCommandTimedOut

    try:
        res = runner.local(["git", *args], env=env, timeout=timeout, cwd=cwd, step="preflight", check=False)
    except LocalCommandTimedOut:
        return 124, "", f"no answer within {timeout:g}s"
    except DrtoolError as exc:  # git cannot be started
        return 127, "", str(exc).splitlines()[0]
    return res.exit_code, res.stdout, (res.stdout + res.stderr).strip()


def read_flux_system(inv: Inventory, environ: dict[str, str], runner: Runner, timeout: float = 30.0) -> RepoView:
    """Check repository, branch and path, and read ``<path>/flux-system/`` from the branch tip."""
    url = repository_url(inv)
    config = inv.resolve(inv.flux.git_config_file) if inv.flux.git_config_file is not None else None
    if config is not None and not config.is_file():
        # Without it git would go to the provider itself; the inventory asked for something else.
        return RepoView(url, f"flux.git_config_file {config} does not exist")
    env = git_env(inv, dict(environ))
    branch, path = inv.flux.branch, inv.flux.path.removeprefix("./").strip("/")
    code, heads, out = _git(runner, ["ls-remote", "--heads", url, f"refs/heads/{branch}"], env, timeout)
    if code != 0:
        last = out.splitlines()[-1] if out else f"exit {code}"
        return RepoView(url, f"cannot read repository {url}: {last} (bootstrap would create a new, empty repository)")
    if not heads.strip():
        return RepoView(url, f"branch {branch} does not exist in {url} (bootstrap would create it)")
    with tempfile.TemporaryDirectory(prefix="drtool-git-") as tmp:
        for args in (["init", "-q"], ["fetch", "-q", "--depth", "1", url, f"refs/heads/{branch}"]):
            code, _, out = _git(runner, args, env, timeout, cwd=tmp)
            if code != 0:
                return RepoView(url, f"cannot fetch {branch} from {url}: {out.splitlines()[-1] if out else code}")
        code, listed, _ = _git(runner, ["ls-tree", "--name-only", "FETCH_HEAD", f"{path}/"], env, timeout, cwd=tmp)
        if code != 0 or not listed.strip():
            return RepoView(url, f"path {path} does not exist on branch {branch} of {url}")
        files = {}
        for name in (COMPONENTS_FILE, SYNC_FILE, KUSTOMIZATION_FILE):
            code, text, _ = _git(runner, ["show", f"FETCH_HEAD:{path}/flux-system/{name}"], env, timeout, cwd=tmp)
            if code == 0:
                files[name] = text
    return RepoView(url, "", files)


__all__ = ["RepoView", "read_flux_system", "repository_url", "git_env"]
