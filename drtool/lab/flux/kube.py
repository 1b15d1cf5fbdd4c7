"""The few Kubernetes API calls the simulated ``flux`` CLI makes, with the official client.

Every call goes through the client's raw REST path (``ApiClient.param_serialize`` and
``call_api``) to the kind's API path and reads the JSON body itself, so the client's models
never reject a field; every call is bounded by a request timeout. The typed API classes
(``CoreV1Api``, ``AppsV1Api``...) are not used: importing them costs ~1.7 s of CPU (their
pydantic-validated methods), paid by every ``flux bootstrap`` of every lab rebuild.
An existing object is merge-patched (``application/merge-patch+json``), the create-or-patch a
kubectl-style apply makes of the fields it sets.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

from kubernetes import config
from kubernetes.client.rest import ApiException

from drtool.kube import apisurface

REQUEST_TIMEOUT = 10
MERGE_PATCH = "application/merge-patch+json"

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
        self.host = self.api.configuration.host

    def close(self) -> None:
        self.api.close()

    def _send(self, call: Callable[[], tuple[int, bytes, str]]) -> tuple[int, bytes, str] | None:
        """Run one API call: (status, body, reason), ``None`` on 404, ``KubeError`` on a connection failure."""
        try:
            return call()
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise KubeError(_api_message(exc)) from None
        except Exception as exc:  # noqa: BLE001 - urllib3 raises many connection error types
            reason = getattr(exc, "reason", None) or exc
            raise KubeError(f"{self.host}: {reason}") from None

    def _rest(self, method: str, path: str, body: dict[str, Any] | None = None,
              content_type: str = "application/json", query: dict[str, str] | None = None) -> dict[str, Any] | None:
        """One raw REST call (any kind): JSON body, ``None`` on 404, ``KubeError`` otherwise
        (``<status> <the Status message, else the HTTP reason>``)."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        if query:
            path = f"{path}?{urlencode(query)}"

        def call() -> tuple[int, bytes, str]:
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
            return resp.status, resp.data, str(getattr(resp, "reason", "") or "")

        got = self._send(call)
        if got is None or got[0] == 404:
            return None
        status, raw, reason = got
        if status >= 400:
            try:
                message = json.loads(raw or b"{}").get("message") or ""
            except (AttributeError, ValueError):
                message = ""
            raise KubeError(f"{status} {message or reason}".strip())
        return json.loads(raw or b"{}")

    def version(self) -> dict[str, Any]:
        out = self._rest("GET", "/version/")
        if out is None:
            raise KubeError("the server could not find the requested resource (get version)")
        return out

    # -- apply (create, or merge-patch what exists) --

    def apply(self, obj: dict[str, Any]) -> str:
        """Create ``obj`` or patch the existing one; returns "created", "configured" or "unchanged"."""
        kind, meta = obj["kind"], obj["metadata"]
        name, ns = meta["name"], meta.get("namespace")
        group, _, version = obj["apiVersion"].rpartition("/")
        if kind in ("GitRepository", "Kustomization", "HelmRelease", "HelmRepository"):
            plural, namespaced = _plural(kind), True
        else:
            plural, namespaced = _resource(obj["apiVersion"], kind) or self._discover(group, version, kind)
        collection = _collection(group, version, plural, (ns or "default") if namespaced else None)
        path = f"{collection}/{quote(name, safe='')}"
        existing = self._rest("GET", path)
        if existing is None:
            self._rest("POST", collection, obj)
            return "created"
        if _unchanged(existing, obj):
            return "unchanged"
        self._rest("PATCH", path, obj, MERGE_PATCH)
        return "configured"

    def _discover(self, group: str, version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) from the server's discovery, for kinds a CRD just declared."""
        doc = self._rest("GET", f"/apis/{group}/{version}" if group else f"/api/{version}") or {}
        for r in doc.get("resources") or []:
            if r.get("kind") == kind and "/" not in r.get("name", ""):
                return r["name"], bool(r.get("namespaced"))
        gv = f"{group}/{version}" if group else version
        raise KubeError(f'no matches for kind "{kind}" in version "{gv}"')

    def get_custom(self, group: str, version: str, kind: str, ns: str, name: str) -> dict[str, Any] | None:
        return self._rest("GET", f"{_collection(group, version, _plural(kind), ns)}/{quote(name, safe='')}")

    def get_secret(self, ns: str, name: str) -> dict[str, Any] | None:
        return self._rest("GET", f"{_collection('', 'v1', 'secrets', ns)}/{quote(name, safe='')}")

    def get_deployment(self, ns: str, name: str) -> dict[str, Any] | None:
        return self._rest("GET", f"{_collection('apps', 'v1', 'deployments', ns)}/{quote(name, safe='')}")

    def list_deployments(self, ns: str, selector: str) -> list[dict[str, Any]]:
        out = self._rest("GET", _collection("apps", "v1", "deployments", ns), query={"labelSelector": selector})
        return list((out or {}).get("items") or [])


def _collection(group: str, version: str, plural: str, namespace: str | None) -> str:
    """The REST path of a kind's collection: /api/v1/... for the core group, /apis/G/V/... otherwise."""
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    if namespace is not None:
        base += f"/namespaces/{quote(namespace, safe='')}"
    return f"{base}/{plural}"


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
