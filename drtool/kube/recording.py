"""A Kubernetes ``ApiClient`` that records requests instead of sending them, and answers from a script.

The API-side twin of ``drtool.remote.recording.RecordingRunner``: phases that talk to the
Kubernetes API (install_servers' /readyz wait, nodes_ready, restore_secrets, converge) run
unchanged against it, in unit tests and in ``--dry-run``, through the real client's request
building and response decoding. kubernetes-client/python (``kubernetes/client/api_client.py``,
v37) sends every request through ``ApiClient.call_api`` and hands back a ``rest.RESTResponse``;
that is the one method replaced here. Nothing is ever connected to. A request body is recorded
as its kind and name only, so Secret data never lands in the record.

An ``ApiReply`` matches ``"METHOD /path"`` by a regular expression; the first match with
answers left wins. A request no reply matches gets 201 ``{}`` for a POST, 200 ``{}`` otherwise.
"""
from __future__ import annotations

import io
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence
from urllib.parse import parse_qs, urlsplit

import urllib3
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.rest import RESTResponse

HOST = "https://recorded.invalid"


@dataclass
class ApiReply:
    """What a scripted request answers."""

    match: str
    """A regular expression searched in ``"METHOD /path"`` (the query string included)."""
    status: int = 200
    body: Any = field(default_factory=dict)
    """Sent as JSON; ``str``/``bytes`` are sent as they are (``/readyz``'s ``ok``, an empty watch stream)."""
    times: int | None = None
    """How many requests it answers; unlimited when None."""
    delay: float = 0.0
    """Seconds before it answers (a watch the server holds open a while)."""


@dataclass(frozen=True)
class ApiCall:
    """One request a phase sent; the body only by kind and name."""

    method: str
    path: str
    kind: str = ""
    name: str = ""

    def describe(self) -> str:
        return f"{self.method} {self.path}" + (f" ({self.kind} {self.name})" if self.kind else "")

    @property
    def read_only(self) -> bool:
        return self.method in ("GET", "HEAD")

    def summary(self) -> str:
        """What the request does, in kubectl's words (``create Secret flux-system/sops-age``,
        ``list nodes``, ``watch pods``), read from the REST path (Kubernetes API conventions:
        ``/api/v1`` or ``/apis/GROUP/VERSION``, then ``namespaces/NS``, ``RESOURCE``, ``NAME``)."""
        parts = urlsplit(self.path)
        segs = [s for s in parts.path.split("/") if s]
        if self.method == "GET" and segs[:1] == ["apis"] and len(segs) == 2:
            return f"discover API group {segs[1]}"
        if segs[:1] == ["api"] and len(segs) >= 2:
            rest, api = segs[2:], segs[1]
        elif segs[:1] == ["apis"] and len(segs) >= 3:
            rest, api = segs[3:], f"{segs[1]}/{segs[2]}"
        else:
            return f"{self.method} {self.path}"  # /readyz, discovery
        namespace = ""
        if rest[:1] == ["namespaces"] and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        if not rest:
            return f"{self.method} {self.path}"
        resource, name = rest[0], "/".join(rest[1:])
        where = f"{namespace}/" if namespace else ""
        if self.method == "POST" and not name:
            return f"create {self.kind or resource} {where}{self.name}".rstrip()
        if not name:
            verb = "watch" if parse_qs(parts.query).get("watch") == ["true"] else "list"
            return f"{verb} {resource} ({api}{', namespace ' + namespace if namespace else ''})"
        verb = {"GET": "get", "PUT": "replace", "PATCH": "patch", "DELETE": "delete"}.get(self.method, self.method)
        return f"{verb} {self.kind or resource} {where}{name}"


class RecordingApiClient(ApiClient):
    """An ``ApiClient`` that records and answers from ``replies``; see the module docstring.

    ``host`` is the API server it stands for; ``on_call`` sees each request as it is recorded
    (a dry run interleaves them with the recorded SSH commands)."""

    def __init__(self, replies: Sequence[ApiReply] = (), *, host: str = HOST,
                 on_call: Callable[[ApiCall], None] | None = None):
        config = Configuration()
        config.host = host
        super().__init__(config)
        self.host = host
        self.replies = list(replies)
        self.calls: list[ApiCall] = []
        self.on_call = on_call
        self._lock = threading.Lock()  # converge's watcher threads share one client

    def call_api(self, method, url, header_params=None, body=None, post_params=None,
                 _request_timeout=None) -> RESTResponse:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        obj = body if isinstance(body, dict) else {}
        call = ApiCall(method, path, str(obj.get("kind") or ""), str((obj.get("metadata") or {}).get("name") or ""))
        status, answer, delay = (201 if method == "POST" else 200), {}, 0.0
        with self._lock:
            self.calls.append(call)
            if self.on_call is not None:
                self.on_call(call)
            for reply in self.replies:
                if reply.times == 0 or not re.search(reply.match, f"{method} {path}"):
                    continue
                if reply.times is not None:
                    reply.times -= 1
                status, answer, delay = reply.status, reply.body, reply.delay
                break
        if delay:
            time.sleep(delay)
        raw_body = answer.encode() if isinstance(answer, str) else answer if isinstance(answer, bytes) \
            else json.dumps(answer).encode()
        # Not preloaded: the generated API classes read ``.data``, KubeTransport reads the stream.
        raw = urllib3.HTTPResponse(body=io.BytesIO(raw_body), status=status,
                                   headers={"content-type": "application/json"}, preload_content=False)
        return RESTResponse(raw)

    def requests(self) -> list[str]:
        """The recorded requests, described, in order."""
        return [c.describe() for c in self.calls]
