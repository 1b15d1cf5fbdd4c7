"""Server-side printing: the ``Table`` objects ``kubectl get`` asks for.

kubectl requests ``application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the
columns the server chooses, so these mimic the real ones for the kinds drtool's
users look at (READY/STATUS for pods, READY/UP-TO-DATE/AVAILABLE for deployments,
CRD ``additionalPrinterColumns`` such as Flux's READY and STATUS).
"""
from __future__ import annotations

import datetime as _dt
import re
from typing import Any, Callable

from .kinds import KindInfo

Column = tuple[str, str, int, Callable[[dict[str, Any]], Any]]   # name, type, priority, cell


def wants_table(accept: str) -> bool:
    """True when the client asked for a meta.k8s.io Table (kubectl's human output)."""
    return "as=Table" in accept


def human_age(timestamp: str | None, now: _dt.datetime | None = None) -> str:
    """kubectl's short duration for the time since ``timestamp`` (``42s``, ``5m``, ``3h``, ``2d``)."""
    if not timestamp:
        return "<unknown>"
    try:
        then = _dt.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        return "<invalid>"
    seconds = int(((now or _dt.datetime.now(_dt.timezone.utc)) - then).total_seconds())
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"


def _get(obj: Any, *path: str, default: Any = None) -> Any:
    for p in path:
        if not isinstance(obj, dict):
            return default
        obj = obj.get(p)
    return default if obj is None else obj


def _condition(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    for c in _get(obj, "status", "conditions", default=[]):
        if isinstance(c, dict) and c.get("type") == ctype:
            return c
    return {}


def _pod_status(pod: dict[str, Any]) -> str:
    if _get(pod, "metadata", "deletionTimestamp"):
        return "Terminating"
    for cs in _get(pod, "status", "containerStatuses", default=[]):
        for state in ("waiting", "terminated"):
            reason = _get(cs, "state", state, "reason")
            if reason:
                return reason
    return _get(pod, "status", "reason") or _get(pod, "status", "phase", default="Unknown")


def _pod_ready(pod: dict[str, Any]) -> str:
    statuses = _get(pod, "status", "containerStatuses", default=[])
    total = len(_get(pod, "spec", "containers", default=[])) or len(statuses)
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _node_roles(node: dict[str, Any]) -> str:
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix):] for k in _get(node, "metadata", "labels", default={}) if k.startswith(prefix))
    return ",".join(roles) or "<none>"


def _node_status(node: dict[str, Any]) -> str:
    status = "Ready" if _condition(node, "Ready").get("status") == "True" else "NotReady"
    if _get(node, "spec", "unschedulable"):
        status += ",SchedulingDisabled"
    return status


_AGE: Column = ("Age", "string", 0, lambda o: human_age(_get(o, "metadata", "creationTimestamp")))

_COLUMNS: dict[tuple[str, str], list[Column]] = {
    ("", "Pod"): [
        ("Ready", "string", 0, _pod_ready),
        ("Status", "string", 0, _pod_status),
        ("Restarts", "integer", 0, lambda o: sum(int(s.get("restartCount", 0))
                                                 for s in _get(o, "status", "containerStatuses", default=[]))),
        _AGE,
        ("IP", "string", 1, lambda o: _get(o, "status", "podIP", default="<none>")),
        ("Node", "string", 1, lambda o: _get(o, "spec", "nodeName", default="<none>")),
    ],
    ("", "Node"): [
        ("Status", "string", 0, _node_status),
        ("Roles", "string", 0, _node_roles),
        _AGE,
        ("Version", "string", 0, lambda o: _get(o, "status", "nodeInfo", "kubeletVersion", default="")),
    ],
    ("", "Namespace"): [("Status", "string", 0, lambda o: _get(o, "status", "phase", default="")), _AGE],
    ("", "Service"): [
        ("Type", "string", 0, lambda o: _get(o, "spec", "type", default="ClusterIP")),
        ("Cluster-IP", "string", 0, lambda o: _get(o, "spec", "clusterIP", default="<none>")),
        _AGE,
    ],
    ("", "PersistentVolumeClaim"): [
        ("Status", "string", 0, lambda o: _get(o, "status", "phase", default="Pending")),
        ("Volume", "string", 0, lambda o: _get(o, "spec", "volumeName", default="")),
        _AGE,
    ],
    ("", "PersistentVolume"): [
        ("Capacity", "string", 0, lambda o: _get(o, "spec", "capacity", "storage", default="")),
        ("Status", "string", 0, lambda o: _get(o, "status", "phase", default="Available")),
        _AGE,
    ],
    ("", "Event"): [
        ("Type", "string", 0, lambda o: o.get("type", "")),
        ("Reason", "string", 0, lambda o: o.get("reason", "")),
        ("Object", "string", 0, lambda o: f"{_get(o, 'involvedObject', 'kind', default='').lower()}/"
                                          f"{_get(o, 'involvedObject', 'name', default='')}"),
        ("Message", "string", 0, lambda o: o.get("message", "")),
    ],
    ("apps", "Deployment"): [
        ("Ready", "string", 0, lambda o: f"{_get(o, 'status', 'readyReplicas', default=0)}/"
                                         f"{_get(o, 'spec', 'replicas', default=1)}"),
        ("Up-to-date", "integer", 0, lambda o: _get(o, "status", "updatedReplicas", default=0)),
        ("Available", "integer", 0, lambda o: _get(o, "status", "availableReplicas", default=0)),
        _AGE,
    ],
    ("apps", "StatefulSet"): [
        ("Ready", "string", 0, lambda o: f"{_get(o, 'status', 'readyReplicas', default=0)}/"
                                         f"{_get(o, 'spec', 'replicas', default=1)}"),
        _AGE,
    ],
    ("apps", "DaemonSet"): [
        ("Desired", "integer", 0, lambda o: _get(o, "status", "desiredNumberScheduled", default=0)),
        ("Current", "integer", 0, lambda o: _get(o, "status", "currentNumberScheduled", default=0)),
        ("Ready", "integer", 0, lambda o: _get(o, "status", "numberReady", default=0)),
        _AGE,
    ],
    ("apps", "ReplicaSet"): [
        ("Desired", "integer", 0, lambda o: _get(o, "spec", "replicas", default=1)),
        ("Current", "integer", 0, lambda o: _get(o, "status", "replicas", default=0)),
        ("Ready", "integer", 0, lambda o: _get(o, "status", "readyReplicas", default=0)),
        _AGE,
    ],
    ("batch", "Job"): [
        ("Status", "string", 0, lambda o: "Complete" if _condition(o, "Complete").get("status") == "True"
         else "Failed" if _condition(o, "Failed").get("status") == "True" else "Running"),
        ("Completions", "string", 0, lambda o: f"{_get(o, 'status', 'succeeded', default=0)}/"
                                               f"{_get(o, 'spec', 'completions', default=1)}"),
        _AGE,
    ],
    ("apiextensions.k8s.io", "CustomResourceDefinition"): [
        ("Created At", "date", 0, lambda o: _get(o, "metadata", "creationTimestamp", default="")),
    ],
}


# ----------------------------------------------------------------- CRD printer columns

_SEGMENT = re.compile(r"""([^.\[\]]+)|\[\?\(@\.([^=!]+)\s*==\s*["']([^"']*)["']\)\]|\[(\d+)\]""")


def json_path(obj: Any, path: str) -> Any:
    """Evaluate the JSONPath subset CRD printer columns use (``.a.b``, ``[0]``, ``[?(@.k=="v")]``)."""
    current: list[Any] = [obj]
    for m in _SEGMENT.finditer(path.strip().lstrip("{").rstrip("}")):
        field, fkey, fval, index = m.groups()
        nxt: list[Any] = []
        for value in current:
            if field is not None and isinstance(value, dict) and field in value:
                nxt.append(value[field])
            elif fkey is not None and isinstance(value, list):
                nxt.extend(v for v in value if isinstance(v, dict) and str(v.get(fkey.strip())) == fval)
            elif index is not None and isinstance(value, list) and int(index) < len(value):
                nxt.append(value[int(index)])
        current = nxt
    if not current:
        return None
    return current[0] if len(current) == 1 else ",".join(str(v) for v in current)


def _crd_columns(info: KindInfo) -> list[Column]:
    cols: list[Column] = []
    for spec in info.printer_columns:
        path, ctype = spec.get("jsonPath", ""), spec.get("type", "string")
        if ctype == "date":
            cell = lambda o, p=path: human_age(json_path(o, p))  # noqa: E731
        else:
            cell = lambda o, p=path: json_path(o, p)  # noqa: E731
        cols.append((spec.get("name", path), ctype, int(spec.get("priority", 0)), cell))
    if not any(c[0] == "Age" for c in cols):
        cols.append(_AGE)
    return cols


def to_table(info: KindInfo, objects: list[dict[str, Any]], resource_version: int | None,
             include_object: bool = False) -> dict[str, Any]:
    """A ``meta.k8s.io/v1`` Table of ``objects`` with the columns kubectl shows for ``info``."""
    columns = _COLUMNS.get((info.group, info.kind)) or (_crd_columns(info) if not info.builtin else [_AGE])
    defs = [{"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}]
    defs += [{"name": n, "type": "string" if t == "date" else t, "format": "", "description": n, "priority": p}
             for n, t, p, _ in columns]
    rows = []
    for obj in objects:
        cells: list[Any] = [obj["metadata"]["name"]] + [_cell(fn, obj) for _, _, _, fn in columns]
        meta = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
        row_object = obj if include_object else {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                                 "metadata": meta}
        rows.append({"cells": cells, "object": row_object})
    meta_out = {"resourceVersion": str(resource_version)} if resource_version is not None else {}
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta_out,
            "columnDefinitions": defs, "rows": rows}


def _cell(fn: Callable[[dict[str, Any]], Any], obj: dict[str, Any]) -> Any:
    value = fn(obj)
    return "<none>" if value is None or value == "" else value
