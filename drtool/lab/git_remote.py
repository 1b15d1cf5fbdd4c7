"""The lab's stand-in for github.com and gitlab.com when drtool itself reads the repository.

The simulated ``flux`` finds the lab repo through lab.json's URL map; drtool's preflight runs real
``git`` against the provider URL. ``LAB/gitconfig`` (the lab inventory's ``flux.git_config_file``)
rewrites every ``https://github.com/``, ``https://gitlab.com/`` and their SSH spellings to
``LAB/gitops/remote/<host>/``, where only the lab's repositories exist (symlinks): a typo in owner or
repository reads "does not appear to be a git repository" there, and nothing leaves the machine.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from drtool.lab.gitops_repo import normalize_repo_url

HOSTS = ("github.com", "gitlab.com")


def write_git_remote(lab_root: Path, url_map: Mapping[str, str]) -> Path:
    """Lay out ``LAB/gitops/remote/`` and write ``LAB/gitconfig``; returns the config's path."""
    remote = lab_root / "gitops" / "remote"
    for url, repo in url_map.items():
        name = normalize_repo_url(url)
        if name.startswith("/") or name.split("/", 1)[0] not in HOSTS:
            continue
        for link in (remote / name, remote / f"{name}.git"):
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(Path(repo).resolve())
    lines = []
    for host in HOSTS:
        lines.append(f'[url "{remote / host}/"]')
        lines += [f"\tinsteadOf = https://{host}/", f"\tinsteadOf = ssh://git@{host}/", f"\tinsteadOf = git@{host}:"]
    config = lab_root / "gitconfig"
    config.write_text("\n".join(lines) + "\n")
    return config
