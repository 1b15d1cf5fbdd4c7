"""``k3s agent``: join a server with the cluster token, register the Node, heartbeat.

Deliberately stdlib-only (http.client + ssl): the fan-out benchmark starts fifty of
these. The exchange mirrors K3s's: fetch ``/cacerts`` without trusting it, compare its
hash with the token's pinned hash, then talk to the server's supervisor endpoints with
the token's credentials and the node password from ``/etc/rancher/node/password``.

The agent reports Ready after the scenario's ``ready_delay`` for this node, then posts
a heartbeat every few seconds; a deleted Node is registered again, as a kubelet does.
A rejected join is retried until the scenario's ``join_timeout``, then the agent exits 1
so the unit (and the install script that started it) fails.
"""
from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import signal
import ssl
import time
from urllib.parse import urlsplit

from drtool.lab.k3s import proc
from drtool.lab.k3s.flags import AgentConfig
from drtool.lab.k3s.labconfig import LabConfig
from drtool.lab.k3s.nodes import new_password
from drtool.lab.k3s.rootfs import NODE_PASSWORD, RootFS
from drtool.lab.k3s.tokens import TokenError, ca_mismatch_message, parse_token

HEARTBEAT_INTERVAL = 2.0
RETRY_INTERVAL = 1.0
REQUEST_TIMEOUT = 5.0


class JoinRejected(Exception):
    """The server answered, and said no (bad token, node password)."""


class Unreachable(Exception):
    """No answer: connection refused, TLS failure, timeout."""


class SupervisorClient:
    """Talks to a K3s server's supervisor endpoints (``/cacerts``, ``/v1-k3s/...``)."""

    def __init__(self, url: str, username: str, password: str):
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"invalid server url {url!r}: expected https://host:port")
        self.host, self.port = parts.hostname, parts.port or 6443
        self._auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self._ctx: ssl.SSLContext | None = None

    def _request(self, method: str, path: str, body: dict | None, ctx: ssl.SSLContext,
                 auth: bool = True) -> tuple[int, bytes]:
        conn = http.client.HTTPSConnection(self.host, self.port, context=ctx, timeout=REQUEST_TIMEOUT)
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = self._auth
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise Unreachable(f"{method} https://{self.host}:{self.port}{path}: {exc}") from exc
        finally:
            conn.close()

    def cacerts(self) -> bytes:
        """The cluster CA bundle, fetched without verification (the token's hash verifies it)."""
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        status, data = self._request("GET", "/cacerts", None, insecure, auth=False)
        if status != 200:
            raise Unreachable(f"failed to get CA certs: https://{self.host}:{self.port}/cacerts: {status}")
        return data

    def trust(self, ca_pem: bytes) -> None:
        self._ctx = ssl.create_default_context(cadata=ca_pem.decode())

    def get(self, path: str) -> tuple[int, dict]:
        return self.post(path, None)

    def post(self, path: str, body: dict | None) -> tuple[int, dict]:
        """``(status, JSON body)`` of a request verified against the trusted CA (GET when body is None)."""
        assert self._ctx is not None, "call trust() first"
        status, data = self._request("POST" if body is not None else "GET", path, body, self._ctx)
        try:
            payload = json.loads(data) if data else {}
        except ValueError:
            payload = {"message": data.decode(errors="replace")}
        return status, payload


def _registration(cfg: AgentConfig, password: str, ready: bool) -> dict:
    from drtool.lab.k3s import images
    return {"name": cfg.node_name, "address": cfg.node_ip, "role": "agent", "labels": cfg.labels,
            "taints": [t.as_api() for t in cfg.taints], "node_password": password, "ready": ready,
            # The kubelet reports the images its runtime holds in Node.status.images.
            "images": images.held(RootFS.from_env(), cfg.data_dir)}


def _join(client: SupervisorClient, token, cfg: AgentConfig, password: str) -> None:
    ca = client.cacerts()
    mismatch = ca_mismatch_message(token, ca)
    if mismatch:
        raise JoinRejected(mismatch)
    client.trust(ca)
    status, payload = client.post("/v1-k3s/lab/join", _registration(cfg, password, False))
    if status == 200:
        return
    if status == 401:
        raise JoinRejected(f"failed to get CA certs: https://{client.host}:{client.port}/cacerts: 401 Unauthorized")
    raise JoinRejected(payload.get("message") or f"join failed: HTTP {status}")


def run_agent(cfg: AgentConfig, fs: RootFS, lab: LabConfig) -> int:
    """Run until SIGTERM (0) or until joining fails for ``join_timeout`` seconds (1)."""
    stopping = False

    def on_term(signum, frame):  # noqa: ARG001
        nonlocal stopping
        stopping = True
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    from drtool.lab.k3s import K3S_COMMIT, K3S_VERSION
    proc.info(f"Starting k3s agent {K3S_VERSION} ({K3S_COMMIT})")
    from drtool.lab.k3s import images
    try:
        token = parse_token(cfg.token, default_user="node")
    except TokenError as exc:
        return proc.fatal(f"Error: failed to normalize server token; must be in format K10<CA-HASH>::<USERNAME>:<PASSWORD> or <PASSWORD>: {exc}")
    if not token.secure:
        proc.warn("Cluster CA certificate is not trusted by the host CA bundle, but the token does not include a CA hash. "
                  "Use the full token from the server's node-token file to enable Cluster CA validation.")
    password = proc.read_or_create_secret_file(fs.path(NODE_PASSWORD), new_password)
    address = cfg.node_ip or lab.own_address(cfg.node_name) or "127.0.0.1"
    cfg = dataclasses.replace(cfg, node_ip=address)
    client = SupervisorClient(cfg.server_url, token.username, token.password)
    scenario = lab.scenario

    deadline = time.monotonic() + scenario.join_timeout
    while not stopping:
        try:
            _join(client, token, cfg, password)
            break
        except (JoinRejected, Unreachable) as exc:
            proc.info(f"Waiting to retrieve agent configuration; server is not ready: {exc}")
            if time.monotonic() >= deadline:
                return proc.fatal(f"Error: failed to retrieve agent configuration: {exc}")
        _sleep(RETRY_INTERVAL, lambda: stopping)
    if stopping:
        return 0
    # Kept images are imported only once the server gave the agent its configuration: k3s-io/k3s
    # pkg/agent/run.go Run validates the token against the server (createProxyAndValidateToken,
    # retried every 2 s), run() gets the agent configuration (config.Get), and only then starts
    # containerd, which imports agent/images (pkg/agent/containerd/containerd.go Run →
    # preloadImages) before the kubelet runs. An agent started before its server answers
    # therefore gains no import time.
    images.preload(fs, cfg.data_dir, lab.scenario.images, lab.scenario.time_scale)
    proc.info(f"Node {cfg.node_name} registered with server https://{client.host}:{client.port}")
    proc.sd_notify("READY=1")

    never_ready = cfg.node_name in scenario.never_ready
    ready_at = time.monotonic() + scenario.delay_for(cfg.node_name)
    reported_ready = False
    while not stopping:
        ready = not never_ready and time.monotonic() >= ready_at
        wait = HEARTBEAT_INTERVAL
        if not ready and not never_ready:
            wait = max(0.01, min(HEARTBEAT_INTERVAL, ready_at - time.monotonic()))
        if ready != reported_ready or ready:
            try:
                status, payload = client.post("/v1-k3s/lab/heartbeat", _registration(cfg, password, ready))
                if status == 200:
                    # What the kubelet pulled since stays in containerd's store, as on a real node.
                    images.record_pulled(fs, cfg.data_dir, [str(i) for i in payload.get("images") or []])
                    if ready and not reported_ready:
                        proc.info(f"Node {cfg.node_name} is Ready")
                    reported_ready = ready
                elif status == 404:
                    # The kubelet registers its Node again; the supervisor's join (which also
                    # stores the node password) only happens when the agent starts.
                    proc.info(f"Node {cfg.node_name} not found on the server; registering it again")
                    client.post("/v1-k3s/lab/heartbeat", {**_registration(cfg, password, False), "register": True})
                    reported_ready = False
                else:
                    proc.error(f"Failed to update node status: {payload.get('message') or status}")
            except Unreachable as exc:
                proc.error(f"Failed to update node status: {exc}")
        _sleep(wait, lambda: stopping)
    proc.info("Received SIGTERM, shutting down")
    return 0


def _sleep(seconds: float, stop) -> None:
    end = time.monotonic() + seconds
    while not stop() and time.monotonic() < end:
        time.sleep(min(0.1, max(0.0, end - time.monotonic())))
