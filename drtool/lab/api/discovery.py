"""Discovery documents: ``/api``, ``/apis``, group and group-version resource lists.

Only the unaggregated (v1) forms are served. kubectl asks for aggregated discovery
(``application/json;g=apidiscovery.k8s.io;v=v2``) first and falls back to these when
the answer's Content-Type is plain ``application/json``, as with older API servers.
"""
from __future__ import annotations

from typing import Any

from .kinds import KindInfo, KindRegistry

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
                            "namespaced": info.namespaced, "kind": info.kind, "verbs": list(info.verbs)}
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


# ----------------------------------------------------------------- OpenAPI v3 (minimal)
#
# kubectl create/apply download OpenAPI v3 to learn whether the server validates
# fields itself (the ``fieldValidation`` query parameter of each kind's PATCH
# operation). Advertising it makes kubectl rely on the server instead of needing
# full schemas; the lab accepts and ignores the parameter.

def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_root(kinds: KindRegistry, version_tag: str) -> dict[str, Any]:
    """``GET /openapi/v3``: one document per group-version."""
    gvs = {(i.group, v) for i in kinds.all() for v in i.versions}
    return {"paths": {_gv_path(g, v): {"serverRelativeURL": f"/openapi/v3/{_gv_path(g, v)}?hash={version_tag}"}
                      for g, v in sorted(gvs)}}


def openapi_v3_doc(kinds: KindRegistry, group: str, version: str, version_tag: str) -> dict[str, Any] | None:
    """``GET /openapi/v3/<gv>``: PATCH operations that declare ``fieldValidation``; no schemas."""
    infos = kinds.in_group_version(group, version)
    if not infos:
        return None
    paths: dict[str, Any] = {}
    for info in infos:
        base = f"/{_gv_path(group, version)}/" + ("namespaces/{namespace}/" if info.namespaced else "")
        op = {"operationId": f"patch{info.kind}",
              "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": info.kind},
              "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                             {"name": "fieldManager", "in": "query", "schema": {"type": "string"}}],
              "responses": {"200": {"description": "OK"}}}
        paths[base + info.plural + "/{name}"] = {"patch": op}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": version_tag},
            "paths": paths, "components": {"schemas": {}}}
