"""Step-by-step runbooks: typed YAML files in ``runbooks/``, run, resumed, rendered and linted.

``find(name)`` locates a runbook by name (in ``runbooks_dir()``) or by path;
``drtool.runbooks.executor.RunbookExecutor`` runs one; ``render.render_markdown``
documents one; ``validate.lint_files`` checks them all.
"""
from __future__ import annotations

import os
from pathlib import Path

from drtool.errors import BadInput
from drtool.runbooks.model import Runbook, load_runbook

_REPO_RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"


def runbooks_dir() -> Path:
    """``$DRTOOL_RUNBOOKS_DIR``, else ``./runbooks`` when it exists, else the shipped ones."""
    env = os.environ.get("DRTOOL_RUNBOOKS_DIR")
    if env:
        return Path(env)
    local = Path("runbooks")
    return local if local.is_dir() else _REPO_RUNBOOKS


def runbook_files(directory: Path | None = None) -> list[Path]:
    d = directory or runbooks_dir()
    return sorted([*d.glob("*.yaml"), *d.glob("*.yml")])


def find(name: str) -> Runbook:
    """Load a runbook by name (``full-rebuild``) or by path (``runbooks/full-rebuild.yaml``)."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or os.sep in name:
        return load_runbook(path)
    for candidate in (runbooks_dir() / f"{name}.yaml", runbooks_dir() / f"{name}.yml"):
        if candidate.is_file():
            return load_runbook(candidate)
    known = ", ".join(p.stem for p in runbook_files()) or "none"
    raise BadInput("command line", "NAME", f"no runbook {name!r} in {runbooks_dir()} (runbooks: {known})")


__all__ = ["Runbook", "find", "load_runbook", "runbook_files", "runbooks_dir"]
