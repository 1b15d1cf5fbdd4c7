"""``k3s server``: the lab API on the node's address, plus what K3s does around it.

On start, like K3s: reuse or create the cluster CAs and token (``server/token``,
``server/node-token``), open the datastore (``server/db/state.db``, or
``server/db/etcd/`` with embedded etcd), serve the API and the supervisor endpoints on
``<node address>:6443``, write ``/etc/rancher/k3s/k3s.yaml``, register this node (node
password rule included), deploy the kube-system workloads, start the simulated Flux
controllers (a server whose controllers fail to import does not start), and tell the unit
manager it is ready.

A server started with ``--server https://<first>:6443`` joins the first one: it gets the
cluster CAs with the server token and forwards its API port to the first server, so
every server address answers the same API (the first's certificate names every lab
node address). Scenario faults of the API (refused connections, 503 windows, watch
expiry) are played here through the API server's fault switch.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import time
from pathlib import Path
from typing import Any, Callable

from aiohttp import web

from drtool.errors import DrtoolError
from drtool.kube import apisurface
from drtool.lab.api import Store
from drtool.lab.api.certs import LabPki
from drtool.lab.api.objects import now_rfc3339
from drtool.lab.api.server import LabApiServer
from drtool.lab.api.status import ApiError
from drtool.lab.k3s import images
from drtool.lab.k3s import K3S_COMMIT, K3S_VERSION, datastore, nodes, proc, supervisor, system_pods
from drtool.lab.k3s.flags import ServerConfig, kubeconfig_mode
from drtool.lab.k3s.labconfig import K3sScenario, LabConfig
from drtool.lab.k3s.rootfs import NODE_PASSWORD, RootFS
from drtool.lab.k3s.tokens import Token, TokenError, accepts, ca_mismatch_message, parse_token, server_token

MONITOR_INTERVAL = 1.0
BASE_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class StartupError(Exception):
    """A fatal startup problem; the message is what K3s would log."""


class K3sApiServer(LabApiServer):
    """The lab API server with K3s's supervisor endpoints on the same port."""

    def __init__(self, *args: Any, cluster: "ClusterState", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.cluster = cluster

    def _authenticate(self, request: web.Request) -> str | None:
        # Supervisor requests carry the join token; their handlers check it themselves.
        if supervisor.handles(request.path):
            return "k3s-supervisor"
        return super()._authenticate(request)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if supervisor.handles(request.path):
            return await supervisor.handle(request, self.cluster)
        return await super()._dispatch(request)


class ClusterState:
    """Node registration, heartbeats and node passwords, over the store."""

    def __init__(self, store: Store, pki: LabPki, pki_dir: Path, token: Token, agent_secret: str,
                 scenario: K3sScenario):
        self.store, self.pki, self.pki_dir = store, pki, pki_dir
        self.token, self.agent_secret = token, agent_secret
        self.scenario = scenario
        self._last_seen: dict[str, float] = {}
        now = time.monotonic()
        # After a restart, known nodes get a full grace period to report again.
        for node in store.list("", "Node"):
            self._last_seen[node["metadata"]["name"]] = now

    @property
    def ca_pem(self) -> bytes:
        return self.pki.ca_pem

    def role_for(self, password: str) -> str | None:
        """``server`` for the cluster token's secret, ``agent`` for the agent token's, else None."""
        if accepts(password, self.token.password):
            return "server"
        if accepts(password, self.agent_secret):
            return "agent"
        return None

    def bootstrap_files(self) -> dict[str, str]:
        """The cluster CAs a joining server needs (base64 by file name)."""
        return {name: base64.b64encode((self.pki_dir / name).read_bytes()).decode() for name in datastore.CA_FILES}

    def join(self, spec: nodes.NodeSpec, password: str, node_args: str = "", local: bool = False) -> nodes.JoinVerdict:
        """Register (or re-register) ``spec`` if its node password is right.

        ``local``: the server's own node. K3s (v1.31 pkg/nodepassword/validate.go,
        verifyLocalPassword) checks it against ``/etc/rancher/node/password`` on this
        machine, then checks the Secret later only to report: a mismatch (a restored
        datastore) is a Warning event ``NodePasswordValidationFailed``, not a rejection.
        """
        secret = self.store.get("", "Secret", nodes.SECRET_NAMESPACE, nodes.secret_name(spec.name))
        verdict = nodes.check_node_password(spec.name, password, secret)
        if not verdict.accepted and local and password:
            proc.info(f"Password verified locally for node {spec.name}")
            self._node_event(spec.name, "Warning", "NodePasswordValidationFailed",
                             f"Deferred node password secret validation failed: {verdict.server_log}")
            verdict = nodes.JoinVerdict(True)
        if not verdict.accepted:
            proc.error(verdict.server_log)
            return verdict
        if verdict.create_secret:
            self.store.create(nodes.password_secret(spec.name, password))
        now = now_rfc3339()
        existing = self.store.get("", "Node", None, spec.name)
        if existing is None:
            index = len(self.store.list("", "Node"))
            self.store.create(nodes.node_object(spec, nodes.pod_cidr(index), now, node_args))
            proc.info(f"Node {spec.name} registered ({spec.role}, {spec.address})")
        else:
            self.store.update(nodes.apply_registration(existing, spec))
        self._set_images(spec.name, list(spec.images))
        self._last_seen[spec.name] = time.monotonic()
        return verdict

    def _set_images(self, name: str, refs: list[str]) -> None:
        node = self.store.peek("", "Node", None, name)
        if node is None:
            return
        wanted = nodes.node_images(refs, self.image_size)
        if (node.get("status") or {}).get("images", []) == wanted:
            return
        status = dict(node.get("status") or {})
        status["images"] = wanted
        self.store.update_status("", "Node", None, name, status)

    def image_size(self, ref: str) -> int:
        costs = getattr(self.scenario, "images", None)
        return costs.size_bytes(ref) if costs is not None else 0

    def sync_images(self, name: str, reported: tuple[str, ...]) -> list[str]:
        """Merge what the node's runtime holds with what its kubelet pulled since (the lab's pod
        simulation adds pulls to ``Node.status.images``); returns every image name the Node lists."""
        node = self.store.peek("", "Node", None, name)
        if node is None:
            return list(reported)
        merged = sorted(nodes.image_names(node) | set(reported))
        self._set_images(name, merged)
        return merged

    def _node_event(self, node: str, type_: str, reason: str, message: str) -> None:
        now = now_rfc3339()
        self.store.create({
            "apiVersion": "v1", "kind": "Event", "type": type_, "reason": reason, "message": message,
            "metadata": {"generateName": f"{node}.", "namespace": "default"},
            "involvedObject": {"kind": "Node", "name": node, "uid": node, "namespace": ""},
            "source": {"component": "k3s-supervisor"}, "firstTimestamp": now, "lastTimestamp": now, "count": 1})

    def register_again(self, spec: nodes.NodeSpec, password: str) -> tuple[int, str]:
        """A running kubelet recreates its deleted Node object: ``(200, "")`` or an error status.

        Unlike ``join``, no node-password Secret is created: K3s writes that Secret only
        when an agent starts and asks the supervisor for its kubelet certificates. So a
        node deleted and then wiped joins again with a fresh password even if its old
        kubelet re-registered in between.
        """
        secret = self.store.get("", "Secret", nodes.SECRET_NAMESPACE, nodes.secret_name(spec.name))
        if not nodes.check_node_password(spec.name, password, secret).accepted:
            return 403, nodes.PASSWORD_REJECTED
        if self.store.peek("", "Node", None, spec.name) is None:
            index = len(self.store.list("", "Node"))
            self.store.create(nodes.node_object(spec, nodes.pod_cidr(index), now_rfc3339()))
            proc.info(f"Node {spec.name} registered again by its kubelet ({spec.role}, {spec.address})")
        self._last_seen[spec.name] = time.monotonic()
        return 200, ""

    def heartbeat(self, name: str, password: str, ready: bool) -> tuple[int, str]:
        node = self.store.peek("", "Node", None, name)
        if node is None:
            return 404, f'nodes "{name}" not found'
        secret = self.store.get("", "Secret", nodes.SECRET_NAMESPACE, nodes.secret_name(name))
        if not nodes.check_node_password(name, password, secret).accepted:
            return 403, nodes.PASSWORD_REJECTED
        self._last_seen[name] = time.monotonic()
        self.set_ready(name, "True" if ready else "False")
        return 200, ""

    def set_ready(self, name: str, state: str) -> None:
        """Write the Node's conditions only when Ready changes (a kubelet uses Leases in between)."""
        node = self.store.peek("", "Node", None, name)
        if node is None or nodes.ready_state(node) == state:
            return
        status = dict(node.get("status") or {})
        status["conditions"] = nodes.node_conditions(state, now_rfc3339())
        self.store.update_status("", "Node", None, name, status)
        proc.info(f"Node {name} Ready={state}")

    def forget(self, name: str) -> None:
        self._last_seen.pop(name, None)

    def stale_nodes(self, now: float) -> list[str]:
        grace = self.scenario.node_monitor_grace
        return [n for n, seen in self._last_seen.items() if now - seen > grace]


async def _monitor_nodes(cluster: ClusterState, own_node: str,
                         own_images: Callable[[], None] | None = None) -> None:
    """Mark nodes that stopped posting status as Unknown, like the node lifecycle controller.

    ``own_images`` keeps this server's own image store in step with its Node's pulls."""
    while True:
        await asyncio.sleep(MONITOR_INTERVAL)
        cluster._last_seen[own_node] = time.monotonic()
        if own_images is not None:
            try:
                own_images()
            except (ApiError, OSError) as exc:
                proc.error(f"Failed to update node images: {exc}")
        for name in cluster.stale_nodes(time.monotonic()):
            try:
                cluster.set_ready(name, "Unknown")
            except ApiError:
                cluster.forget(name)


async def _clean_up_deleted_nodes(store: Store, cluster: ClusterState) -> None:
    """Deleting a Node deletes its node-password Secret (K3s's node controller does this)."""
    queue = store.subscribe(copy=False)
    try:
        while True:
            type_, obj = await queue.get()
            if type_ == "DELETED" and obj.get("kind") == "Node" and obj.get("apiVersion") == "v1":
                name = obj["metadata"]["name"]
                cluster.forget(name)
                store.delete("", "Secret", nodes.SECRET_NAMESPACE, nodes.secret_name(name))
    finally:
        store.unsubscribe(queue)


def k3s_crds() -> list[dict[str, Any]]:
    """The CRDs a K3s v1.31 server registers at start (k3s ``pkg/crd/crds.go``: Addon,
    ETCDSnapshotFile; k3s-io/helm-controller ``pkg/crd/crds.go``: HelmChart, HelmChartConfig)."""
    return [res.crd() for res in apisurface.k3s_resources()]


def _ensure_base_objects(store: Store) -> None:
    for crd in k3s_crds():
        if store.peek("apiextensions.k8s.io", "CustomResourceDefinition", None, crd["metadata"]["name"]) is None:
            store.create(crd)
    for ns in BASE_NAMESPACES:
        if store.peek("", "Namespace", None, ns) is None:
            store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    if store.peek("", "Service", "default", "kubernetes") is None:
        store.create({"apiVersion": "v1", "kind": "Service",
                      "metadata": {"name": "kubernetes", "namespace": "default",
                                   "labels": {"component": "apiserver", "provider": "kubernetes"}},
                      "spec": {"clusterIP": "10.43.0.1", "type": "ClusterIP",
                               "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}})


async def _deploy_system_workloads(store: Store, cfg: ServerConfig, address: str, wait_ready,
                                   simulate_pods: bool) -> None:
    """Create kube-system workloads; Job pods (and, without controllers, all pods) finish once this node is Ready."""
    workloads = system_pods.enabled_workloads(cfg.disable)
    jobs = system_pods.helm_jobs(cfg.disable)
    for w in workloads:
        if store.peek("apps", "Deployment", system_pods.NAMESPACE, w.name) is None:
            store.create(system_pods.deployment(w))
    for job in jobs:
        if store.peek("batch", "Job", system_pods.NAMESPACE, job) is None:
            store.create(system_pods.helm_job(job))
    await wait_ready()
    now = now_rfc3339()
    for job in jobs:
        pod = system_pods.completed_job_pod(job, cfg.node_name, address, now)
        if store.peek("", "Pod", system_pods.NAMESPACE, pod["metadata"]["name"]) is None:
            store.create(pod)
        store.update_status("batch", "Job", system_pods.NAMESPACE, job, system_pods.job_complete_status(now))
    if not simulate_pods:
        return
    for i, w in enumerate(workloads):
        pod = system_pods.running_pod(w, cfg.node_name, address, now, i)
        if store.peek("", "Pod", system_pods.NAMESPACE, pod["metadata"]["name"]) is None:
            store.create(pod)
        dep = store.peek("apps", "Deployment", system_pods.NAMESPACE, w.name)
        if dep is not None:
            store.update_status("apps", "Deployment", system_pods.NAMESPACE, w.name,
                                system_pods.deployment_status(dep["metadata"].get("generation", 1), True, now))


def _write_private(path: Path, text: str, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, mode)


def _resolve_token(cfg: ServerConfig, token_file: Path) -> str:
    """The secret to use: the stored one (a given token must match it) or the given one."""
    stored = token_file.read_text().strip() if token_file.exists() else ""
    if stored:
        try:
            stored_secret = parse_token(stored).password
        except TokenError:
            stored_secret = ""
        if cfg.token:
            try:
                given = parse_token(cfg.token).password
            except TokenError as exc:
                raise StartupError(f"Error: failed to normalize server token: {exc}") from exc
            if stored_secret and given != stored_secret:
                raise StartupError("starting kubernetes: preparing server: bootstrap data already found and "
                                   "encrypted with different token")
        return stored_secret
    if cfg.token:
        try:
            return parse_token(cfg.token).password
        except TokenError as exc:
            raise StartupError(f"Error: failed to normalize server token: {exc}") from exc
    return ""


def _fetch_cluster_cas(cfg: ServerConfig, tls_dir: Path) -> None:
    """A joining server gets the cluster CAs from the first server (pinned by the token)."""
    from drtool.lab.k3s.agent import JoinRejected, SupervisorClient, Unreachable
    if not cfg.token:
        raise StartupError("--token is required when joining a server")
    try:
        token = parse_token(cfg.token)
        client = SupervisorClient(cfg.server_url, "server", token.password)
        deadline = time.monotonic() + 30
        while True:
            try:
                ca = client.cacerts()
                break
            except Unreachable as exc:
                if time.monotonic() > deadline:
                    raise StartupError(f"failed to get CA certs: {exc}") from exc
                proc.info(f"Waiting for the first server: {exc}")
                time.sleep(1)
        mismatch = ca_mismatch_message(token, ca)
        if mismatch:
            raise StartupError(mismatch)
        client.trust(ca)
        conn_status, payload = client.get("/v1-k3s/lab/bootstrap")
    except (TokenError, JoinRejected, Unreachable, ValueError) as exc:
        raise StartupError(f"failed to get bootstrap data from {cfg.server_url}: {exc}") from exc
    if conn_status != 200:
        raise StartupError(f"failed to get bootstrap data from {cfg.server_url}: {conn_status} Unauthorized")
    tls_dir.mkdir(parents=True, exist_ok=True)
    for name, b64 in payload.items():
        if name in datastore.CA_FILES:
            (tls_dir / name).write_bytes(base64.b64decode(b64))
            os.chmod(tls_dir / name, 0o600)


async def _proxy_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int) -> None:
    try:
        up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    except (OSError, asyncio.TimeoutError):
        writer.close()
        return

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            dst.close()
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def _start_controllers(store: Store, lab: LabConfig) -> Any:
    # The controllers are part of the lab: if they cannot be imported the server must fail to
    # start (loudly, in the unit's log), not serve a cluster where no Flux object ever reconciles.
    from drtool.lab.controllers import start_controllers

    return await start_controllers(store, lab.raw)


async def run(cfg: ServerConfig, fs: RootFS, lab: LabConfig) -> int:
    """Serve until SIGTERM. Returns the process exit status."""
    proc.info(f"Starting k3s {K3S_VERSION} ({K3S_COMMIT})")
    address = cfg.listen_address or lab.own_address(cfg.node_name) or "127.0.0.1"
    base = fs.path(cfg.data_dir)
    server_dir, tls_dir = base / "server", base / "server" / "tls"
    token_file = server_dir / "token"
    joining = bool(cfg.server_url)
    try:
        secret = _resolve_token(cfg, token_file)
        if cfg.cluster_reset:
            return _cluster_reset(cfg, fs, secret)
        if joining and not (tls_dir / "server-ca.key").exists():
            _fetch_cluster_cas(cfg, tls_dir)
    except StartupError as exc:
        return proc.fatal(str(exc))
    except datastore.SnapshotError as exc:
        return proc.fatal(str(exc))

    # The first (or only) server reconciles with its datastore; a joining server gets the CAs
    # over HTTP from the first one (_fetch_cluster_cas).
    keeps_bootstrap = not joining
    try:
        stored_bootstrap = keeps_bootstrap and datastore.reconcile_bootstrap(fs, cfg.data_dir, cfg.embedded_etcd, secret)
    except datastore.SnapshotError as exc:
        return proc.fatal(str(exc))
    sans = (address, cfg.node_name, *cfg.tls_sans, *lab.addresses)
    pki = LabPki.load_or_create(tls_dir, sans)
    token = server_token(pki.ca_pem, secret or (cfg.token if cfg.token else ""))
    if keeps_bootstrap and not stored_bootstrap:
        datastore.save_bootstrap(fs, cfg.data_dir, cfg.embedded_etcd, token.password)
    _write_private(token_file, token.full() + "\n")
    node_token = server_dir / "node-token"
    if node_token.is_symlink() or node_token.exists():
        node_token.unlink()
    node_token.symlink_to("token")
    agent_secret = parse_token(cfg.agent_token).password if cfg.agent_token else ""
    if agent_secret:
        _write_private(server_dir / "agent-token", token.full().replace(f"::server:{token.password}",
                                                                         f"::node:{agent_secret}") + "\n")
    password = proc.read_or_create_secret_file(fs.path(NODE_PASSWORD), nodes.new_password)

    etcd = cfg.embedded_etcd
    state_file = datastore.state_path(fs, cfg.data_dir, etcd)
    if etcd:
        (base / datastore.ETCD_DIR).mkdir(parents=True, exist_ok=True)
        proc.info(f"Managed etcd cluster {'initializing' if cfg.cluster_init and not joining else 'joining'}")
    else:
        proc.info(f"Configuring sqlite3 database connection pooling: {cfg.data_dir}/{datastore.SQLITE_FILE}")
    state_file.parent.mkdir(parents=True, exist_ok=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks: list[asyncio.Task] = []
    api: K3sApiServer | None = None
    controllers: Any = None
    proxy: asyncio.AbstractServer | None = None
    kubeconfig_server = f"https://127.0.0.1:{cfg.https_port}"
    spec = nodes.NodeSpec(cfg.node_name, address, "server", cfg.labels, cfg.taints, etcd=etcd,
                          images=tuple(images.held(fs, cfg.data_dir)))
    # The server's own agent imports agent/images while the API already answers: k3s-io/k3s
    # pkg/cli/server/server.go run() starts the server (StartServer), notifies systemd READY=1
    # once the API server is ready, and runs the agent (agent.Run: containerd, which preloads
    # agent/images, then the kubelet) alongside; the node turns Ready only after its import.
    preloaded = asyncio.create_task(asyncio.to_thread(
        images.preload, fs, cfg.data_dir, lab.scenario.images, lab.scenario.time_scale))
    try:
        if joining:
            from urllib.parse import urlsplit
            first = urlsplit(cfg.server_url)
            proxy = await asyncio.start_server(
                lambda r, w: _proxy_connection(r, w, first.hostname or "", first.port or 6443),
                address, cfg.https_port, reuse_address=True)
            proc.info(f"Forwarding {address}:{cfg.https_port} to the cluster at {cfg.server_url}")
            tasks.append(asyncio.create_task(_join_as_server(cfg, spec, token, password, lab, stop, preloaded)))
        else:
            store = Store(persist_path=str(state_file))
            cluster = ClusterState(store, pki, tls_dir, token, agent_secret, lab.scenario)
            api = K3sApiServer(address, cfg.https_port, store=store, pki=pki, version=K3S_VERSION, cluster=cluster)
            await api.start()
            proc.info(f"Running kube-apiserver on https://{address}:{cfg.https_port}")
            _ensure_base_objects(store)
            store.flush()           # the datastore file exists from the start, as K3s's does
            verdict = cluster.join(spec, password, json.dumps(["server", *cfg.disable]), local=True)
            node_ready = asyncio.Event()

            def own_images() -> None:
                # This server's kubelet: report its runtime's images, keep what it pulled.
                refs = cluster.sync_images(cfg.node_name, tuple(images.held(fs, cfg.data_dir)))
                images.record_pulled(fs, cfg.data_dir, refs)

            if verdict.accepted:
                tasks.append(asyncio.create_task(_own_node_ready(cluster, cfg.node_name, lab.scenario, node_ready,
                                                                 preloaded, own_images)))
            else:
                proc.info(f"Waiting to retrieve agent configuration; server is not ready: {verdict.agent_error}")
            tasks.append(asyncio.create_task(_monitor_nodes(cluster, cfg.node_name, own_images)))
            tasks.append(asyncio.create_task(_clean_up_deleted_nodes(store, cluster)))
            controllers = await _start_controllers(store, lab)
            if controllers is not None:
                proc.info("Started the Flux controllers")
            tasks.append(asyncio.create_task(_deploy_system_workloads(
                store, cfg, address, lambda: _after(node_ready, lab.scenario.system_pods_delay),
                simulate_pods=controllers is None)))
        mode = kubeconfig_mode(cfg.kubeconfig_mode)
        kubeconfig = fs.path(cfg.kubeconfig_path)
        import yaml
        _write_private(kubeconfig, yaml.safe_dump(pki.kubeconfig(kubeconfig_server), sort_keys=False), mode)
        proc.info(f"Wrote kubeconfig {cfg.kubeconfig_path}")
        proc.info("k3s is up and running")
        proc.sd_notify("READY=1")
        if api is not None:
            _schedule_faults(api, lab.scenario, tasks)
        await stop.wait()
        proc.info("Received SIGTERM, shutting down")
    except OSError as exc:
        return proc.fatal(f"starting kubernetes: preparing server: {exc}")
    except DrtoolError as exc:
        return proc.fatal(f"starting kubernetes: {exc}")
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(preloaded, return_exceptions=True)   # a thread: it ends on its own
        if controllers is not None:
            await controllers.stop()
        if proxy is not None:
            proxy.close()
        if api is not None:
            await api.stop()
    return 0


async def _after(event: asyncio.Event, delay: float) -> None:
    await event.wait()
    await asyncio.sleep(delay)


async def _own_node_ready(cluster: ClusterState, name: str, scenario: K3sScenario, ready: asyncio.Event,
                          preloaded: "asyncio.Future[Any] | None" = None,
                          own_images: Callable[[], None] | None = None) -> None:
    if preloaded is not None:       # the kubelet starts once containerd imported agent/images
        await asyncio.gather(preloaded, return_exceptions=True)
        if own_images is not None:
            try:
                own_images()
            except (ApiError, OSError) as exc:
                proc.error(f"Failed to update node images: {exc}")
    if name in scenario.never_ready:
        return
    await asyncio.sleep(scenario.delay_for(name))
    cluster.set_ready(name, "True")
    ready.set()


def _schedule_faults(api: K3sApiServer, scenario: K3sScenario, tasks: list[asyncio.Task]) -> None:
    async def play() -> None:
        start = time.monotonic()
        if scenario.api_refuse_after_start:
            proc.info(f"scenario: refusing API connections for {scenario.api_refuse_after_start}s")
            await api.refuse_connections(scenario.api_refuse_after_start)
        steps = []
        if scenario.api_503_window:
            steps.append((scenario.api_503_window[0], "503"))
        if scenario.api_expire_watch_at is not None:
            steps.append((scenario.api_expire_watch_at, "expire"))
        for at, what in sorted(steps):
            await asyncio.sleep(max(0.0, start + at - time.monotonic()))
            if what == "503":
                proc.info(f"scenario: answering 503 for {scenario.api_503_window[1]}s")
                api.fail_requests(seconds=scenario.api_503_window[1])
            else:
                proc.info("scenario: expiring watches")
                api.expire_watches()
    tasks.append(asyncio.create_task(play()))


async def _join_as_server(cfg: ServerConfig, spec: nodes.NodeSpec, token: Token, password: str,
                          lab: LabConfig, stop: asyncio.Event, preloaded: "asyncio.Future[Any] | None" = None) -> None:
    """A joined server registers its node through the first server (once its own import is done)
    and keeps it alive."""
    if preloaded is not None:
        await asyncio.gather(preloaded, return_exceptions=True)
    from drtool.lab.k3s.agent import JoinRejected, SupervisorClient, Unreachable, _registration
    client = SupervisorClient(cfg.server_url, "server", token.password)

    def register() -> None:
        client.trust(client.cacerts())
        body = {**_registration(cfg, password, False), "role": "server", "etcd": True, "address": spec.address}
        status, payload = client.post("/v1-k3s/lab/join", body)
        if status != 200:
            raise JoinRejected(payload.get("message") or str(status))

    while not stop.is_set():
        try:
            await asyncio.to_thread(register)
            break
        except (JoinRejected, Unreachable) as exc:
            proc.info(f"Waiting to retrieve agent configuration; server is not ready: {exc}")
            await asyncio.sleep(1)
    await asyncio.sleep(lab.scenario.delay_for(cfg.node_name))
    body = {**_registration(cfg, password, True), "role": "server", "etcd": True, "address": spec.address}
    while not stop.is_set():
        try:
            await asyncio.to_thread(client.post, "/v1-k3s/lab/heartbeat", body)
        except Unreachable as exc:
            proc.error(f"Failed to update node status: {exc}")
        await asyncio.sleep(2)


def _cluster_reset(cfg: ServerConfig, fs: RootFS, secret: str) -> int:
    """``--cluster-reset [--cluster-reset-restore-path]``: restore, then tell the operator to restart."""
    if cfg.restore_path:
        if not secret:
            return proc.fatal("starting kubernetes: preparing server: token is required to restore a snapshot")
        datastore.restore_snapshot(fs, cfg.data_dir, cfg.restore_path, secret)
        proc.info(f"Restoring etcd snapshot from {cfg.restore_path}")
    else:
        (fs.path(cfg.data_dir) / datastore.ETCD_DIR).mkdir(parents=True, exist_ok=True)
    proc.info("Managed etcd cluster membership has been reset, restart without --cluster-reset flag now. "
              "Backup and delete ${datadir}/server/db on each peer etcd server and rejoin the nodes")
    return 0
