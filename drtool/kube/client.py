"""The one place drtool talks HTTP to a Kubernetes API.

``api_client_from_kubeconfig`` builds an official ``kubernetes`` ``ApiClient`` without touching
the library's process-wide default configuration (drtool may talk to an old and a new cluster
in the same process). ``KubeTransport`` does raw JSON GETs and streamed watches through that
client: the generated typed APIs deserialise every object into models, which costs far more
memory and time than the readiness rules need, and do not know Flux's CRDs anyway.

Errors are wrapped into drtool's tree: ``KubeRetryable`` (connection errors, 5xx, 429) and
``KubePermanent`` (other 4xx); ``NotFound`` and ``Gone`` are the permanent errors the watcher
handles itself (a CRD that does not exist yet; a resourceVersion too old to resume from).
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import urllib3
from kubernetes import client as kclient
from kubernetes import config as kconfig
from kubernetes.client.exceptions import ApiException

from drtool.errors import PermanentError, RetryableError

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0


class KubeRetryable(RetryableError):
    """The API is unreachable or overloaded (refused, reset, timeout, 5xx, 429)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class KubePermanent(PermanentError):
    """The API answered with a 4xx that retrying will not change."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class NotFound(KubePermanent):
    """404: the resource (or its whole API group, for a CRD not installed yet) does not exist."""


class Gone(KubePermanent):
    """410: the resourceVersion is too old to watch from; list again."""


def api_client_from_kubeconfig(path: str, context: str | None = None) -> kclient.ApiClient:
    """An ``ApiClient`` for ``context`` of the kubeconfig at ``path``.

    The library's global default configuration is left alone; urllib3's own retries are off
    (callers retry with backoff they control) and the pool is large enough for one watch per kind.
    """
    configuration = kclient.Configuration()
    try:
        kconfig.load_kube_config(config_file=str(path), context=context,
                                 client_configuration=configuration, persist_config=False)
    except (kconfig.ConfigException, OSError, KeyError, ValueError) as exc:
        raise PermanentError(f"{path}: cannot load kubeconfig: {exc}") from exc
    configuration.retries = False
    configuration.connection_pool_maxsize = 32
    return kclient.ApiClient(configuration=configuration)


def api_client_for_config(cfg: Mapping[str, Any],
                          make: Callable[[Path], kclient.ApiClient] | None = None) -> kclient.ApiClient:
    """An ``ApiClient`` for a kubeconfig held in memory (the old cluster's, read from a server).

    ``make`` builds it from a file (a run's ``Context.api_client``, which unit tests and dry runs
    answer with a recording client); by default the client for the file's current context. The
    file exists, 0600 (mkstemp), only while the client is made: the loader reads it then.
    """
    import yaml

    fd, tmp = tempfile.mkstemp(prefix="drtool-kubeconfig-")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(yaml.safe_dump(dict(cfg), sort_keys=False))
        return (make or (lambda p: api_client_from_kubeconfig(str(p))))(Path(tmp))
    finally:
        Path(tmp).unlink(missing_ok=True)


def _error_for(status: int, body: bytes, what: str) -> Exception:
    message = ""
    try:
        message = json.loads(body or b"{}").get("message", "")
    except (ValueError, AttributeError):
        message = (body or b"")[:200].decode("utf-8", "replace")
    text = f"{what}: HTTP {status}" + (f": {message}" if message else "")
    if status == 404:
        return NotFound(text, status)
    if status == 410:
        return Gone(text, status)
    if status == 429 or status >= 500:
        return KubeRetryable(text, status)
    return KubePermanent(text, status)


class KubeTransport:
    """Raw JSON access to the API through an official ``ApiClient``, counting every request.

    ``requests`` counts by category (``discovery``, ``list``, ``watch``, ``get``) so a benchmark
    can show that the number of requests does not grow with the number of objects.
    """

    def __init__(self, api_client: kclient.ApiClient,
                 timeout: tuple[float, float] = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S)):
        self.api_client = api_client
        self.timeout = timeout
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, category: str) -> None:
        with self._lock:
            self.requests[category] += 1

    def _open(self, path: str, query: Mapping[str, Any] | None, read_timeout: float | None):
        params = [(k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in (query or {}).items()]
        method, url, headers, _, _ = self.api_client.param_serialize(
            "GET", path, query_params=params, header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"])
        timeout = (self.timeout[0], read_timeout if read_timeout is not None else self.timeout[1])
        try:
            resp = self.api_client.call_api(method, url, header_params=headers, _request_timeout=timeout)
        except ApiException as exc:  # the client turns TLS failures into status-0 ApiExceptions
            raise KubeRetryable(f"GET {path}: {exc.reason}".strip()) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeRetryable(f"GET {path}: {type(exc).__name__}: {exc}") from exc
        raw = resp.response
        if raw.status >= 300:
            try:
                body = raw.read()
            except (urllib3.exceptions.HTTPError, OSError):
                body = b""
            finally:
                raw.release_conn()
            raise _error_for(raw.status, body, f"GET {path}")
        return raw

    def get_json(self, path: str, query: Mapping[str, Any] | None = None, category: str = "get") -> dict:
        """GET ``path`` and return the decoded JSON body."""
        self._count(category)
        raw = self._open(path, query, None)
        try:
            return json.loads(raw.read())
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeRetryable(f"GET {path}: {type(exc).__name__}: {exc}") from exc
        except ValueError as exc:
            raise KubeRetryable(f"GET {path}: invalid JSON: {exc}") from exc
        finally:
            raw.release_conn()

    def merge_patch(self, path: str, body: Mapping[str, Any], category: str = "patch") -> dict:
        """PATCH ``path`` with a JSON merge patch (``application/merge-patch+json``); the new object."""
        return self._send("PATCH", path, body, "application/merge-patch+json", category)

    def post_json(self, path: str, body: Mapping[str, Any], category: str = "create") -> dict:
        """POST ``body`` to the collection ``path`` (create); the created object."""
        return self._send("POST", path, body, "application/json", category)

    def put_json(self, path: str, body: Mapping[str, Any], category: str = "replace") -> dict:
        """PUT ``body`` at ``path`` (replace); the new object."""
        return self._send("PUT", path, body, "application/json", category)

    def _send(self, verb: str, path: str, body: Mapping[str, Any], content_type: str, category: str) -> dict:
        self._count(category)
        method, url, headers, payload, _ = self.api_client.param_serialize(
            verb, path, header_params={"Accept": "application/json", "Content-Type": content_type},
            body=dict(body), auth_settings=["BearerToken"])
        try:
            resp = self.api_client.call_api(method, url, header_params=headers, body=payload,
                                            _request_timeout=self.timeout)
        except ApiException as exc:
            raise KubeRetryable(f"{verb} {path}: {exc.reason}".strip()) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeRetryable(f"{verb} {path}: {type(exc).__name__}: {exc}") from exc
        raw = resp.response
        try:
            data = raw.read()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeRetryable(f"{verb} {path}: {type(exc).__name__}: {exc}") from exc
        finally:
            raw.release_conn()
        if raw.status >= 300:
            raise _error_for(raw.status, data, f"{verb} {path}")
        try:
            return json.loads(data)
        except ValueError as exc:
            raise KubeRetryable(f"{verb} {path}: invalid JSON: {exc}") from exc

    def watch(self, path: str, query: Mapping[str, Any], on_open=None) -> Iterator[dict]:
        """Stream the watch events of ``path`` (``watch=true`` is added) as decoded dicts.

        ``on_open(closer)`` receives a callable that aborts the stream from another thread.
        The read timeout is a little longer than the server-side ``timeoutSeconds``.
        """
        self._count("watch")
        query = dict(query)
        query["watch"] = True
        read_timeout = float(query.get("timeoutSeconds", 60)) + 10.0
        raw = self._open(path, query, read_timeout)
        if on_open is not None:
            on_open(lambda: _abort(raw))
        buf = b""
        finished = False
        try:
            for chunk in raw.stream(65536, decode_content=True):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
            if buf.strip():
                yield json.loads(buf)
            finished = True
        except (urllib3.exceptions.HTTPError, OSError, AttributeError) as exc:
            # AttributeError: urllib3 raises it when the socket was closed under it by _abort.
            raise KubeRetryable(f"watch {path}: {type(exc).__name__}: {exc}") from exc
        except ValueError as exc:
            raise KubeRetryable(f"watch {path}: invalid JSON line: {exc}") from exc
        finally:
            if not finished:
                # A half-read stream must not go back to the pool as if it were clean.
                raw.close()
            raw.release_conn()


def _abort(raw) -> None:
    # urllib3 raises ValueError when the response has no live socket any more (already done).
    try:
        raw.shutdown()
    except (OSError, AttributeError, ValueError):
        pass
