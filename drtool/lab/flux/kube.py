"""The few Kubernetes API calls the simulated ``flux`` CLI makes, with the official client.

Responses are read as raw JSON (``_preload_content=False``) so the client's models never
reject a field; every call is bounded by a request timeout.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from drtool.kube import apisurface

REQUEST_TIMEOUT = 10


class KubeError(Exception):
    """An API call failed; the message is one line for the CLI's ``✗`` output."""


def _plural(kind: str) -> str:
    return {"GitRepository": "gitrepositories", "Kustomization": "kustomizations",
            "HelmRelease": "helmreleases", "HelmRepository": "helmrepositories"}[kind]


def _resource(api_version: str, kind: str) -> tuple[str, bool] | None:
    """(plural, namespaced) of a kind Kubernetes 1.31 or Flux v2.4.0 serves, from the recorded surface."""
    res = apisurface.lookup(api_version, kind)
    return (res.plural, res.namespaced) if res is not None else None


class Kube:
    """A connected API client for one kubeconfig/context."""

    def __init__(self, kubeconfig: str | None, context: str | None):
        try:
            self.api = config.new_client_from_config(config_file=kubeconfig, context=context)
        except (config.ConfigException, OSError, TypeError, ValueError) as exc:
            raise KubeError(f"Kubernetes client initialization failed: {exc}") from None
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.ext = client.ApiextensionsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.host = self.api.configuration.host

    def close(self) -> None:
        self.api.close()

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        """Call ``fn``; JSON body, ``None`` on 404, ``KubeError`` on anything else."""
        got = self._send(lambda: (200, fn(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT,
                                             **kwargs).data))
        return None if got is None else json.loads(got[1] or b"{}")

    def _send(self, call: Callable[[], tuple[int, bytes]]) -> tuple[int, bytes] | None:
        """Run one API call: (status, body), ``None`` on 404, ``KubeError`` on any other failure."""
        try:
            return call()
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise KubeError(_api_message(exc)) from None
        except Exception as exc:  # noqa: BLE001 - urllib3 raises many connection error types
            reason = getattr(exc, "reason", None) or exc
            raise KubeError(f"{self.host}: {reason}") from None

    def version(self) -> dict[str, Any]:
        out = self._call(client.VersionApi(self.api).get_code)
        if out is None:
            raise KubeError("the server could not find the requested resource (get version)")
        return out

    # -- apply (create, or merge-patch what exists) --

    def apply(self, obj: dict[str, Any]) -> str:
        """Create ``obj`` or patch the existing one; returns "created", "configured" or "unchanged"."""
        kind, meta = obj["kind"], obj["metadata"]
        name, ns = meta["name"], meta.get("namespace")
        group, _, version = obj["apiVersion"].rpartition("/")
        if kind == "Namespace":
            ops = (self.core.read_namespace, self.core.create_namespace, self.core.patch_namespace, ())
        elif kind == "Secret":
            ops = (self.core.read_namespaced_secret, self.core.create_namespaced_secret,
                   self.core.patch_namespaced_secret, (ns,))
        elif kind == "CustomResourceDefinition":
            ops = (self.ext.read_custom_resource_definition, self.ext.create_custom_resource_definition,
                   self.ext.patch_custom_resource_definition, ())
        elif kind == "Deployment":
            ops = (self.apps.read_namespaced_deployment, self.apps.create_namespaced_deployment,
                   self.apps.patch_namespaced_deployment, (ns,))
        else:
            return self._apply_custom(obj, group, version, kind, ns, name)
        read, create, patch, scope = ops
        existing = self._call(read, name, *scope)
        if existing is None:
            self._call(create, *scope, obj)
            return "created"
        if _unchanged(existing, obj):
            return "unchanged"
        self._call(patch, name, *scope, obj)
        return "configured"

    def _rest(self, method: str, path: str, body: dict[str, Any] | None = None,
              content_type: str = "application/json") -> dict[str, Any] | None:
        """One raw REST call (any kind): JSON body, ``None`` on 404, ``KubeError`` otherwise."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type

        def call() -> tuple[int, bytes]:
            if hasattr(self.api, "param_serialize"):      # kubernetes client >= 33 (openapi-generator 7)
                m, url, hdrs, data, post = self.api.param_serialize(
                    method=method, resource_path=path, header_params=headers, body=body,
                    auth_settings=["BearerToken"])
                resp = self.api.call_api(m, url, header_params=hdrs, body=data, post_params=post,
                                         _request_timeout=REQUEST_TIMEOUT)
                resp.read()
            else:
                resp = self.api.call_api(path, method, header_params=headers, body=body,
                                         auth_settings=["BearerToken"], _return_http_data_only=True,
                                         _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
            return resp.status, resp.data

        got = self._send(call)
        if got is None or got[0] == 404:
            return None
        status, raw = got
        if status >= 400:
            try:
                message = json.loads(raw or b"{}").get("message") or ""
            except ValueError:
                message = ""
            raise KubeError(f"{status} {message}".strip())
        return json.loads(raw or b"{}")

    def _discover(self, group: str, version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) from the server's discovery, for kinds a CRD just declared."""
        doc = self._rest("GET", f"/apis/{group}/{version}" if group else f"/api/{version}") or {}
        for r in doc.get("resources") or []:
            if r.get("kind") == kind and "/" not in r.get("name", ""):
                return r["name"], bool(r.get("namespaced"))
        gv = f"{group}/{version}" if group else version
        raise KubeError(f'no matches for kind "{kind}" in version "{gv}"')

    def _apply_generic(self, obj: dict[str, Any], group: str, version: str, kind: str, ns: str | None,
                       name: str) -> str:
        """Create or merge-patch any kind through its REST path (RBAC, Services, NetworkPolicies ...)."""
        plural, namespaced = _resource(obj["apiVersion"], kind) or self._discover(group, version, kind)
        base = f"/apis/{group}/{version}" if group else f"/api/{version}"
        if namespaced:
            base += f"/namespaces/{ns or 'default'}"
        collection = f"{base}/{plural}"
        existing = self._rest("GET", f"{collection}/{name}")
        if existing is None:
            self._rest("POST", collection, obj)
            return "created"
        if _unchanged(existing, obj):
            return "unchanged"
        self._rest("PATCH", f"{collection}/{name}", obj, "application/merge-patch+json")
        return "configured"

    def _apply_custom(self, obj: dict[str, Any], group: str, version: str, kind: str, ns: str, name: str) -> str:
        if kind not in ("GitRepository", "Kustomization", "HelmRelease", "HelmRepository"):
            return self._apply_generic(obj, group, version, kind, ns, name)
        plural = _plural(kind)
        existing = self._call(self.custom.get_namespaced_custom_object, group, version, ns, plural, name)
        if existing is None:
            self._call(self.custom.create_namespaced_custom_object, group, version, ns, plural, obj)
            return "created"
        if _unchanged(existing, obj):
            return "unchanged"
        self._call(self.custom.patch_namespaced_custom_object, group, version, ns, plural, name, obj)
        return "configured"

    def get_custom(self, group: str, version: str, kind: str, ns: str, name: str) -> dict[str, Any] | None:
        return self._call(self.custom.get_namespaced_custom_object, group, version, ns, _plural(kind), name)

    def get_secret(self, ns: str, name: str) -> dict[str, Any] | None:
        return self._call(self.core.read_namespaced_secret, name, ns)

    def get_deployment(self, ns: str, name: str) -> dict[str, Any] | None:
        return self._call(self.apps.read_namespaced_deployment, name, ns)

    def list_deployments(self, ns: str, selector: str) -> list[dict[str, Any]]:
        out = self._call(self.apps.list_namespaced_deployment, ns, label_selector=selector)
        return list((out or {}).get("items") or [])


def _unchanged(existing: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """True when every field ``wanted`` sets already has that value (a merge patch would be a no-op)."""
    def covers(have: Any, want: Any) -> bool:
        if isinstance(want, dict):
            return isinstance(have, dict) and all(covers(have.get(k), v) for k, v in want.items())
        return have == want
    return covers({k: v for k, v in existing.items() if k != "status"},
                  {k: v for k, v in wanted.items() if k != "status"})


def _api_message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
        message = body.get("message") or exc.reason
    except (TypeError, ValueError):
        message = exc.reason
    return f"{exc.status} {message}"
