"""The simulated Flux CLI the lab puts at ``LAB/bin/flux``.

``flux_program(lab_dir, python)`` gives the text of that program: a Python script that
runs ``drtool.lab.flux.cli.main`` with the lab directory embedded, so it finds
``lab.json`` (the Git URL map, the scenario) without any environment; ``DRTOOL_LAB``
overrides it. drtool calls it exactly as it calls the real ``flux`` binary.
"""
from __future__ import annotations

import os
from pathlib import Path

from .manifests import DEFAULT_VERSION

__all__ = ["flux_program", "DEFAULT_VERSION", "main"]

_REPO = Path(__file__).resolve().parents[3]


def flux_program(lab_dir: str | os.PathLike, python: str, version: str = DEFAULT_VERSION) -> str:
    """Text of ``LAB/bin/flux`` (write it with mode 0755); ``version`` is what it reports."""
    return (
        f"#!{python}\n"
        "# Lab build of the flux CLI: runs drtool.lab.flux from the drtool checkout.\n"
        "import sys\n"
        f"sys.path.insert(0, {str(_REPO)!r})\n"
        "from drtool.lab.flux.cli import main\n"
        f"sys.exit(main(sys.argv[1:], lab_dir={str(Path(lab_dir).resolve())!r}, version={version!r}))\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m drtool.lab.flux``."""
    from .cli import main as cli_main
    return cli_main(argv)
