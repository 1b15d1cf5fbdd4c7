"""Command-line flags of ``k3s server`` and ``k3s agent``, parsed into frozen configs.

The real binary uses urfave/cli: ``--flag value`` and ``--flag=value`` both work, list
flags repeat, ``--disable`` also takes comma lists (of any names), and an unknown flag stops the program
with ``flag provided but not defined``. Environment variables (``K3S_TOKEN``, ``K3S_URL``,
...) fill in what the flags leave out, as they do for the unit's ``.service.env`` file.
Everything here is pure so it is table-tested without processes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from drtool.lab.k3s.rootfs import DATA_DIR


class UsageError(Exception):
    """Bad command line; the message reads like the real binary's."""


# name -> (kind, aliases); kind is "bool", "str" or "list".
_COMMON: dict[str, tuple[str, tuple[str, ...]]] = {
    "token": ("str", ("t",)),
    "token-file": ("str", ()),
    "server": ("str", ("s",)),
    "node-name": ("str", ()),
    "node-ip": ("str", ("i",)),
    "node-external-ip": ("str", ()),
    "node-label": ("list", ()),
    "node-taint": ("list", ()),
    "data-dir": ("str", ("d",)),
    "debug": ("bool", ()),
    "kubelet-arg": ("list", ()),
    "kube-proxy-arg": ("list", ()),
    "with-node-id": ("bool", ()),
    "flannel-iface": ("str", ()),
    "resolv-conf": ("str", ()),
    "protect-kernel-defaults": ("bool", ()),
    "selinux": ("bool", ()),
    "pause-image": ("str", ()),
    "snapshotter": ("str", ()),
    "lb-server-port": ("str", ()),
}
_SERVER_ONLY: dict[str, tuple[str, tuple[str, ...]]] = {
    "agent-token": ("str", ()),
    "agent-token-file": ("str", ()),
    "disable": ("list", ()),
    "tls-san": ("list", ()),
    "cluster-init": ("bool", ()),
    "cluster-reset": ("bool", ()),
    "cluster-reset-restore-path": ("str", ()),
    "bind-address": ("str", ()),
    "advertise-address": ("str", ()),
    "advertise-port": ("str", ()),
    "https-listen-port": ("str", ()),
    "write-kubeconfig": ("str", ("o",)),
    "write-kubeconfig-mode": ("str", ()),
    "cluster-cidr": ("str", ()),
    "service-cidr": ("str", ()),
    "cluster-dns": ("str", ()),
    "cluster-domain": ("str", ()),
    "flannel-backend": ("str", ()),
    "disable-network-policy": ("bool", ()),
    "disable-cloud-controller": ("bool", ()),
    "disable-helm-controller": ("bool", ()),
    "disable-kube-proxy": ("bool", ()),
    "secrets-encryption": ("bool", ()),
    "etcd-disable-snapshots": ("bool", ()),
    "etcd-snapshot-dir": ("str", ()),
    "etcd-snapshot-retention": ("str", ()),
    "etcd-snapshot-schedule-cron": ("str", ()),
    "datastore-endpoint": ("str", ()),
    "kube-apiserver-arg": ("list", ()),
    "kube-controller-manager-arg": ("list", ()),
    "kube-scheduler-arg": ("list", ()),
    "etcd-arg": ("list", ()),
    "default-local-storage-path": ("str", ()),
    "embedded-registry": ("bool", ()),
}

def flag_names(server: bool) -> set[str]:
    """Every flag name and alias of ``k3s server`` (or ``agent``), for config-file keys."""
    spec = {**_COMMON, **_SERVER_ONLY} if server else _COMMON
    return {n for name, (_, aliases) in spec.items() for n in (name, *aliases)}


#: Components ``--disable`` accepts, and the kube-system objects each one owns.
PACKAGED_COMPONENTS = ("coredns", "servicelb", "traefik", "local-storage", "metrics-server", "runtimes")


@dataclass(frozen=True)
class Taint:
    key: str
    value: str
    effect: str

    @classmethod
    def parse(cls, text: str) -> "Taint":
        """``key=value:Effect`` or ``key:Effect`` → Taint; raises UsageError otherwise."""
        body, sep, effect = text.rpartition(":")
        if not sep or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute") or not body:
            raise UsageError(f"invalid taint {text!r}: expected key=value:NoSchedule|PreferNoSchedule|NoExecute")
        key, _, value = body.partition("=")
        return cls(key, value, effect)

    def as_api(self) -> dict[str, str]:
        out = {"key": self.key, "effect": self.effect}
        if self.value:
            out["value"] = self.value
        return out


def parse_labels(items: tuple[str, ...]) -> dict[str, str]:
    """``("a=b", "c=")`` → ``{"a": "b", "c": ""}``; a label needs ``=``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"invalid node label {item!r}: expected key=value")
        out[key] = value
    return out


@dataclass(frozen=True)
class NodeConfig:
    """What server and agent share: who the node is and how it joins."""

    node_name: str
    node_ip: str
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    token: str = ""                 # the raw token text, never logged
    server_url: str = ""
    data_dir: str = DATA_DIR
    debug: bool = False


@dataclass(frozen=True)
class ServerConfig(NodeConfig):
    """``k3s server``: the node plus the control-plane options the lab honours."""

    agent_token: str = ""
    disable: tuple[str, ...] = ()
    tls_sans: tuple[str, ...] = ()
    cluster_init: bool = False
    cluster_reset: bool = False
    restore_path: str = ""
    bind_address: str = ""
    https_port: int = 6443
    kubeconfig_path: str = "/etc/rancher/k3s/k3s.yaml"
    kubeconfig_mode: str = ""
    etcd_snapshot_dir: str = ""

    @property
    def embedded_etcd(self) -> bool:
        """Embedded etcd when initialising a cluster or joining another server."""
        return self.cluster_init or bool(self.server_url)

    @property
    def listen_address(self) -> str:
        return self.bind_address or self.node_ip


@dataclass(frozen=True)
class AgentConfig(NodeConfig):
    """``k3s agent``: needs a server URL and a token."""


def _parse(argv: list[str], spec: dict[str, tuple[str, tuple[str, ...]]]) -> tuple[dict[str, object], list[str]]:
    by_name: dict[str, tuple[str, str]] = {}
    for name, (kind, aliases) in spec.items():
        for n in (name, *aliases):
            by_name[n] = (name, kind)
    values: dict[str, object] = {}
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            continue
        raw = arg.lstrip("-")
        name, eq, inline = raw.partition("=")
        if name not in by_name:
            raise UsageError(f"flag provided but not defined: -{name}")
        canonical, kind = by_name[name]
        if kind == "bool":
            values[canonical] = inline.lower() not in ("false", "0") if eq else True
            continue
        if eq:
            value = inline
        elif i < len(argv):
            value = argv[i]
            i += 1
        else:
            raise UsageError(f"flag needs an argument: -{name}")
        if kind == "list":
            values.setdefault(canonical, [])
            values[canonical].append(value)  # type: ignore[union-attr]
        else:
            values[canonical] = value
    return values, positional


def _read_token_file(path: str, read_file) -> str:
    try:
        return read_file(path).strip()
    except OSError as exc:
        raise UsageError(f"failed to read token file {path}: {exc.strerror}") from exc


def _node_common(values: dict[str, object], env: Mapping[str, str], hostname: str, read_file) -> dict[str, object]:
    token = str(values.get("token") or env.get("K3S_TOKEN", ""))
    token_file = str(values.get("token-file") or env.get("K3S_TOKEN_FILE", ""))
    if not token and token_file:
        token = _read_token_file(token_file, read_file)
    labels = tuple(values.get("node-label", [])) + tuple(
        x for x in env.get("K3S_NODE_LABEL", "").split(",") if x)
    taints = tuple(values.get("node-taint", [])) + tuple(
        x for x in env.get("K3S_NODE_TAINT", "").split(",") if x)
    return {
        "node_name": str(values.get("node-name") or env.get("K3S_NODE_NAME") or hostname),
        "node_ip": str(values.get("node-ip") or env.get("K3S_NODE_IP", "")),
        "labels": parse_labels(labels),
        "taints": tuple(Taint.parse(t) for t in taints),
        "token": token,
        "server_url": str(values.get("server") or env.get("K3S_URL", "")),
        "data_dir": str(values.get("data-dir") or env.get("K3S_DATA_DIR") or DATA_DIR),
        "debug": bool(values.get("debug")),
    }


def parse_server(argv: list[str], env: Mapping[str, str], hostname: str,
                 read_file=lambda p: open(p, encoding="utf-8").read()) -> ServerConfig:
    """Parse ``k3s server`` arguments (after the word ``server``) with the unit's env."""
    values, positional = _parse(argv, {**_COMMON, **_SERVER_ONLY})
    if positional:
        raise UsageError(f"unexpected argument {positional[0]!r}")
    common = _node_common(values, env, hostname, read_file)
    disable: list[str] = []
    for item in values.get("disable", []):  # type: ignore[union-attr]
        disable.extend(x.strip() for x in str(item).split(",") if x.strip())
    # k3s-io/k3s v1.31 pkg/cli/server/server.go: every --disable word becomes a skipped manifest
    # name (ControlConfig.Skips) without validation, so custom addon names are accepted too.
    agent_token = str(values.get("agent-token") or env.get("K3S_AGENT_TOKEN", ""))
    if not agent_token and (values.get("agent-token-file") or env.get("K3S_AGENT_TOKEN_FILE")):
        agent_token = _read_token_file(str(values.get("agent-token-file") or env["K3S_AGENT_TOKEN_FILE"]), read_file)
    port = str(values.get("https-listen-port") or "6443")
    if not port.isdigit():
        raise UsageError(f"invalid value {port!r} for flag -https-listen-port")
    tls_sans: list[str] = []
    for item in values.get("tls-san", []):  # type: ignore[union-attr]
        tls_sans.extend(x.strip() for x in str(item).split(",") if x.strip())
    return ServerConfig(
        **common,  # type: ignore[arg-type]
        agent_token=agent_token,
        disable=tuple(dict.fromkeys(disable)),
        tls_sans=tuple(tls_sans),
        cluster_init=bool(values.get("cluster-init")) or env.get("K3S_CLUSTER_INIT", "").lower() == "true",
        cluster_reset=bool(values.get("cluster-reset")) or env.get("K3S_CLUSTER_RESET", "").lower() == "true",
        restore_path=str(values.get("cluster-reset-restore-path") or ""),
        bind_address=str(values.get("bind-address") or ""),
        https_port=int(port),
        kubeconfig_path=str(values.get("write-kubeconfig") or env.get("K3S_KUBECONFIG_OUTPUT")
                            or "/etc/rancher/k3s/k3s.yaml"),
        kubeconfig_mode=str(values.get("write-kubeconfig-mode") or env.get("K3S_KUBECONFIG_MODE", "")),
        etcd_snapshot_dir=str(values.get("etcd-snapshot-dir") or ""),
    )


def parse_agent(argv: list[str], env: Mapping[str, str], hostname: str,
                read_file=lambda p: open(p, encoding="utf-8").read()) -> AgentConfig:
    """Parse ``k3s agent`` arguments; the server URL and a token are required, as in K3s."""
    values, positional = _parse(argv, _COMMON)
    if positional:
        raise UsageError(f"unexpected argument {positional[0]!r}")
    common = _node_common(values, env, hostname, read_file)
    if not common["server_url"]:
        raise UsageError("--server is required")
    if not common["token"]:
        raise UsageError("--token is required")
    return AgentConfig(**common)  # type: ignore[arg-type]


def kubeconfig_mode(text: str) -> int:
    """``"644"``/``"0644"`` → 0o644; empty → 0o600 (K3s's default)."""
    if not text:
        return 0o600
    try:
        mode = int(text, 8)
    except ValueError as exc:
        raise UsageError(f"invalid kubeconfig mode {text!r}") from exc
    if not 0 <= mode <= 0o777:
        raise UsageError(f"invalid kubeconfig mode {text!r}")
    return mode
