"""The flux CLI: the bootstrap command built from the inventory, and its failures classified.

Pure code: the bootstrap phase runs what this builds. The Git token travels only
in the environment variable the provider reads (GITHUB_TOKEN, GITLAB_TOKEN).
"""
from __future__ import annotations

import re

from drtool.inventory import Inventory

# Output that retrying will not fix: bad credentials, missing repository, bad flags.
_PERMANENT = re.compile(
    r"(401|403|bad credentials|unauthorized|authentication failed|repository not found|404 not found|"
    r"environment variable not set|unknown flag|invalid argument|permission denied)",
    re.IGNORECASE,
)


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
    return argv


def is_permanent(output: str) -> bool:
    return bool(_PERMANENT.search(output))


def parse_version(output: str) -> str | None:
    m = re.search(r"flux:\s*(v?\d+\.\d+\.\d+)", output)
    if not m:
        return None
    return m.group(1) if m.group(1).startswith("v") else "v" + m.group(1)
