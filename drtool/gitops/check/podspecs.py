"""Where pod specs hide in built objects, and the Helm values keys that play the same role."""
from __future__ import annotations

from typing import Any, Iterator

_TEMPLATE_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController")


def pod_specs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The pod spec(s) of a workload object (none for other kinds)."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if not isinstance(spec, dict):
        return
    if kind == "Pod":
        yield spec
    elif kind in _TEMPLATE_KINDS:
        tmpl = ((spec.get("template") or {}).get("spec"))
        if isinstance(tmpl, dict):
            yield tmpl
    elif kind == "CronJob":
        tmpl = (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec")
        if isinstance(tmpl, dict):
            yield tmpl


def helm_scheduling(values: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """(values path, {nodeSelector, tolerations, affinity}) blocks in HelmRelease values.

    Charts conventionally take these at the top level or one level down per component
    (``nodeSelector``, ``singleBinary.nodeSelector``); deeper nesting is chart-specific.
    """
    if not isinstance(values, dict):
        return
    keys = ("nodeSelector", "tolerations", "affinity")
    if any(k in values for k in keys):
        yield "values", {k: values.get(k) for k in keys}
    for name, sub in values.items():
        if isinstance(sub, dict) and any(k in sub for k in keys):
            yield f"values.{name}", {k: sub.get(k) for k in keys}


def walk_keys(value: Any, wanted: tuple[str, ...], path: str = "values") -> Iterator[tuple[str, str, Any]]:
    """(path, key, value) for every key in ``wanted`` anywhere under ``value``."""
    if isinstance(value, dict):
        for k, v in value.items():
            here = f"{path}.{k}"
            if k in wanted and isinstance(v, str) and v:
                yield here, k, v
            else:
                yield from walk_keys(v, wanted, here)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk_keys(v, wanted, f"{path}[{i}]")
