"""Session-wide guard: no test reaches a real Git host.

drtool's preflight reads the GitOps repository with real ``git`` at the provider's URL; the lab
inventory rewrites those URLs to local repositories (``flux.git_config_file``). A test inventory
without that rewrite would make ``git`` look up github.com. Git also reads
``$XDG_CONFIG_HOME/git/config``, which drtool passes through, so the session points every
provider URL at a directory that does not exist: such a test fails with "does not appear to be a
git repository" instead of leaving the machine.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

_HOSTS = ("github.com", "gitlab.com", "bitbucket.org")


def _offline_git_config() -> None:
    home = Path(tempfile.mkdtemp(prefix="drtool-test-xdg-"))
    atexit.register(shutil.rmtree, home, True)
    (home / "git").mkdir()
    lines = []
    for host in _HOSTS:
        lines.append(f'[url "{home}/offline/{host}/"]')
        lines += [f"\tinsteadOf = https://{host}/", f"\tinsteadOf = ssh://git@{host}/", f"\tinsteadOf = git@{host}:"]
    (home / "git" / "config").write_text("\n".join(lines) + "\n")
    os.environ["XDG_CONFIG_HOME"] = str(home)


_offline_git_config()
