"""What the simulated K3s reads from the lab: ``lab.json`` and the scenario's K3s knobs.

Both are read leniently: a missing or half-written file gives defaults, because the
K3s programs must also run in tests without a lab. The scenario loader proper lives in
``drtool.lab.scenarios``; only the few fields K3s uses are read here.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .rootfs import hostname

if TYPE_CHECKING:
    from drtool.lab.scenarios.costs import ImageCosts

# The cost model is a pydantic model (~0.2 s to import): loaded only when a scenario is read,
# not by the short-lived programs that only need lab.json (`k3s lab-fault`, `k3s kubectl`).


def _no_costs() -> ImageCosts:
    from drtool.lab.scenarios.costs import ImageCosts
    return ImageCosts()

DEFAULT_READY_DELAY = 0.3


@dataclass(frozen=True)
class LabNode:
    name: str
    address: str


@dataclass(frozen=True)
class K3sScenario:
    """The scenario fields that shape K3s behaviour (schema: ``drtool.lab.scenarios.Scenario``)."""

    default_ready_delay: float = DEFAULT_READY_DELAY                 # defaults.node_ready
    ready_delay: dict[str, float] = field(default_factory=dict)     # nodes.<name>.ready_delay
    never_ready: tuple[str, ...] = ()                                # nodes.<name>.never_ready
    api_refuse_after_start: float = 0.0                              # api.refuse_after_start
    api_503_window: tuple[float, float] | None = None                # api.http_503 (start, duration)
    api_expire_watch_at: float | None = None                         # api.expire_watch_at
    images: ImageCosts = field(default_factory=_no_costs)            # images (the cost model)
    time_scale: float = 0.05                                         # time_scale
    # Not scenario fields: timings of the simulation itself, overridable by environment for tests.
    system_pods_delay: float = 0.2                                   # kube-system pods Ready after
    node_monitor_grace: float = 15.0                                 # no heartbeat this long -> Unknown
    join_timeout: float = 10.0                                       # agent gives up joining after

    def delay_for(self, node: str) -> float:
        return self.ready_delay.get(node, self.default_ready_delay)


@dataclass(frozen=True)
class LabConfig:
    """The parts of ``lab.json`` the K3s programs use."""

    root: Path | None = None
    nodes: tuple[LabNode, ...] = ()
    scenario: K3sScenario = field(default_factory=K3sScenario)
    raw: dict[str, Any] = field(default_factory=dict)

    def address_of(self, name: str) -> str:
        for node in self.nodes:
            if node.name == name:
                return node.address
        return ""

    def own_address(self, node_name: str) -> str:
        """The address of the lab node this program runs on, whatever ``--node-name`` says.

        A real K3s server listens on every interface (``--bind-address`` default 0.0.0.0) and
        takes its node IP from the host, not from its node name; lab nodes share loopback, so
        each listens on its own address, found by the hostname node-init gives the node's
        namespace. Outside a lab node (tests), the node name is the fallback.
        """
        return self.address_of(hostname()) or self.address_of(node_name)

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


def scenario_from_dict(data: Any, env: dict[str, str] | None = None) -> K3sScenario:
    """Pick the K3s fields out of a scenario mapping; anything malformed falls back to defaults."""
    env = os.environ if env is None else env
    base = K3sScenario()
    timing = dict(
        system_pods_delay=_seconds(env.get("LAB_K3S_SYSTEM_PODS_DELAY"), base.system_pods_delay),
        node_monitor_grace=_seconds(env.get("LAB_K3S_NODE_MONITOR_GRACE"), base.node_monitor_grace),
        join_timeout=_seconds(env.get("LAB_K3S_JOIN_TIMEOUT"), base.join_timeout),
    )
    if not isinstance(data, dict):
        return K3sScenario(**timing)
    defaults = data.get("defaults") if isinstance(data.get("defaults"), dict) else {}
    nodes = data.get("nodes") if isinstance(data.get("nodes"), dict) else {}
    delays: dict[str, float] = {}
    never: list[str] = []
    for name, spec in nodes.items():
        if not isinstance(spec, dict):
            continue
        if spec.get("ready_delay") is not None:
            delays[str(name)] = _seconds(spec["ready_delay"], DEFAULT_READY_DELAY)
        if spec.get("never_ready"):
            never.append(str(name))
    api = data.get("api") if isinstance(data.get("api"), dict) else {}
    window = api.get("http_503") if isinstance(api.get("http_503"), dict) else None
    expire = api.get("expire_watch_at")
    from drtool.lab.scenarios.costs import ImageCosts

    try:
        costs = ImageCosts.model_validate(data.get("images") or {})
    except ValueError:                  # the controllers report a bad scenario, naming the field
        costs = ImageCosts()
    scale = data.get("time_scale")
    return K3sScenario(
        images=costs,
        time_scale=float(scale) if isinstance(scale, (int, float)) and 0 < scale <= 1 else 0.05,
        default_ready_delay=_seconds(defaults.get("node_ready"), DEFAULT_READY_DELAY),
        ready_delay=delays,
        never_ready=tuple(never),
        api_refuse_after_start=_seconds(api.get("refuse_after_start"), 0.0),
        api_503_window=(_seconds(window.get("start"), 0.0), _seconds(window.get("duration"), 0.0)) if window else None,
        api_expire_watch_at=_seconds(expire, 0.0) if expire is not None else None,
        **timing,
    )


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None


def read_lab_json(lab_dir: str | Path | None) -> tuple[Path | None, Any]:
    """(the lab dir, what its ``lab.json`` holds), leniently: ``None`` for a missing or unreadable
    file. Without the scenario: for the programs that need only the lab's nodes or paths."""
    if not lab_dir:
        return None, None
    root = Path(lab_dir)
    try:
        return root, json.loads((root / "lab.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return root, None


def lab_nodes(raw: dict[str, Any]) -> tuple[LabNode, ...]:
    """The nodes ``lab.json`` lists (entries without a name or address are skipped)."""
    return tuple(
        LabNode(str(n["name"]), str(n["address"]))
        for n in raw.get("nodes") or [] if isinstance(n, dict) and n.get("name") and n.get("address")
    )


def load_lab_config(lab_dir: str | Path | None) -> LabConfig:
    """Read ``<lab_dir>/lab.json`` and its scenario; defaults for whatever is missing."""
    root, raw = read_lab_json(lab_dir)
    if root is None:
        return LabConfig(scenario=scenario_from_dict(None))
    if raw is None:
        return LabConfig(root=root, scenario=scenario_from_dict(None))
    if not isinstance(raw, dict):
        return LabConfig(root=root)
    nodes = lab_nodes(raw)
    scenario = scenario_from_dict(None)
    if raw.get("scenario"):
        scenario = scenario_from_dict(_read_yaml(Path(raw["scenario"])))
    return LabConfig(root=root, nodes=nodes, scenario=scenario, raw=raw)
