"""A Kubernetes ``ApiClient`` that records requests instead of sending them, and answers from a script.

The API-side twin of ``drtool.remote.recording.RecordingRunner``: phases that talk to the
Kubernetes API (nodes_ready, restore_secrets) run unchanged against it in unit tests, through
the real client's request building and response decoding. kubernetes-client/python
(``kubernetes/client/api_client.py``, v37) sends every request through ``ApiClient.call_api``
and hands back a ``rest.RESTResponse``; that is the one method replaced here. Nothing is ever
connected to. A request body is recorded as its kind and name only, so Secret data never
lands in the record.

An ``ApiReply`` matches ``"METHOD /path"`` by a regular expression; the first match with
answers left wins. A request no reply matches gets 201 ``{}`` for a POST, 200 ``{}`` otherwise.
"""
from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from typing import Any, Sequence
from urllib.parse import urlsplit

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
    times: int | None = None
    """How many requests it answers; unlimited when None."""


@dataclass(frozen=True)
class ApiCall:
    """One request a phase sent; the body only by kind and name."""

    method: str
    path: str
    kind: str = ""
    name: str = ""

    def describe(self) -> str:
        return f"{self.method} {self.path}" + (f" ({self.kind} {self.name})" if self.kind else "")


class RecordingApiClient(ApiClient):
    """An ``ApiClient`` that records and answers from ``replies``; see the module docstring."""

    def __init__(self, replies: Sequence[ApiReply] = ()):
        config = Configuration()
        config.host = HOST
        super().__init__(config)
        self.replies = list(replies)
        self.calls: list[ApiCall] = []

    def call_api(self, method, url, header_params=None, body=None, post_params=None,
                 _request_timeout=None) -> RESTResponse:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        obj = body if isinstance(body, dict) else {}
        self.calls.append(ApiCall(method, path, str(obj.get("kind") or ""),
                                  str((obj.get("metadata") or {}).get("name") or "")))
        status, answer = (201 if method == "POST" else 200), {}
        for reply in self.replies:
            if reply.times == 0 or not re.search(reply.match, f"{method} {path}"):
                continue
            if reply.times is not None:
                reply.times -= 1
            status, answer = reply.status, reply.body
            break
        # Not preloaded: the generated API classes read ``.data``, KubeTransport reads the stream.
        raw = urllib3.HTTPResponse(body=io.BytesIO(json.dumps(answer).encode()), status=status,
                                   headers={"content-type": "application/json"}, preload_content=False)
        return RESTResponse(raw)

    def requests(self) -> list[str]:
        """The recorded requests, described, in order."""
        return [c.describe() for c in self.calls]
