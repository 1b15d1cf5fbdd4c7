"""API errors and the ``Status`` objects the Kubernetes API answers them with.

The store raises these; the HTTP layer turns them into real ``Status`` bodies
(``kind: Status``, ``status: Failure``, ``reason``, ``code``, ``details``) so the
official client and kubectl see exactly what a real API server would send.
"""
from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Base of every error the lab API answers with a Status object."""

    code = 500
    reason = "InternalError"

    def __init__(self, message: str, *, kind: str = "", name: str = "", group: str = ""):
        super().__init__(message)
        self.message, self.kind, self.name, self.group = message, kind, name, group

    def status(self) -> dict[str, Any]:
        """The ``Status`` object a real API server sends for this error."""
        return status_body(self.code, self.reason, self.message,
                           kind=self.kind, name=self.name, group=self.group)


class BadRequest(ApiError):
    code, reason = 400, "BadRequest"


class Unauthorized(ApiError):
    code, reason = 401, "Unauthorized"


class NotFound(ApiError):
    code, reason = 404, "NotFound"


class MethodNotAllowed(ApiError):
    code, reason = 405, "MethodNotAllowed"


class AlreadyExists(ApiError):
    code, reason = 409, "AlreadyExists"


class Conflict(ApiError):
    code, reason = 409, "Conflict"


class Gone(ApiError):
    code, reason = 410, "Expired"


class UnsupportedMediaType(ApiError):
    code, reason = 415, "UnsupportedMediaType"


class Invalid(ApiError):
    code, reason = 422, "Invalid"


class ServiceUnavailable(ApiError):
    code, reason = 503, "ServiceUnavailable"


def status_body(code: int, reason: str, message: str, *, kind: str = "", name: str = "",
                group: str = "") -> dict[str, Any]:
    """Build a failure ``Status`` object (``details`` only when there is something to say)."""
    body: dict[str, Any] = {
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    }
    details = {k: v for k, v in (("name", name), ("group", group), ("kind", kind)) if v}
    if details:
        body["details"] = details
    return body


def success_status(kind: str, name: str, group: str = "", uid: str = "") -> dict[str, Any]:
    """The ``Status`` a real API server sends for a successful delete-collection and the like."""
    details = {"name": name, "group": group, "kind": kind}
    if uid:
        details["uid"] = uid
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": details}
