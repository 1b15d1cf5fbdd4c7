"""What the simulated K3s reads from the lab: ``lab.json`` and the scenario's K3s knobs.

Both are read leniently: a missing or half-written file gives defaults, because the
K3s programs must also run in tests without a lab. The scenario loader proper lives in
``drtool.lab.scenarios``; only the few fields K3s uses are read here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_READY_DELAY = 0.3


@dataclass(frozen=True)
class LabNode:
    name: str
    address: str


@dataclass(frozen=True)
class K3sScenario:
    """The scenario fields that shape K3s behaviour."""

    ready_delay: dict[str, float] = field(default_factory=dict)     # node -> seconds until Ready
    fail_nodes: tuple[str, ...] = ()                                 # nodes whose kubelet never gets Ready
    api_refuse_after_start: float = 0.0                              # seconds the API refuses connections
    api_unavailable_after_start: float = 0.0                         # seconds the API answers 503
    system_pods_delay: float = 0.2                                   # kube-system pods become Ready after
    node_monitor_grace: float = 15.0                                 # no heartbeat for this long -> NotReady
    join_timeout: float = 10.0                                       # agent gives up joining after

    def delay_for(self, node: str) -> float:
        return self.ready_delay.get(node, DEFAULT_READY_DELAY)


@dataclass(frozen=True)
class LabConfig:
    """The parts of ``lab.json`` the K3s programs use."""

    root: Path | None = None
    nodes: tuple[LabNode, ...] = ()
    scenario: K3sScenario = K3sScenario()
    raw: dict[str, Any] = field(default_factory=dict)

    def address_of(self, name: str) -> str:
        for node in self.nodes:
            if node.name == name:
                return node.address
        return ""

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(n.address for n in self.nodes)


def _float(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _seconds(value: Any, default: float) -> float:
    """Numbers, or strings like ``"20s"``/``"1.5s"``/``"2m"``."""
    if isinstance(value, str):
        text = value.strip()
        for suffix, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
            if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
                return float(text[: -len(suffix)]) * factor
    return _float(value, default)


def scenario_from_dict(data: Any) -> K3sScenario:
    """Pick the K3s fields out of a scenario mapping; anything malformed falls back to defaults."""
    if not isinstance(data, dict):
        return K3sScenario()
    nodes = data.get("nodes") if isinstance(data.get("nodes"), dict) else {}
    delays: dict[str, float] = {}
    failing: list[str] = []
    for name, spec in nodes.items():
        if not isinstance(spec, dict):
            continue
        if "ready_delay" in spec:
            delays[str(name)] = _seconds(spec["ready_delay"], DEFAULT_READY_DELAY)
        if spec.get("never_ready") or spec.get("fail"):
            failing.append(str(name))
    api = data.get("api") if isinstance(data.get("api"), dict) else {}
    k3s = data.get("k3s") if isinstance(data.get("k3s"), dict) else {}
    base = K3sScenario()
    return K3sScenario(
        ready_delay=delays,
        fail_nodes=tuple(failing),
        api_refuse_after_start=_seconds(api.get("refuse_after_start"), 0.0),
        api_unavailable_after_start=_seconds(api.get("unavailable_after_start", api.get("503_after_start")), 0.0),
        system_pods_delay=_seconds(k3s.get("system_pods_delay"), base.system_pods_delay),
        node_monitor_grace=_seconds(k3s.get("node_monitor_grace"), base.node_monitor_grace),
        join_timeout=_seconds(k3s.get("join_timeout"), base.join_timeout),
    )


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None


def load_lab_config(lab_dir: str | Path | None) -> LabConfig:
    """Read ``<lab_dir>/lab.json`` and its scenario; defaults for whatever is missing."""
    if not lab_dir:
        return LabConfig()
    root = Path(lab_dir)
    try:
        raw = json.loads((root / "lab.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return LabConfig(root=root)
    if not isinstance(raw, dict):
        return LabConfig(root=root)
    nodes = tuple(
        LabNode(str(n["name"]), str(n["address"]))
        for n in raw.get("nodes") or [] if isinstance(n, dict) and n.get("name") and n.get("address")
    )
    scenario = K3sScenario()
    if raw.get("scenario"):
        scenario = scenario_from_dict(_read_yaml(Path(raw["scenario"])))
    return LabConfig(root=root, nodes=nodes, scenario=scenario, raw=raw)
