"""What the simulated ``flux`` CLI knows about the lab: lab.json, the scenario, its state.

The lab directory comes from ``DRTOOL_LAB`` or from the path ``flux_program`` embeds.
State that must survive between CLI runs (how many bootstraps were attempted, for the
scenario's ``bootstrap_fail_times``) lives in ``LAB/state/flux.json``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drtool.errors import BadInput
from drtool.lab.scenarios import FluxFaults, load_scenario


@dataclass(frozen=True)
class LabEnv:
    root: Path | None
    url_map: dict[str, str] = field(default_factory=dict)
    flux: FluxFaults = FluxFaults()

    @property
    def state_file(self) -> Path | None:
        return self.root / "state" / "flux.json" if self.root else None

    def bump(self, counter: str) -> int:
        """Increment a persisted counter; returns its value before the increment."""
        path = self.state_file
        if path is None:
            return 0
        try:
            state: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            state = {}
        before = int(state.get(counter, 0))
        state[counter] = before + 1
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, path)
        return before


def load_lab_env(embedded: str | None) -> LabEnv:
    """Read the lab's lab.json and scenario; an absent lab gives an empty environment.

    Raises ``BadInput`` for an invalid scenario file.
    """
    where = os.environ.get("DRTOOL_LAB") or embedded
    if not where:
        return LabEnv(None)
    root = Path(where)
    try:
        config = json.loads((root / "lab.json").read_text())
    except (OSError, ValueError):
        return LabEnv(root)
    url_map = dict(((config.get("gitops") or {}).get("url_map")) or {})
    faults = FluxFaults()
    if config.get("scenario"):
        faults = load_scenario(config["scenario"]).flux
    return LabEnv(root, url_map, faults)


__all__ = ["LabEnv", "load_lab_env", "BadInput"]
