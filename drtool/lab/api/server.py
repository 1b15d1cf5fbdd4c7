"""``LabApiServer``: the lab's HTTPS Kubernetes API on aiohttp.

Routing follows the real URL layout (``/api/v1/namespaces/<ns>/pods/<name>/status``,
``/apis/<group>/<version>/...``). Authentication: a bearer token from the accepted
set, or a client certificate signed by the client CA (its CN is the user). As on
K3s, where the ``system:public-info-viewer`` role grants them to everyone,
``/version``, ``/healthz``, ``/livez`` and ``/readyz`` are served without credentials;
everything else answers 401 without them. There is no authorization: every
authenticated user is an admin.

Faults for scenarios and tests: ``refuse_connections`` (listener closed and open
connections dropped, so clients get "connection refused"), ``fail_requests`` (503s
for a time, a count, or at random) and ``expire_watches`` (410 Gone on resume).
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable

import jsonpatch
import yaml
from aiohttp import web

from . import discovery, protobuf
from .certs import LabPki, cert_user, write_kubeconfig
from .kinds import KindInfo
from .objects import clone, merge_patch
from .selectors import FieldSelector, LabelSelector
from .status import (ApiError, BadRequest, Invalid, MethodNotAllowed, NotFound, ServiceUnavailable,
                     Unauthorized, UnsupportedMediaType)
from .store import Store
from .tables import wants_table, to_table
from .watch import WatchSpec, WatchStream

log = logging.getLogger(__name__)

DEFAULT_VERSION = "v1.32.5+k3s1"
ANONYMOUS_PATHS = frozenset(("/version", "/healthz", "/livez", "/readyz"))
HEALTH_CHECKS = ("ping", "log", "etcd", "informer-sync", "poststarthook/start-apiextensions-controllers")
MERGE_PATCH_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json")
JSON = "application/json"


@dataclass(frozen=True)
class Target:
    """What a resource URL addresses."""

    info: KindInfo
    version: str
    namespace: str | None            # None: cluster-scoped kind, or all namespaces
    name: str | None
    subresource: str | None


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("", "1", "true")


def _dumps(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"))


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=_dumps(body), status=status, content_type=JSON)


class FaultSwitch:
    """Runtime-controllable failures; read by the request middleware."""

    def __init__(self) -> None:
        self.http_503_until = 0.0            # time.monotonic() deadline
        self.http_503_remaining: int | None = None
        self.http_503_probability = 1.0
        self.refused_until = 0.0
        self._rng = random.Random()

    def should_fail(self) -> bool:
        if self.http_503_remaining is not None:
            if self.http_503_remaining <= 0:
                return False
            if self._rng.random() < self.http_503_probability:
                self.http_503_remaining -= 1
                return True
            return False
        if time.monotonic() < self.http_503_until:
            return self._rng.random() < self.http_503_probability
        return False


class LabApiServer:
    """The lab's Kubernetes API over HTTPS. Start it with ``await start()`` in an event loop."""

    def __init__(self, host: str = "127.0.0.1", port: int = 6443, *, store: Store | None = None,
                 pki: LabPki | None = None, state_dir: str | Path | None = None,
                 tokens: Iterable[Any] = (), tls_sans: Iterable[str] = (), version: str = DEFAULT_VERSION,
                 persist_path: str | None = None, history: int = 10000, bookmark_interval: float = 1.0,
                 max_watch_seconds: float = 1800.0):
        self.host, self._port = host, port
        self.store = store if store is not None else Store(persist_path=persist_path, history=history)
        self.state_dir = Path(state_dir) if state_dir else None
        sans = (host, *tls_sans)
        if pki is None:
            pki = LabPki.load_or_create(self.state_dir, sans) if self.state_dir else LabPki.create(sans)
        self.pki = pki
        # Tokens may be drtool.secret.Secret values; compare on the revealed string only.
        self._tokens = {t.reveal() if hasattr(t, "reveal") else str(t) for t in tokens}
        self.version = version
        self.bookmark_interval = bookmark_interval
        self.max_watch_seconds = max_watch_seconds
        self.faults = FaultSwitch()
        self.request_counts: Counter[tuple[str, str]] = Counter()
        self._watches: set[WatchStream] = set()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._restart_handle: asyncio.TimerHandle | None = None

    # ----------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self._port}"

    def kubeconfig(self, server_url: str | None = None, name: str = "default") -> dict[str, Any]:
        """Admin kubeconfig for this server (client certificate credentials)."""
        return self.pki.kubeconfig(server_url or self.url, name)

    def write_kubeconfig(self, path: str | Path, server_url: str | None = None, name: str = "default") -> Path:
        """Write the admin kubeconfig (mode 0600) to ``path``."""
        return write_kubeconfig(path, self.pki, server_url or self.url, name)

    async def start(self) -> None:
        """Listen on ``host:port`` (port 0 picks a free one; see ``url``)."""
        self._loop = asyncio.get_running_loop()
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        await self._start_site()
        if self.state_dir:
            self.write_kubeconfig(self.state_dir / "kubeconfig.yaml")

    async def _start_site(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self.host, self._port, ssl_context=self.pki.server_ssl_context(),
                                 reuse_address=True)
        await self._site.start()
        server = self._site._server                     # aiohttp keeps the asyncio server private
        if self._port == 0 and server is not None and server.sockets:
            self._port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """End watches, close the listener and connections, write the store to disk."""
        if self._restart_handle is not None:
            self._restart_handle.cancel()
        self._end_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.store.flush()

    def threadsafe(self, fn: Callable[..., Any], *args: Any, timeout: float = 10.0, **kwargs: Any) -> Any:
        """Run ``fn`` (plain or async) in the server's loop from another thread; returns its result.

        The store is not thread-safe; tests running the server in a background thread use this.
        """
        assert self._loop is not None, "server not started"
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            raise RuntimeError("threadsafe() called from the server's own loop; call the store directly")

        async def call() -> Any:
            result = fn(*args, **kwargs)
            return await result if isinstance(result, Awaitable) else result

        fut: Future = asyncio.run_coroutine_threadsafe(call(), self._loop)
        return fut.result(timeout)

    # ----------------------------------------------------------------- faults

    async def refuse_connections(self, seconds: float) -> None:
        """Close the listener and drop every connection; listen again after ``seconds``."""
        loop = asyncio.get_running_loop()
        self.faults.refused_until = time.monotonic() + seconds
        self._end_watches()
        if self._site is not None:
            await self._site.stop()
            self._site = None
        if self._runner is not None and self._runner.server is not None:
            for conn in self._runner.server.connections:
                conn.force_close()
        if self._restart_handle is not None:
            self._restart_handle.cancel()
        self._restart_handle = loop.call_later(seconds, lambda: asyncio.ensure_future(self._restart()))

    async def _restart(self) -> None:
        self._restart_handle = None
        if self._runner is not None and self._site is None:
            await self._start_site()

    def fail_requests(self, seconds: float | None = None, count: int | None = None,
                      probability: float = 1.0) -> None:
        """Answer 503 for ``seconds``, or for the next ``count`` requests, each with ``probability``."""
        self.faults.http_503_probability = probability
        self.faults.http_503_remaining = count
        self.faults.http_503_until = time.monotonic() + seconds if seconds else 0.0

    def clear_faults(self) -> None:
        self.faults = FaultSwitch()

    def expire_watches(self) -> None:
        """End every open watch and drop the history: clients resuming get 410 Gone."""
        self.store.compact()
        self._end_watches()

    def _end_watches(self) -> None:
        for w in list(self._watches):
            w.end()

    # ----------------------------------------------------------------- HTTP plumbing

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        try:
            if self.faults.should_fail():
                raise ServiceUnavailable("the server is currently unable to handle the request")
            if request.path not in ANONYMOUS_PATHS and self._authenticate(request) is None:
                raise Unauthorized("Unauthorized")
            return await handler(request)
        except ApiError as exc:
            return _json(exc.status(), exc.code)

    def _authenticate(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return "token-user" if auth[7:].strip() in self._tokens else None
        ssl_obj = request.transport.get_extra_info("ssl_object") if request.transport else None
        if ssl_obj is not None:
            user = cert_user(ssl_obj.getpeercert(binary_form=True))
            if user is not None:
                return user[0]
        return None

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        if path in ANONYMOUS_PATHS:
            return self._nonresource(path, request)
        if parts[:2] == ["openapi", "v3"]:
            return self._openapi_v3(parts[2:])
        if parts[:1] == ["api"]:
            if len(parts) == 1:
                self.request_counts[("get", "/api")] += 1
                return _json(discovery.api_versions(f"{self.host}:{self._port}"))
            return await self._group_path("", parts[1], parts[2:], request)
        if parts[:1] == ["apis"]:
            self.request_counts[("get", "/apis")] += len(parts) <= 3
            if len(parts) == 1:
                return _json(discovery.api_group_list(self.store.kinds))
            if len(parts) == 2:
                body = discovery.api_group(self.store.kinds, parts[1])
                if body is None:
                    raise NotFound("the server could not find the requested resource")
                return _json(body)
            return await self._group_path(parts[1], parts[2], parts[3:], request)
        raise NotFound("the server could not find the requested resource")

    def _openapi_v3(self, rest: list[str]) -> web.Response:
        self.request_counts[("get", "/openapi/v3")] += 1
        kinds = self.store.kinds
        if not rest:
            return _json(discovery.openapi_v3_root(kinds, self.version))
        if rest[0] == "api" and len(rest) == 2:
            doc = discovery.openapi_v3_doc(kinds, "", rest[1], self.version)
        elif rest[0] == "apis" and len(rest) == 3:
            doc = discovery.openapi_v3_doc(kinds, rest[1], rest[2], self.version)
        else:
            doc = None
        if doc is None:
            raise NotFound("the server could not find the requested resource")
        return _json(doc)

    def _nonresource(self, path: str, request: web.Request) -> web.Response:
        self.request_counts[("get", path)] += 1
        if path == "/version":
            minor = self.version.lstrip("v").split(".")[1] if self.version.count(".") >= 2 else "32"
            return _json({"major": "1", "minor": minor, "gitVersion": self.version,
                          "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                          "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23.8", "compiler": "gc",
                          "platform": "linux/amd64"})
        if "verbose" in request.query:
            checks = "".join(f"[+]{c} ok\n" for c in HEALTH_CHECKS)
            return web.Response(text=f"{checks}{path[1:]} check passed\n")
        return web.Response(text="ok")

    async def _group_path(self, group: str, version: str, rest: list[str], request: web.Request) -> web.StreamResponse:
        if not rest:
            self.request_counts[("get", f"/{'api' if not group else 'apis/' + group}/{version}")] += 1
            body = discovery.api_resource_list(self.store.kinds, group, version)
            if body is None:
                raise NotFound("the server could not find the requested resource")
            return _json(body)
        target = self._target(group, version, rest)
        return await self._resource(target, request)

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
            namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise NotFound("the server could not find the requested resource")
        info = self.store.kinds.by_plural(group, version, rest[0])
        if info is None:
            raise NotFound("the server could not find the requested resource")
        if namespace is not None and not info.namespaced:
            raise NotFound("the server could not find the requested resource")
        name = rest[1] if len(rest) >= 2 else None
        sub = rest[2] if len(rest) == 3 else None
        if sub is not None and sub not in info.subresources:
            raise NotFound("the server could not find the requested resource")
        return Target(info, version, namespace, name, sub)

    # ----------------------------------------------------------------- resources

    def _render(self, target: Target) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """Objects are stored under the preferred version; show them under the requested one."""
        api_version = target.info.api_version(target.version)

        def render(obj: dict[str, Any]) -> dict[str, Any]:
            if obj.get("apiVersion") == api_version:
                return obj
            return {**obj, "apiVersion": api_version}
        return render

    async def _resource(self, target: Target, request: web.Request) -> web.StreamResponse:
        method = request.method
        info = target.info
        sub = f"/{target.subresource}" if target.subresource else ""
        resource = info.resource + sub
        q = request.query
        if method == "GET":
            if target.name is not None:
                self.request_counts[("get", resource)] += 1
                return self._respond_object(request, target, self._get(target))
            if _truthy(q.get("watch")):
                self.request_counts[("watch", resource)] += 1
                return await self._watch(target, request)
            self.request_counts[("list", resource)] += 1
            return self._list(target, request)
        if method == "POST" and target.name is None:
            self.request_counts[("create", resource)] += 1
            return self._respond_object(request, target, self._create(target, await self._body(request)), 201)
        if method == "PUT" and target.name is not None:
            self.request_counts[("update", resource)] += 1
            return self._respond_object(request, target, self._update(target, await self._body(request)))
        if method == "PATCH" and target.name is not None:
            self.request_counts[("patch", resource)] += 1
            return self._respond_object(request, target, await self._patch(target, request))
        if method == "DELETE":
            if target.name is not None:
                self.request_counts[("delete", resource)] += 1
                obj = self.store.delete(info.group, info.kind, target.namespace, target.name)
                if obj is None:
                    raise NotFound(f'{info.resource} "{target.name}" not found', kind=info.plural,
                                   name=target.name, group=info.group)
                code = 202 if obj["metadata"].get("deletionTimestamp") and obj["metadata"].get("finalizers") else 200
                return self._respond_object(request, target, obj, code)
            self.request_counts[("deletecollection", resource)] += 1
            deleted = [self.store.delete(info.group, info.kind, o["metadata"].get("namespace"), o["metadata"]["name"])
                       for o in list(self._select(target, request))]
            return _json(self._list_body(target, [o for o in deleted if o], None))
        raise MethodNotAllowed("the server does not allow this method on the requested resource")

    def _respond_object(self, request: web.Request, target: Target, obj: dict[str, Any], status: int = 200) -> web.Response:
        obj = self._render(target)(obj)
        if wants_table(request.headers.get("Accept", "")) and not target.subresource:
            return _json(to_table(target.info, [obj], self.store.resource_version), status)
        return _json(obj, status)

    def _get(self, target: Target) -> dict[str, Any]:
        info = target.info
        obj = self.store.peek(info.group, info.kind, target.namespace, target.name or "")
        if obj is None:
            raise NotFound(f'{info.resource} "{target.name}" not found', kind=info.plural, name=target.name or "",
                           group=info.group)
        return obj

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        ctype = request.content_type
        if ctype == "application/vnd.kubernetes.protobuf":
            return protobuf.decode(raw)
        if "cbor" in ctype:
            # client-go falls back to JSON when CBOR is refused with 415.
            raise UnsupportedMediaType(f"the body of the request was in an unknown format: {ctype}")
        try:
            if ctype.endswith("yaml"):
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise BadRequest(f"the request body is not valid {ctype}: {exc}") from exc

    def _select(self, target: Target, request: web.Request):
        return self.store.iter_objects(target.info.group, target.info.kind, target.namespace,
                                       LabelSelector.parse(request.query.get("labelSelector")),
                                       FieldSelector.parse(request.query.get("fieldSelector")))

    def _list_body(self, target: Target, items: list[dict[str, Any]], cont: dict[str, Any] | None) -> dict[str, Any]:
        render = self._render(target)
        meta: dict[str, Any] = {"resourceVersion": str(self.store.resource_version)}
        if cont:
            meta.update(cont)
        return {"kind": f"{target.info.kind}List", "apiVersion": target.info.api_version(target.version),
                "metadata": meta, "items": [render(o) for o in items]}

    def _list(self, target: Target, request: web.Request) -> web.Response:
        q = request.query
        items = self._select(target, request)
        start_after = _decode_continue(q.get("continue"))
        if start_after is not None:
            items = (o for o in items if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > start_after)
        limit = int(q.get("limit") or 0)
        cont = None
        if limit > 0:
            everything = list(items)
            items = everything[:limit]
            if len(everything) > limit:
                last = items[-1]["metadata"]
                cont = {"continue": _encode_continue((last.get("namespace", ""), last["name"])),
                        "remainingItemCount": len(everything) - limit}
        else:
            items = list(items)
        if wants_table(request.headers.get("Accept", "")):
            table = to_table(target.info, [self._render(target)(o) for o in items], self.store.resource_version)
            if cont:
                table["metadata"].update(cont)
            return _json(table)
        return _json(self._list_body(target, items, cont))

    def _check_body(self, target: Target, obj: Any) -> dict[str, Any]:
        info = target.info
        if not isinstance(obj, dict):
            raise BadRequest("the request body must be a JSON object")
        obj.setdefault("apiVersion", info.api_version(target.version))
        obj.setdefault("kind", info.kind)
        if obj["kind"] != info.kind or obj["apiVersion"] not in {info.api_version(v) for v in info.versions}:
            raise BadRequest(f"the API version in the data ({obj['apiVersion']}) does not match the expected "
                             f"API version ({info.api_version(target.version)})")
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise BadRequest("metadata must be an object")
        if info.namespaced:
            if target.namespace is None:
                raise MethodNotAllowed("the server does not allow this method on the requested resource")
            if meta.get("namespace") and meta["namespace"] != target.namespace:
                raise BadRequest("the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = target.namespace
        if target.name is not None and meta.get("name") and meta["name"] != target.name:
            raise BadRequest("the name of the object does not match the name on the URL")
        if target.name is not None:
            meta["name"] = target.name
        return obj

    def _require_namespace(self, target: Target) -> None:
        if target.info.namespaced and target.namespace and \
                self.store.peek("", "Namespace", None, target.namespace) is None:
            raise NotFound(f'namespaces "{target.namespace}" not found', kind="namespaces", name=target.namespace)

    def _create(self, target: Target, body: Any) -> dict[str, Any]:
        obj = self._check_body(target, body)
        self._require_namespace(target)
        return self.store.create(obj, keep_status=not target.info.has_status)

    def _update(self, target: Target, body: Any) -> dict[str, Any]:
        obj = self._check_body(target, body)
        info = target.info
        if target.subresource == "status":
            old = self._get(target)
            return self.store.replace_patched(info, old, {**old, "status": obj.get("status"),
                                                          "metadata": obj["metadata"]}, subresource="status")
        return self.store.update(obj)

    async def _patch(self, target: Target, request: web.Request) -> dict[str, Any]:
        info = target.info
        ctype = request.content_type
        body = await self._body(request)
        if ctype == "application/apply-patch+yaml":
            return self._server_side_apply(target, body)
        old = self._get(target)
        if ctype == "application/json-patch+json":
            if not isinstance(body, list):
                raise BadRequest("a JSON patch must be a list of operations")
            try:
                patched = jsonpatch.apply_patch(clone(old), body)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise Invalid(f"the server rejected our request due to an error in our request: {exc}") from exc
        elif ctype in MERGE_PATCH_TYPES:
            if not isinstance(body, dict):
                raise BadRequest("a merge patch must be a JSON object")
            patched = merge_patch(old, body)
        else:
            raise UnsupportedMediaType("the body of the request was in an unknown format - accepted media types "
                                       "include: application/json-patch+json, application/merge-patch+json, "
                                       "application/apply-patch+yaml")
        return self.store.replace_patched(info, old, patched, subresource=target.subresource)

    def _server_side_apply(self, target: Target, body: Any) -> dict[str, Any]:
        """A simplified server-side apply: create, or merge the applied fields over the object."""
        obj = self._check_body(target, body)
        info = target.info
        old = self.store.peek(info.group, info.kind, target.namespace, target.name or "")
        if old is None:
            if target.subresource:
                raise NotFound(f'{info.resource} "{target.name}" not found', kind=info.plural, name=target.name or "")
            self._require_namespace(target)
            return self.store.create(obj, keep_status=not info.has_status)
        obj["metadata"].pop("resourceVersion", None)
        return self.store.replace_patched(info, old, merge_patch(old, obj), subresource=target.subresource)

    async def _watch(self, target: Target, request: web.Request) -> web.StreamResponse:
        q = request.query
        timeout = float(q.get("timeoutSeconds") or self.max_watch_seconds)
        spec = WatchSpec(
            info=target.info, version=target.version, namespace=target.namespace,
            labels=LabelSelector.parse(q.get("labelSelector")), fields=FieldSelector.parse(q.get("fieldSelector")),
            resource_version=q.get("resourceVersion"), timeout=min(timeout, self.max_watch_seconds),
            bookmarks=_truthy(q.get("allowWatchBookmarks")), send_initial_events=_truthy(q.get("sendInitialEvents")),
        )
        table = wants_table(request.headers.get("Accept", ""))
        render = self._render(target)
        if table:
            plain = render
            render = lambda obj: to_table(target.info, [plain(obj)], None, include_object=True)  # noqa: E731
        stream = WatchStream(self.store, spec, render)
        response = web.StreamResponse(headers={"Content-Type": JSON, "Cache-Control": "no-cache"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        first = stream.start()                     # no await between snapshot and subscription
        self._watches.add(stream)
        try:
            if first:
                await response.write(b"".join(first))
            if not (len(first) == 1 and first[0].startswith(b'{"type":"ERROR"')):
                await stream.run(response.write, self.bookmark_interval)
        except (ConnectionResetError, asyncio.CancelledError):
            if stream.queue is not None:
                self.store.unsubscribe(stream.queue)
            raise
        finally:
            self._watches.discard(stream)
            if stream.queue is not None:
                self.store.unsubscribe(stream.queue)
        return response


def _encode_continue(key: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(_dumps(list(key)).encode()).decode()


def _decode_continue(token: str | None) -> tuple[str, str] | None:
    if not token:
        return None
    try:
        ns, name = json.loads(base64.urlsafe_b64decode(token.encode()))
        return (ns, name)
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"invalid continue token: {exc}") from exc
