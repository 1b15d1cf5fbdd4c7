"""The lab's GitOps repository: a real local Git repo playing the operator's GitHub repo.

``prepare_gitops`` builds it under ``LAB/gitops/`` from the packaged fixture
(``drtool/lab/gitops/``, modelled on the reference homelab) or from an operator's own
repo or directory, and returns the ``gitops`` section of ``lab.json``: the URL map the
simulated ``flux`` CLI and source-controller use to find the repo behind
``https://github.com/<owner>/<repo>`` (and its ``ssh://`` and ``.git`` spellings).
Nothing here talks to a network: Git runs on local paths only.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Mapping

from drtool.errors import BadInput

DEFAULT_OWNER = "lab"
DEFAULT_REPOSITORY = "homelab-gitops"
DEFAULT_BRANCH = "main"
DEFAULT_CLUSTER_PATH = "clusters/homelab"
GIT_IDENTITY = ("-c", "user.name=drtool lab", "-c", "user.email=lab@drtool.invalid",
                "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main")
GIT_TIMEOUT = 30.0


class GitError(Exception):
    """A git command failed; the message has git's own error text."""


def git(repo: Path | str, *args: str, input_bytes: bytes | None = None) -> str:
    """Run ``git -C repo args`` with the lab identity; returns stdout, raises ``GitError``."""
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", LC_ALL="C")
    env.pop("GIT_DIR", None)
    try:
        proc = subprocess.run(["git", *GIT_IDENTITY, "-C", str(repo), *args], input=input_bytes,
                              capture_output=True, timeout=GIT_TIMEOUT, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(f"git {' '.join(args)}: {exc}") from exc
    if proc.returncode != 0:
        raise GitError(proc.stderr.decode(errors="replace").strip() or f"git {args[0]} exited {proc.returncode}")
    return proc.stdout.decode(errors="replace")


def fixture_dir() -> Path:
    """The packaged lab GitOps content."""
    return Path(__file__).resolve().parent / "gitops"


def normalize_repo_url(url: str) -> str:
    """Canonical form of a Git URL so spellings of one repo compare equal.

    ``https://github.com/Lab/Repo.git/``, ``ssh://git@github.com/lab/repo`` and
    ``git@github.com:lab/repo.git`` all become ``github.com/lab/repo``; local paths
    (``file://`` or plain) become their absolute path.
    """
    url = url.strip()
    scp = re.match(r"^[\w.-]+@([\w.-]+):(?!//)(.+)$", url)
    if scp:
        host, path = scp.group(1), scp.group(2)
    elif "://" in url:
        scheme, rest = url.split("://", 1)
        if scheme == "file":
            return str(Path(rest).resolve())
        hostpart, _, path = rest.partition("/")
        host = hostpart.rsplit("@", 1)[-1].split(":")[0]
    else:
        return str(Path(url).resolve())
    path = path.strip("/")
    if path.endswith(".git"):
        path = path[:-4]
    return f"{host.lower()}/{path.lower()}"


def resolve_repo(url_map: Mapping[str, str], url: str) -> Path | None:
    """The local repo behind ``url`` according to ``url_map``, or ``None`` if unknown."""
    wanted = normalize_repo_url(url)
    for known, path in url_map.items():
        if normalize_repo_url(known) == wanted:
            return Path(path)
    return None


def provider_urls(owner: str, repository: str) -> list[str]:
    """How Flux spells the repo on GitHub and GitLab: HTTPS (token auth) and SSH (deploy key)."""
    return [f"{scheme}{host}/{owner}/{repository}" for host in ("github.com", "gitlab.com")
            for scheme in ("https://", "ssh://git@")]


def _copy_tree(src: Path, dest: Path) -> None:
    shutil.copytree(src, dest, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".git", "__pycache__", "*.pyc"))


def prepare_gitops(lab_dir: Path | str, source: Path | str | None = None, path: str | None = None, *,
                   owner: str = DEFAULT_OWNER, repository: str = DEFAULT_REPOSITORY,
                   branch: str = DEFAULT_BRANCH) -> dict[str, Any]:
    """Create ``LAB/gitops/<repository>`` as a real Git repo and return lab.json's ``gitops``.

    ``source`` is the operator's Git repo (cloned, their copy is never modified) or a
    plain directory (copied and committed); ``None`` uses the packaged fixture.
    ``path`` is the cluster path Flux will watch (default ``clusters/homelab``); it must
    exist in the content, else ``BadInput``. An existing lab repo is replaced.

    Returns ``{"url_map": {url: repo_path, ...}, "default": repo_path, "branch": ...,
    "path": ..., "owner": ..., "repository": ...}``.
    """
    lab_dir = Path(lab_dir).resolve()
    cluster_path = (path or DEFAULT_CLUSTER_PATH).strip("/").removeprefix("./")
    dest = lab_dir / "gitops" / repository
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    src = Path(source).expanduser().resolve() if source is not None else fixture_dir()
    if not src.is_dir():
        raise BadInput(str(src), "", "GitOps source is not a directory")
    try:
        if (src / ".git").exists():
            git(dest.parent, "clone", "--quiet", "--no-hardlinks", str(src), str(dest))
            current = git(dest, "rev-parse", "--abbrev-ref", "HEAD").strip()
            if current != branch:
                git(dest, "checkout", "--quiet", "-B", branch)
        else:
            dest.mkdir()
            _copy_tree(src, dest)
            git(dest, "init", "--quiet", "-b", branch)
            git(dest, "add", "-A")
            git(dest, "commit", "--quiet", "-m", "Initial GitOps content for the lab cluster")
        # Bootstrap commits into this repo the way Flux pushes to GitHub: allow it.
        git(dest, "config", "receive.denyCurrentBranch", "updateInstead")
    except GitError as exc:
        raise BadInput(str(src), "", f"cannot create the lab GitOps repo: {exc}") from exc
    if not (dest / cluster_path).is_dir():
        raise BadInput(str(src), "path", f"cluster path {cluster_path!r} does not exist in the GitOps content")
    url_map = {url: str(dest) for url in provider_urls(owner, repository)}
    return {"url_map": url_map, "default": str(dest), "branch": branch, "path": cluster_path,
            "owner": owner, "repository": repository}
