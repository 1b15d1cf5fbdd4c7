"""Discovery documents: ``/api``, ``/apis``, group and group-version resource lists.

Only the unaggregated (v1) forms are served. kubectl asks for aggregated discovery
(``application/json;g=apidiscovery.k8s.io;v=v2``) first and falls back to these when
the answer's Content-Type is plain ``application/json``, as with older API servers.
"""
from __future__ import annotations

from typing import Any

from .kinds import ALL_VERBS, KindInfo, KindRegistry

SUBRESOURCE_VERBS = ["get", "patch", "update"]


def api_versions(server_address: str) -> dict[str, Any]:
    """``GET /api``: the core group's versions."""
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": gvs, "preferredVersion": gvs[0]}


def api_group_list(kinds: KindRegistry) -> dict[str, Any]:
    """``GET /apis``: every non-core group with its versions."""
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group(name, versions) for name, versions in kinds.groups().items()]}


def api_group(kinds: KindRegistry, group: str) -> dict[str, Any] | None:
    """``GET /apis/<group>``, or ``None`` when the group is not served."""
    versions = kinds.groups().get(group)
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(group, versions)}


def _resource_entries(info: KindInfo) -> list[dict[str, Any]]:
    main: dict[str, Any] = {"name": info.plural, "singularName": info.singular_name,
                            "namespaced": info.namespaced, "kind": info.kind, "verbs": list(ALL_VERBS)}
    if info.short_names:
        main["shortNames"] = list(info.short_names)
    if info.categories:
        main["categories"] = list(info.categories)
    entries = [main]
    for sub in info.subresources:
        entries.append({"name": f"{info.plural}/{sub}", "singularName": "", "namespaced": info.namespaced,
                        "kind": info.kind, "verbs": SUBRESOURCE_VERBS})
    return entries


def api_resource_list(kinds: KindRegistry, group: str, version: str) -> dict[str, Any] | None:
    """``GET /api/v1`` or ``/apis/<group>/<version>``, or ``None`` when not served."""
    infos = kinds.in_group_version(group, version)
    if not infos:
        return None
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": [e for info in infos for e in _resource_entries(info)]}
