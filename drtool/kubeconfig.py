"""Kubeconfig handling (pure): rewrite K3s's k3s.yaml for the operator, merge into ~/.kube/config.

K3s writes a kubeconfig pointing at https://127.0.0.1:6443 with cluster, user and
context all named ``default``. The operator needs the API endpoint they reach and
the cluster's own context name; merging must *replace* the old cluster's CA and
credentials, or every kubectl call fails with x509 errors after a rebuild.
"""
from __future__ import annotations

import re
from typing import Any

import yaml

from drtool.errors import PermanentError


def rewrite(text: str, server: str, name: str) -> dict[str, Any]:
    """k3s.yaml → a kubeconfig whose server is ``server`` and whose names are ``name``."""
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PermanentError(f"the server's kubeconfig is not valid YAML: {exc}") from None
    if not isinstance(cfg, dict) or not cfg.get("clusters") or not cfg.get("users"):
        raise PermanentError("the server's kubeconfig has no clusters or users")
    cluster = dict(cfg["clusters"][0]["cluster"])
    cluster["server"] = re.sub(r"^https://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?", server, cluster.get("server", ""))
    user = dict(cfg["users"][0]["user"])
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
        "preferences": {},
    }


def merge(existing: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Merge ``new`` into ``existing``: entries with the same names are replaced, others kept."""
    merged = dict(existing or {"apiVersion": "v1", "kind": "Config", "preferences": {}})
    for section in ("clusters", "users", "contexts"):
        names = {e["name"] for e in new.get(section, [])}
        kept = [e for e in (merged.get(section) or []) if e.get("name") not in names]
        merged[section] = kept + list(new.get(section, []))
    merged["current-context"] = new.get("current-context", merged.get("current-context"))
    return merged


def dump(cfg: dict[str, Any]) -> str:
    return yaml.safe_dump(cfg, sort_keys=False)
