"""Lab scenarios: the delays and faults the simulated cluster plays.

A scenario file is parsed once, at the edge, into frozen pydantic models; every
problem raises ``BadInput`` naming the file and the field path
(``crashloop.yaml: objects.Deployment/llm/llama-cpp.crashloop: Input should be a valid boolean``).
Unknown keys are errors, so a typo never silently disables a fault.

Times are seconds of real time. Defaults are small so a fault-free homelab
rebuild converges in a few seconds; ``critical_path`` gives the least possible
time from K3s install start to all-ready for a scenario and a GitOps repo.
"""
from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from drtool.errors import BadInput
from drtool.inputs import read_yaml

from .costs import ImageCosts

__all__ = ["Scenario", "Defaults", "ImageCosts", "NodeTiming", "ObjectFaults", "ApiFaults", "Window", "SshDrop",
           "FluxFaults", "load_scenario", "parse_scenario", "builtin_scenario_path", "builtin_scenarios",
           "critical_path", "object_key"]

_STRICT = ConfigDict(extra="forbid", frozen=True)
Seconds = float
# "Kind/namespace/name", or "Kind/name" for cluster-scoped kinds (Node, PersistentVolume...).
_OBJECT_KEY = re.compile(r"^[A-Z][A-Za-z0-9]*/([a-z0-9][-a-z0-9.]*/)?[a-z0-9][-a-z0-9.]*$")


class Defaults(BaseModel):
    """Per-kind reconcile delays (seconds) used when an object has no ``delay`` of its own."""

    model_config = _STRICT
    git_repository: Seconds = Field(0.1, ge=0, description="GitRepository: clone and store the artifact")
    helm_repository: Seconds = Field(0.1, ge=0, description="HelmRepository: fetch the index")
    kustomization: Seconds = Field(0.2, ge=0, description="Kustomization: build and apply")
    helm_release: Seconds = Field(0.3, ge=0, description="HelmRelease: install the chart")
    pod: Seconds = Field(0.3, ge=0, description="Pod: from scheduled to Running and Ready")
    flux_controllers: Seconds = Field(0.2, ge=0, description="Pod delay of the Flux controller Deployments")
    node_ready: Seconds = Field(0.3, ge=0, description="Node: from registration to Ready")
    retry_interval: Seconds = Field(0.5, gt=0, description="Wait before retrying a failed reconcile")


class NodeTiming(BaseModel):
    """How one lab node behaves once its K3s registers it."""

    model_config = _STRICT
    ready_delay: Seconds | None = Field(None, ge=0, description="seconds from registration to Ready")
    never_ready: bool = Field(False, description="the node registers but never turns Ready")


class ObjectFaults(BaseModel):
    """Delay and faults for one object, keyed ``Kind/namespace/name`` in the scenario."""

    model_config = _STRICT
    delay: Seconds | None = Field(None, ge=0, description="reconcile (or, for workloads, pod start) delay")
    fail_times: int = Field(0, ge=0, description="HelmRelease: fail this many install/upgrade attempts, then "
                            "succeed (each failure past the release's remediation retries, default 0, stalls it)")
    retries_exceeded: bool = Field(False, description="HelmRelease: every attempt fails (Stalled, RetriesExceeded, "
                                   "once its remediation retries are used up)")
    crashloop: bool = Field(False, description="pods of this workload crash (CrashLoopBackOff)")
    image_pull_error: bool = Field(False, description="pods of this workload cannot pull their image")
    workload_kind: Literal["Deployment", "StatefulSet"] | None = Field(
        None, description="HelmRelease: the kind of workload the chart installs")


class Window(BaseModel):
    """A time window, in seconds after the API server started."""

    model_config = _STRICT
    start: Seconds = Field(ge=0)
    duration: Seconds = Field(gt=0)


class ApiFaults(BaseModel):
    """Faults of the lab API server (played by the K3s server through the API's fault switch)."""

    model_config = _STRICT
    refuse_after_start: Seconds | None = Field(
        None, gt=0, description="refuse connections for this many seconds after the server starts")
    http_503: Window | None = Field(None, description="answer 503 during this window")
    expire_watch_at: Seconds | None = Field(
        None, ge=0, description="end open watches and compact history (410 Gone) at this time")


class SshDrop(BaseModel):
    """Drop a node's SSH sessions while drtool runs the given phase."""

    model_config = _STRICT
    node: str = Field(min_length=1)
    during: str = Field(min_length=1, description="phase name, e.g. install, join, bootstrap")


class FluxFaults(BaseModel):
    """Faults of the simulated ``flux`` CLI."""

    model_config = _STRICT
    bootstrap_fail_times: int = Field(0, ge=0, description="fail the first N bootstraps transiently")
    bad_tokens: tuple[str, ...] = Field((), description="tokens the Git provider rejects (401)")
    # kustomize-controller v1.4.0 and helm-controller v1.1.0 main.go: --requeue-dependency=30s.
    requeue_dependency: Seconds = Field(30.0, gt=0, description="real seconds between re-checks of a "
                                        "not-ready dependency (the controllers' --requeue-dependency)")
    rate_limited_times: int = Field(0, ge=0, description="the first N bootstraps hit GitHub's API rate limit (403)")


class Scenario(BaseModel):
    """One parsed scenario file."""

    model_config = _STRICT
    name: str = Field(min_length=1)
    description: str = ""
    defaults: Defaults = Defaults()
    nodes: dict[str, NodeTiming] = Field(default_factory=dict)
    objects: dict[str, ObjectFaults] = Field(default_factory=dict)
    api: ApiFaults = ApiFaults()
    ssh_drop: SshDrop | None = None
    flux: FluxFaults = FluxFaults()
    # The cost model (model seconds, played at time_scale): image pulls, imports, container starts.
    images: ImageCosts = ImageCosts()
    # Chart -> CRDs entries (format of drtool/gitops/chart_crds.yaml) that replace the built-in
    # catalog's for the charts they name.
    chart_crds: tuple[dict[str, Any], ...] = ()

    @field_validator("chart_crds")
    @classmethod
    def _chart_crds(cls, value: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
        from drtool.gitops.charts import ChartCatalogError, parse_entries
        try:
            parse_entries(list(value), "scenario", "chart_crds")
        except ChartCatalogError as exc:
            raise ValueError(str(exc).removeprefix("scenario: ")) from None
        return value

    def chart_crd_entries(self) -> tuple[Any, ...]:
        """The ``chart_crds`` entries as :class:`drtool.gitops.charts.ChartEntry` objects."""
        from drtool.gitops.charts import parse_entries
        return parse_entries(list(self.chart_crds), f"scenario {self.name}", "chart_crds")
    time_scale: float = Field(
        0.05, gt=0, le=1, description="lab seconds per real second for Flux's own durations (requeue, "
        "interval, retryInterval, timeout, health-check polling); 0.05 plays 30 s in 1.5 s")

    @field_validator("objects")
    @classmethod
    def _object_keys(cls, value: dict[str, ObjectFaults]) -> dict[str, ObjectFaults]:
        for key in value:
            if not _OBJECT_KEY.match(key):
                raise ValueError(f"key {key!r}: expected Kind/namespace/name (or Kind/name)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "Scenario":
        for key, faults in self.objects.items():
            if faults.crashloop and faults.image_pull_error:
                raise ValueError(f"objects.{key}: crashloop and image_pull_error exclude each other")
        if self.ssh_drop and self.nodes and self.ssh_drop.node not in self.nodes:
            raise ValueError(f"ssh_drop.node: {self.ssh_drop.node!r} is not one of nodes "
                             f"({', '.join(sorted(self.nodes))})")
        return self

    # -- lookups used by the controllers (pure) --

    def faults(self, kind: str, namespace: str | None, name: str) -> ObjectFaults:
        """Faults declared for an object (all-default when the scenario names none)."""
        return self.objects.get(object_key(kind, namespace, name)) or _NO_FAULTS

    def delay(self, kind: str, namespace: str | None, name: str, default: float) -> float:
        """The object's own delay, else ``default``."""
        own = self.faults(kind, namespace, name).delay
        return default if own is None else own

    def scaled(self, real_seconds: float) -> float:
        """Lab seconds that play ``real_seconds`` of Flux time (messages keep the real figure)."""
        return real_seconds * self.time_scale

    def node_ready_delay(self, node: str) -> float | None:
        """Seconds from registration to Ready for ``node``; ``None`` when it never turns Ready."""
        timing = self.nodes.get(node)
        if timing is None:
            return self.defaults.node_ready
        if timing.never_ready:
            return None
        return self.defaults.node_ready if timing.ready_delay is None else timing.ready_delay


_NO_FAULTS = ObjectFaults()


def object_key(kind: str, namespace: str | None, name: str) -> str:
    """The scenario key of an object: ``Kind/namespace/name`` or ``Kind/name``."""
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if p != "__root__")


def parse_scenario(data: Any, source: str = "<scenario>") -> Scenario:
    """Validate already-loaded YAML data; raises ``BadInput(source, field, problem)``."""
    if data is None:
        raise BadInput(source, "", "the file is empty")
    if not isinstance(data, dict):
        raise BadInput(source, "", f"expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        # An unknown key is usually the typo behind the other errors: report it first.
        err = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
        problem, field = err["msg"], _field_path(err["loc"])
        if err["type"] == "extra_forbidden":
            problem = "unknown key"
        elif problem.startswith("Value error, "):
            problem = problem[len("Value error, "):]
            # Cross-field checks say which field they are about: "objects.X: ...".
            named = re.match(r"^([A-Za-z_][\w./\[\]-]*): (.*)$", problem, re.S)
            if named and (not field or named.group(1).startswith(field)):
                field, problem = named.group(1), named.group(2)
        raise BadInput(source, field, problem) from None


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file.

    Raises ``BadInput`` naming the file and the field for unreadable files, bad YAML,
    unknown keys and wrong values.
    """
    data = read_yaml(path)
    return parse_scenario(data, str(path))


def builtin_scenario_path(name: str) -> Path:
    """Path of a scenario shipped with drtool (``homelab``, ``crashloop``...)."""
    stem = name[:-5] if name.endswith(".yaml") else name
    path = Path(str(resources.files(__package__).joinpath(f"{stem}.yaml")))
    if not path.is_file():
        raise BadInput(name, "", f"no such built-in scenario (known: {', '.join(builtin_scenarios())})")
    return path


def builtin_scenarios() -> list[str]:
    """Names of the scenarios shipped with drtool."""
    return sorted(p.name[:-5] for p in resources.files(__package__).iterdir() if p.name.endswith(".yaml"))


def critical_path(scenario: Scenario, repo_path: str | Path, cluster_path: str = "clusters/homelab",
                  nodes: dict[str, dict[str, Any]] | None = None, nudged: bool = False,
                  kept: dict[str, list[str]] | None = None) -> float:
    """Least possible seconds from the server's API answering to everything Ready, with no faults.

    Walks the GitOps repo the way the simulated controllers do (see ``critical.py``).
    ``nodes`` maps node name to ``{"labels": {...}, "taints": [...]}``; by default the
    lab's two nodes (node2 labelled ``hardware=heavy`` and tainted ``heavy=true:NoSchedule``); the
    first is the server. ``nudged``: every controller learns at once that its dependencies are
    Ready (drtool's nudges), instead of at its next ``--requeue-dependency``. ``kept``: node →
    images it gives back to K3s (the image cache); each node's import at disk speed comes before
    its kubelet runs, so its node turns Ready that much later.
    """
    from .critical import compute_critical_path
    return compute_critical_path(scenario, Path(repo_path), cluster_path, nodes, nudged, kept)
