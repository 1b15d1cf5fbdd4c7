"""Small pure helpers on Kubernetes objects (plain dicts): copying, patching, timestamps."""
from __future__ import annotations

import datetime as _dt
import re
from typing import Any

from .status import Invalid

# RFC 1123 subdomain: what most kinds require of metadata.name.
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
SYSTEM_METADATA = ("uid", "creationTimestamp", "generation", "resourceVersion",
                   "deletionTimestamp", "deletionGracePeriodSeconds")
NON_SPEC_KEYS = frozenset(("apiVersion", "kind", "metadata", "status"))


def clone(value: Any) -> Any:
    """Deep copy of JSON-shaped data; several times faster than ``copy.deepcopy``."""
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) for v in value]
    return value


def now_rfc3339() -> str:
    """Current UTC time the way the API server writes timestamps (second precision)."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch; returns a new value, ``target`` is left untouched."""
    if not isinstance(patch, dict):
        return clone(patch)
    result = clone(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    """Everything outside metadata/status: a change here bumps ``metadata.generation``."""
    return {k: v for k, v in obj.items() if k not in NON_SPEC_KEYS}


def validate_name(kind: str, name: Any) -> None:
    """Raise ``Invalid`` (422) the way the API server words a bad or missing name."""
    if not name:
        raise Invalid(f"{kind} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                      kind=kind)
    if not isinstance(name, str) or len(name) > 253 or not _NAME_RE.match(name):
        raise Invalid(
            f"{kind} {name!r} is invalid: metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 "
            "subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
            "and end with an alphanumeric character", kind=kind, name=str(name))
