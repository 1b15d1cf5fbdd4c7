"""``/etc/rancher/k3s/config.yaml`` (and ``config.yaml.d/``) as K3s reads them.

As k3s-io/k3s v1.31 ``pkg/configfilearg/parser.go``: the file named by ``K3S_CONFIG_FILE``
(default ``/etc/rancher/k3s/config.yaml``) and then every ``*.yaml``/``*.yml`` in
``<file>.d/`` (name order) are read; a later key replaces an earlier one unless it ends in
``+`` (then lists append). Each key becomes ``--key=value`` (one per list item) placed
*before* the command-line flags, so a flag on the command line wins for single values and
adds to lists. Keys that are not flags of the command are skipped with a warning.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import yaml

DEFAULT_CONFIG = "/etc/rancher/k3s/config.yaml"


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    text = "" if value is None else str(value).strip()
    return [text] if text else []


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def config_args(env: Mapping[str, str], exists: Callable[[str], bool], read: Callable[[str], str],
                listdir: Callable[[str], list[str]], valid: set[str], warn: Callable[[str], None]) -> list[str]:
    """The ``--key=value`` words the config files add in front of the command line."""
    base = env.get("K3S_CONFIG_FILE") or DEFAULT_CONFIG
    dropins = sorted(n for n in listdir(base + ".d") if n.lower().endswith((".yaml", ".yml")))
    files = ([base] if exists(base) else []) + [f"{base}.d/{n}" for n in dropins]
    order: list[str] = []
    values: dict[str, Any] = {}
    for path in files:
        data = yaml.safe_load(read(path)) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of flag names to values")
        for raw_key, value in data.items():
            key = str(raw_key)
            append = key.endswith("+")
            key = key.rstrip("+")
            if key not in values:
                order.append(key)
            values[key] = _as_list(values[key]) + _as_list(value) if append and key in values else value
    words: list[str] = []
    for key in order:
        if key not in valid:
            warn(f"Unknown flag --{key} found in config.yaml, skipping")
            continue
        prefix = "-" if len(key) == 1 else "--"
        items = values[key] if isinstance(values[key], list) else [values[key]]
        words += [f"{prefix}{key}={_text(v)}" for v in items]
    return words
