"""The K3s "supervisor" endpoints next to the Kubernetes API on port 6443.

Real K3s serves ``/cacerts`` and ``/v1-k3s/...`` on the API port for joining nodes.
The lab serves:

- ``GET /cacerts`` (no auth): the cluster CA the join token pins;
- ``POST /v1-k3s/lab/join``: register a node (token credentials as HTTP basic auth,
  node password in the body; 401 bad token, 403 node password rejected);
- ``POST /v1-k3s/lab/heartbeat``: the kubelet's status post (404 once the Node is gone);
  with ``"register": true`` in the body, the kubelet recreating its deleted Node;
- ``GET /v1-k3s/lab/bootstrap``: the cluster CAs, for servers joining with the server token.

The handlers only parse and answer; the decisions live in ``ClusterState``.
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Protocol

from aiohttp import web

from drtool.lab.k3s.flags import Taint, UsageError
from drtool.lab.k3s.nodes import JoinVerdict, NodeSpec


class ClusterState(Protocol):
    """What the handlers ask the server's cluster state (``drtool.lab.k3s.server.ClusterState``);
    a protocol, so this module does not import the server that imports it."""

    @property
    def ca_pem(self) -> bytes: ...

    def role_for(self, password: str) -> str | None: ...

    def bootstrap_files(self) -> dict[str, str]: ...

    def join(self, spec: NodeSpec, password: str, node_args: str = "") -> JoinVerdict: ...

    def register_again(self, spec: NodeSpec, password: str) -> tuple[int, str]: ...

    def heartbeat(self, name: str, password: str, ready: bool) -> tuple[int, str]: ...

    def sync_images(self, name: str, reported: tuple[str, ...]) -> list[str]: ...

PREFIX = "/v1-k3s/"


def handles(path: str) -> bool:
    return path == "/cacerts" or path.startswith(PREFIX)


def _credentials(request: web.Request) -> tuple[str, str] | None:
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Basic "):
        return None
    try:
        user, sep, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


def _spec(body: dict[str, Any], role: str) -> NodeSpec:
    taints = tuple(Taint(t.get("key", ""), t.get("value", ""), t.get("effect", "")) for t in body.get("taints") or [])
    labels = body.get("labels") or {}
    if not isinstance(labels, dict) or not body.get("name"):
        raise UsageError("name and labels are required")
    return NodeSpec(name=str(body["name"]), address=str(body.get("address") or ""), role=role,
                    labels={str(k): str(v) for k, v in labels.items()}, taints=taints,
                    etcd=bool(body.get("etcd")),
                    images=tuple(str(i) for i in body.get("images") or [] if isinstance(i, str)))


async def handle(request: web.Request, cluster: "ClusterState") -> web.StreamResponse:
    """Answer one supervisor request."""
    path = request.path
    if path == "/cacerts" and request.method == "GET":
        return web.Response(body=cluster.ca_pem, content_type="text/plain")
    creds = _credentials(request)
    role = cluster.role_for(creds[1]) if creds else None
    if role is None:
        return _error(401, "Unauthorized")
    if path == f"{PREFIX}lab/bootstrap" and request.method == "GET":
        if role != "server":
            return _error(401, "Unauthorized")
        return web.json_response(cluster.bootstrap_files())
    if request.method != "POST" or path not in (f"{PREFIX}lab/join", f"{PREFIX}lab/heartbeat"):
        return _error(404, "not found")
    try:
        body = json.loads(await request.read() or b"{}")
        spec = _spec(body, "server" if body.get("role") == "server" and role == "server" else "agent")
    except (ValueError, UsageError) as exc:
        return _error(400, f"invalid request: {exc}")
    password = str(body.get("node_password") or "")
    if path.endswith("/join"):
        verdict = cluster.join(spec, password, node_args=json.dumps(body.get("args") or []))
        if not verdict.accepted:
            return _error(403, verdict.agent_error)
        return web.json_response({"name": spec.name})
    if body.get("register"):
        status, message = cluster.register_again(spec, password)
    else:
        status, message = cluster.heartbeat(spec.name, password, bool(body.get("ready")))
    if status != 200:
        return _error(status, message)
    # The answer names every image the Node lists, pulls included, so the node's store keeps them.
    return web.json_response({"images": cluster.sync_images(spec.name, spec.images)})
