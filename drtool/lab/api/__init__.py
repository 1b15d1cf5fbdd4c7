"""The lab Kubernetes API: an HTTPS server speaking the API subset drtool and kubectl use.

``Store`` is the datastore (also used directly by simulated controllers);
``LabApiServer`` serves it over HTTPS with token and client-certificate auth.
Heavy modules (aiohttp, cryptography) load only when the server is used.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .store import Event, Store
from .status import AlreadyExists, ApiError, BadRequest, Conflict, Gone, Invalid, NotFound

if TYPE_CHECKING:
    from .certs import LabPki, write_kubeconfig
    from .server import LabApiServer

__all__ = ["Store", "Event", "LabApiServer", "LabPki", "write_kubeconfig", "ApiError", "AlreadyExists",
           "BadRequest", "Conflict", "Gone", "Invalid", "NotFound"]


def __getattr__(name: str) -> Any:
    if name == "LabApiServer":
        from .server import LabApiServer
        return LabApiServer
    if name in ("LabPki", "write_kubeconfig"):
        from . import certs
        return getattr(certs, name)
    raise AttributeError(name)
