"""Load and validate an inventory file into frozen, typed objects.

An inventory describes one cluster: its nodes and how to reach them, the K3s
install, the Flux bootstrap, the secrets to restore, what must exist after a
rebuild, and the time budget. It is parsed once, at the edge; everything
inside drtool takes these objects, never raw dicts.

Every problem becomes ``BadInput(file, field_path, problem)`` so the task
layer can print one line such as
``inventory/homelab.yaml: nodes[1].role: expected server or agent``.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from drtool.durations import parse_seconds
from drtool.errors import BadInput
from drtool.inputs import read_yaml, validation_error

# ---------------------------------------------------------------------------
# Small value types

def _seconds(value: Any) -> float:
    """Accept 90, 90.5, "90s", "1.5m", "1h30m" (drtool.durations); bools, zero and negatives are errors."""
    return parse_seconds(value, positive=True)


Seconds = Annotated[float, BeforeValidator(_seconds)]

# Kubernetes label keys/values and taint syntax, as the API server validates them.
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}$")
_LABEL_VALUE = re.compile(rf"^({_LABEL_NAME})?$")
_TAINT = re.compile(r"^(?P<key>[^=:\s]+)(=(?P<value>[^:\s]*))?:(?P<effect>NoSchedule|PreferNoSchedule|NoExecute)$")
_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_K3S_VERSION = re.compile(r"^v\d+\.\d+\.\d+\+k3s\d+$")
_FLUX_VERSION = re.compile(r"^v?\d+\.\d+\.\d+$")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._:-]*[A-Za-z0-9])?$")
# A K3s token looks like K10<hash>::server:<secret> or a free-form string; a literal in the
# inventory is refused whatever it looks like, but this catches the common paste.
_LOOKS_LIKE_TOKEN = re.compile(r"^K10[0-9a-f]{20,}::")


class _Model(BaseModel):
    """Frozen, strict about unknown keys (typos are errors, not silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


# ---------------------------------------------------------------------------
# Sections


class Cluster(_Model):
    name: str
    """Cluster name; typed by the operator to confirm a rebuild, and the lock's name."""
    context: str | None = None
    """kubeconfig context name written for this cluster (defaults to ``name``)."""
    api_endpoint: str
    """URL the operator reaches the API at, e.g. ``https://192.168.1.10:6443``; also a TLS SAN."""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NODE_NAME.match(v):
            raise ValueError("expected a DNS-style name (lowercase letters, digits, '-' and '.')")
        return v

    @field_validator("api_endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        if not re.match(r"^https://[A-Za-z0-9.\-\[\]:]+(:\d+)?/?$", v):
            raise ValueError("expected https://HOST[:PORT]")
        return v.rstrip("/")

    @property
    def context_name(self) -> str:
        return self.context or self.name

    @property
    def api_host(self) -> str:
        host = self.api_endpoint.removeprefix("https://")
        if host.startswith("["):
            return host[1 : host.index("]")]
        return host.split(":")[0]


class Node(_Model):
    name: str
    """Kubernetes node name (also the hostname K3s registers)."""
    host: str | None = None
    """Address or ``~/.ssh/config`` alias; defaults to ``name``."""
    port: int | None = Field(default=None, ge=1, le=65535)
    """SSH port; ``~/.ssh/config`` or 22 when unset."""
    user: str | None = None
    """SSH user; ``~/.ssh/config`` or the local user when unset."""
    role: Literal["server", "agent"]
    labels: dict[str, str] = Field(default_factory=dict)
    """Node labels, passed at install as ``--node-label k=v``."""
    taints: tuple[str, ...] = ()
    """Taints as ``key=value:Effect``, passed as ``--node-taint``."""
    ssh_key: Path | None = None
    """Private key file; relative paths are resolved against the inventory's folder."""
    sudo: bool = True
    """Run privileged commands with ``sudo -n`` (False when the SSH user is root)."""
    protected_paths: tuple[str, ...] = ()
    """Absolute paths a wipe must never touch (data outside K3s's dirs)."""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NODE_NAME.match(v):
            raise ValueError("expected a DNS-style node name (lowercase letters, digits, '-' and '.')")
        return v

    @field_validator("host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        if v is not None and not _HOST.match(v):
            raise ValueError("expected an address or an ssh alias (letters, digits, '.', '-', ':')")
        return v

    @field_validator("user")
    @classmethod
    def _user(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[a-z_][a-z0-9_-]*\$?$", v):
            raise ValueError("expected a POSIX user name")
        return v

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, v: Any) -> Any:
        # Checked before whitespace stripping: "hardware " is not the label "hardware".
        if not isinstance(v, dict):
            return v
        for key, value in v.items():
            if not isinstance(key, str):
                raise ValueError(f"label key {key!r} is not a string")
            if not _LABEL_KEY.match(key):
                raise ValueError(f"label key {key!r} is not a valid Kubernetes label key")
            if not isinstance(value, str) or not _LABEL_VALUE.match(value):
                raise ValueError(f"label {key!r} has an invalid value (63 chars of [A-Za-z0-9-_.])")
        return v

    @field_validator("taints")
    @classmethod
    def _taints(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for taint in v:
            m = _TAINT.match(taint)
            if not m or not _LABEL_KEY.match(m.group("key")):
                raise ValueError(f"taint {taint!r} is not key=value:Effect (NoSchedule, PreferNoSchedule, NoExecute)")
        return v

    @field_validator("protected_paths")
    @classmethod
    def _protected(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for p in v:
            if not p.startswith("/") or p.rstrip("/") in ("", "/etc", "/var", "/usr", "/var/lib"):
                raise ValueError(f"protected path {p!r} must be an absolute, specific path")
        return v

    @property
    def address(self) -> str:
        return self.host or self.name


class TokenSource(_Model):
    """Where the K3s cluster token comes from: never a literal in the inventory."""

    token_file: Path | None = None
    token_env: str | None = None

    @model_validator(mode="after")
    def _one(self) -> "TokenSource":
        if (self.token_file is None) == (self.token_env is None):
            raise ValueError("set exactly one of token_file or token_env")
        if self.token_env is not None and not _ENV_NAME.match(self.token_env):
            raise ValueError("token_env must be an environment variable name")
        return self


# Suffixes K3s v1.31 imports from agent/images (rancher/wharfie pkg/tarfile SupportedExtensions,
# used by k3s-io/k3s pkg/agent/containerd watcher.go).
IMAGE_SUFFIXES = (".tar", ".tar.lz4", ".tar.bz2", ".tbz", ".tar.gz", ".tgz", ".tar.zst", ".tzst")


class Install(_Model):
    method: Literal["online", "airgap"] = "online"
    script_url: str = "https://get.k3s.io"
    """Install script URL for online installs (fetched on the node)."""
    script: Path | None = None
    """Air-gapped: local install script to upload."""
    binary: Path | None = None
    """Air-gapped: local k3s binary to upload to /usr/local/bin/k3s."""
    images: Path | None = None
    """Air-gapped: images archive uploaded to <data_dir>/agent/images/ keeping its suffix (.tar, .tar.gz, .tar.zst, ...)."""

    @field_validator("images")
    @classmethod
    def _images_suffix(cls, v: Path | None) -> Path | None:
        # K3s imports by suffix and skips anything else (k3s-io/k3s pkg/agent/containerd, v1.31).
        if v is not None and not any(v.name.lower().endswith(s) for s in IMAGE_SUFFIXES):
            raise ValueError(f"K3s imports only {', '.join(IMAGE_SUFFIXES)} archives (it picks the "
                             f"decompressor by suffix): {v.name}")
        return v

    @model_validator(mode="after")
    def _airgap(self) -> "Install":
        if self.method == "airgap" and (self.script is None or self.binary is None):
            raise ValueError("an airgap install needs script and binary")
        if self.method == "online" and not self.script_url.startswith("https://"):
            raise ValueError("script_url must be an https:// URL")
        return self


class K3s(_Model):
    version: str
    """Pinned K3s release, e.g. v1.31.4+k3s1 (required: an unpinned rebuild is not reproducible)."""
    channel: str | None = None
    server_args: tuple[str, ...] = ()
    agent_args: tuple[str, ...] = ()
    token: TokenSource | None = None
    """Cluster token source; when unset a fresh token is generated and kept in the run's backup dir."""
    install: Install = Field(default_factory=Install)
    data_dir: str = "/var/lib/rancher/k3s"
    kubeconfig_mode: str = "0600"

    @field_validator("token", mode="before")
    @classmethod
    def _no_literal(cls, v: Any) -> Any:
        if isinstance(v, str):
            raise ValueError("a literal token is not allowed; use token_file or token_env")
        return v

    @field_validator("data_dir")
    @classmethod
    def _data_dir(cls, v: str) -> str:
        # The uninstall deletes this directory (K3S_DATA_DIR): refuse what would take the system with it.
        norm = "/" + v.strip("/")
        if not v.startswith("/") or ".." in v.split("/"):
            raise ValueError("expected an absolute path")
        if norm.count("/") < 2 or norm in ("/var/lib", "/usr/local", "/usr/lib", "/var/log"):
            raise ValueError(f"{v} is too broad: the uninstall deletes the data dir")
        return norm

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        if not _K3S_VERSION.match(v):
            raise ValueError("expected a pinned release such as v1.31.4+k3s1")
        return v

    @field_validator("server_args", "agent_args")
    @classmethod
    def _args(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for arg in v:
            if _LOOKS_LIKE_TOKEN.match(arg) or arg.startswith("--token=") or arg == "--token":
                raise ValueError("a token must not be written in args; use k3s.token.token_file or token_env")
        return v

    @field_validator("kubeconfig_mode")
    @classmethod
    def _mode(cls, v: str) -> str:
        if not re.match(r"^0?[0-7]{3}$", str(v)):
            raise ValueError("expected an octal file mode such as 0600")
        return str(v)


# flux2 v2.4.0 pkg/manifestgen/install/options.go MakeDefaultOptions and utils.ValidateComponents.
FLUX_DEFAULT_COMPONENTS = ("source-controller", "kustomize-controller", "helm-controller", "notification-controller")
FLUX_COMPONENTS = FLUX_DEFAULT_COMPONENTS + ("image-reflector-controller", "image-automation-controller")


class Flux(_Model):
    cli: str = "flux"
    """Path (or name on PATH) of the flux CLI; relative paths resolve against the inventory's folder."""
    version: str
    """Pinned flux CLI version, e.g. v2.4.0; preflight checks it."""
    provider: Literal["github", "gitlab", "git"]
    owner: str | None = None
    repository: str | None = None
    branch: str = "main"
    path: str
    personal: bool = False
    url: str | None = None
    """git provider: repository URL (ssh:// or https://)."""
    private_key_file: Path | None = None
    token_env: str | None = None
    """Environment variable holding the Git token (default GITHUB_TOKEN / GITLAB_TOKEN)."""
    timeout: Seconds = 300.0
    # What `flux bootstrap` regenerates gotk-components.yaml from (flux2 v2.4.0 cmd/flux/bootstrap.go
    # flags, pkg/manifestgen/install/options.go defaults). A repository bootstrapped with other
    # values gets them rewritten by the next bootstrap, so preflight compares them with the repo.
    components: tuple[str, ...] = FLUX_DEFAULT_COMPONENTS
    """--components: the default controllers."""
    components_extra: tuple[str, ...] = ()
    """--components-extra, e.g. [image-reflector-controller, image-automation-controller]."""
    toleration_keys: tuple[str, ...] = ()
    """--toleration-keys: taints the controllers tolerate."""
    network_policy: bool = True
    """--network-policy: the NetworkPolicies that deny ingress from other namespaces."""
    watch_all_namespaces: bool = True
    """--watch-all-namespaces."""
    cluster_domain: str = "cluster.local"
    """--cluster-domain."""
    registry: str = "ghcr.io/fluxcd"
    """--registry the controller images come from."""
    log_level: Literal["debug", "info", "error"] = "info"
    """--log-level of the controllers."""
    image_pull_secret: str | None = None
    """--image-pull-secret for the controller images."""
    git_config_file: Path | None = None
    """A git config file drtool's own reads of the repository use (e.g. url.<mirror>.insteadOf); default: git's own."""

    @field_validator("components", "components_extra")
    @classmethod
    def _components(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [c for c in v if c not in FLUX_COMPONENTS]
        if unknown:
            raise ValueError(f"unknown Flux component {unknown[0]!r}; expected one of {', '.join(FLUX_COMPONENTS)}")
        return v

    @field_validator("toleration_keys")
    @classmethod
    def _toleration_keys(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for key in v:
            if not re.match(r"^([a-z0-9.-]+/)?[A-Za-z0-9][-A-Za-z0-9_.]*$", key):
                raise ValueError(f"{key!r} is not a taint key")
        return v
    checkout: Path | None = None
    """Local checkout of the GitOps repository that ``inv gitops.check`` and preflight read."""

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        if not _FLUX_VERSION.match(v):
            raise ValueError("expected a pinned version such as v2.4.0")
        return v if v.startswith("v") else "v" + v

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if v.startswith("/") or ".." in v.split("/") or not re.match(r"^[A-Za-z0-9._/-]+$", v):
            raise ValueError("expected a relative path inside the repository, such as clusters/homelab")
        return v

    @field_validator("owner", "repository", "branch")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[A-Za-z0-9._/-]+$", v):
            raise ValueError("expected letters, digits, '.', '_', '-' or '/'")
        return v

    @field_validator("token_env")
    @classmethod
    def _env(cls, v: str | None) -> str | None:
        if v is not None and not _ENV_NAME.match(v):
            raise ValueError("expected an environment variable name")
        return v

    @model_validator(mode="after")
    def _provider(self) -> "Flux":
        # flux2 v2.4.0 cmd/flux/bootstrap.go bootstrapValidate: these two are required.
        for required in ("source-controller", "kustomize-controller"):
            if required not in self.components + self.components_extra:
                raise ValueError(f"component {required} is required")
        if self.provider in ("github", "gitlab"):
            if not self.owner or not self.repository:
                raise ValueError(f"bootstrap {self.provider} needs owner and repository")
        elif not self.url:
            raise ValueError("bootstrap git needs url")
        return self

    @property
    def token_variable(self) -> str | None:
        """The env var bootstrap reads the token from (None for ssh-key git bootstrap)."""
        if self.token_env:
            return self.token_env
        return {"github": "GITHUB_TOKEN", "gitlab": "GITLAB_TOKEN"}.get(self.provider)


class SecretSpec(_Model):
    """A Secret kept out of Git, restored into the cluster before bootstrap."""

    name: str
    namespace: str = "flux-system"
    from_file: Path
    """Local file holding the key (e.g. the SOPS age key); read at restore time."""
    key: str | None = None
    """Data key in the Secret (default: the file's name, e.g. age.agekey)."""

    @property
    def data_key(self) -> str:
        return self.key or self.from_file.name


class HelmReleaseExpectation(_Model):
    namespace: str
    name: str
    version: str | None = None
    """Chart version that must be installed."""


class Expectations(_Model):
    kustomizations: tuple[str, ...] = ()
    """Kustomizations that must exist and be Ready, as ``namespace/name`` (namespace defaults to flux-system)."""
    helmreleases: tuple[HelmReleaseExpectation, ...] = ()

    @field_validator("kustomizations")
    @classmethod
    def _ks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(k if "/" in k else f"flux-system/{k}" for k in v)


class Timeouts(_Model):
    """Per-phase time bounds; a phase over its bound fails with a partial report."""

    ssh_connect: Seconds = 10.0
    command: Seconds = 600.0
    preflight: Seconds = 60.0
    backup: Seconds = 600.0
    teardown: Seconds = 300.0
    install_servers: Seconds = 300.0
    join_agents: Seconds = 300.0
    nodes_ready: Seconds = 300.0
    bootstrap: Seconds = 600.0
    converge: Seconds = 1800.0


class Converge(_Model):
    ignore_namespaces: tuple[str, ...] = ()
    crashloop_restarts: int = Field(default=3, ge=0)
    unschedulable_grace: Seconds = 30.0
    stuck_grace: Seconds = 60.0
    """Fail once nothing changed this long and every pending object waits on a kind no pending object can install."""
    nudge: bool = True
    """Request a Flux reconcile (``reconcile.fluxcd.io/requestedAt``) as soon as an object's dependencies are Ready."""


class Backup(_Model):
    archive_volumes: bool = False
    """Archive local-path volume dirs under the K3s data dir (they are deleted by uninstall)."""
    keep_runs: int = Field(default=20, ge=1)


class Images(_Model):
    keep: bool = True
    """Export each node's images before the wipe and give them back to K3s after the install."""
    cache_dir: str = "/var/lib/drtool/image-cache"
    """Where the archives are kept on each node (0700); must lie outside what the uninstall deletes."""
    max_bytes: int = Field(default=20 * 2**30, ge=0)
    """At most this many bytes of archives per node; images past it are pulled again."""
    min_free_bytes: int = Field(default=2**30, ge=0)
    """Stop exporting (with a warning, the wipe goes on) when less than this is free for the cache."""

    @field_validator("cache_dir")
    @classmethod
    def _cache_dir(cls, v: str) -> str:
        if not v.startswith("/") or ".." in v.split("/"):
            raise ValueError("expected an absolute path")
        norm = "/" + v.strip("/")
        # The export makes it 0700 and replaces the archives in it: never a shared system dir.
        if norm.count("/") < 2 or norm in ("/var/lib", "/var/tmp", "/var/cache", "/usr/local", "/home", "/root"):
            raise ValueError(f"{v} is too broad: drtool makes it 0700 and replaces its archives")
        return norm


class HttpCheck(_Model):
    name: str
    url: str
    status: int = Field(default=200, ge=100, le=599)
    retries: int = Field(default=10, ge=0, le=1000)
    delay: Seconds = 2.0
    timeout: Seconds = 5.0


class WebhookConfig(_Model):
    name: str = Field(min_length=1)
    type: Literal["json", "slack", "discord", "ntfy", "alertmanager"]
    url: str | None = None
    """http:// or https:// URL; checked when the inventory loads, not after the wipe."""
    url_env: str | None = None
    """Environment variable holding the URL instead (webhook URLs usually carry a token)."""
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: Seconds = Field(default=5.0, le=60)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else http_url(v)

    @field_validator("url_env")
    @classmethod
    def _url_env(cls, v: str | None) -> str | None:
        if v is not None and not _ENV_NAME.match(v):
            raise ValueError("expected an environment variable name")
        return v

    @model_validator(mode="after")
    def _one_url(self) -> "WebhookConfig":
        if (self.url is None) == (self.url_env is None):
            raise ValueError("set exactly one of url or url_env")
        return self

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for k, value in v.items():
            # RFC 9110 field-name token; a newline in a value would split the request.
            if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", k) or any(c in value for c in "\r\n\x00"):
                raise ValueError(f"header {k!r}: not a valid HTTP header")
        return v


def http_url(v: str) -> str:
    """``v`` when it is an http(s) URL with a host and a valid port; ValueError otherwise
    (the message never repeats the URL: webhook URLs usually hold a token)."""
    import urllib.parse

    try:
        parts = urllib.parse.urlsplit(v)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        raise ValueError("expected an http:// or https:// URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in v):
        raise ValueError("expected an http:// or https:// URL")
    return v


class Drill(_Model):
    enabled: bool = False
    """Drills wipe the cluster: they run only where this is explicitly true."""
    http_checks: tuple[HttpCheck, ...] = ()
    verify_protected: bool = True
    """Checksum the protected paths before and after and fail when they changed."""
    regression_margin: float = Field(default=0.25, ge=0)
    window: str | None = None
    """Allowed start window ``HH:MM-HH:MM`` for scheduled drills."""
    notify: tuple[WebhookConfig, ...] = ()
    textfile_dir: Path | None = None
    """node_exporter textfile collector dir for ``drtool_drill.prom``."""

    @field_validator("window")
    @classmethod
    def _window(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$", v):
            raise ValueError("expected HH:MM-HH:MM")
        return v

    @field_validator("notify")
    @classmethod
    def _unique_hooks(cls, v: tuple[WebhookConfig, ...]) -> tuple[WebhookConfig, ...]:
        names = [h.name for h in v]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise _FieldError(f"drill.notify[{i}].name", f"duplicate webhook name {name!r}")
        return v


class Ssh(_Model):
    known_hosts: Path | None = None
    """known_hosts file to verify host keys against (default ~/.ssh/known_hosts)."""
    config: Path | None = None
    """ssh_config file for aliases, keys and ProxyJump (default ~/.ssh/config)."""


class Inventory(_Model):
    path: Path = Field(default=Path("inventory.yaml"), exclude=True)
    cluster: Cluster
    nodes: tuple[Node, ...]
    k3s: K3s
    flux: Flux
    secrets: tuple[SecretSpec, ...] = ()
    expectations: Expectations = Field(default_factory=Expectations)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    converge: Converge = Field(default_factory=Converge)
    backup: Backup = Field(default_factory=Backup)
    images: Images = Field(default_factory=Images)
    objective: Seconds | None = None
    """Recovery-time objective: the rebuild must be all-ready within this."""
    drill: Drill = Field(default_factory=Drill)
    ssh: Ssh = Field(default_factory=Ssh)
    runs_dir: Path | None = None
    """Where this cluster's runs (journals, backups, reports) are kept; relative to the inventory's
    folder. Default: ``runs/`` beside the inventory file. ``$DRTOOL_RUNS_DIR`` overrides it."""

    @model_validator(mode="after")
    def _nodes(self) -> "Inventory":
        seen: set[str] = set()
        for i, node in enumerate(self.nodes):
            if node.name in seen:
                raise _FieldError(f"nodes[{i}].name", f"duplicate node name {node.name!r}")
            seen.add(node.name)
        if not any(n.role == "server" for n in self.nodes):
            raise _FieldError("nodes", "at least one node must have role server")
        # The uninstall deletes these (drtool.remote.k3s.WIPED_DIRS and the data dir): a cache
        # inside them would go with the images it keeps.
        cache = self.images.cache_dir
        for wiped in ("/etc/rancher/k3s", "/run/k3s", "/var/lib/kubelet", self.k3s.data_dir):
            if cache == wiped or cache.startswith(wiped.rstrip("/") + "/") or wiped.startswith(cache + "/"):
                raise _FieldError("images.cache_dir", f"{cache} overlaps {wiped}, which the uninstall deletes")
        return self

    # Convenience views -----------------------------------------------------
    @property
    def servers(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.role == "server")

    @property
    def agents(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.role == "agent")

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    @property
    def secret_variables(self) -> frozenset[str]:
        """The environment variables this inventory names as holding a secret: the Git token,
        the K3s token and webhook URLs (``url_env``; they usually carry a token). A command
        gets only those it needs (``drtool.flux.bootstrap_env``, ``drtool.gitrepo.git_env``)."""
        names = {self.flux.token_variable, *(h.url_env for h in self.drill.notify)}
        if self.k3s.token is not None:
            names.add(self.k3s.token.token_env)
        return frozenset(n for n in names if n)

    @property
    def runs_path(self) -> Path:
        """The runs directory this inventory asks for (absolute)."""
        return self.resolve(self.runs_dir) or (self.path.parent / "runs").resolve()

    def resolve(self, p: Path | str | None) -> Path | None:
        """A path from the inventory, resolved against the inventory file's folder."""
        if p is None:
            return None
        p = Path(os.path.expanduser(str(p)))
        return p if p.is_absolute() else (self.path.parent / p).resolve()


class _FieldError(ValueError):
    """Raised inside model validators to point at a precise field path."""

    def __init__(self, field: str, problem: str):
        super().__init__(problem)
        self.field, self.problem = field, problem


# ---------------------------------------------------------------------------
# Loading


def _all_errors(source: str, exc: ValidationError) -> BadInput:
    """Every problem at once; a model validator's error points at its precise field."""
    errors = exc.errors(include_url=False)
    ctx_err = (errors[0].get("ctx") or {}).get("error") if len(errors) == 1 else None
    if isinstance(ctx_err, _FieldError):
        return BadInput(source, ctx_err.field, ctx_err.problem)
    return validation_error(source, exc, model=Inventory)


def parse_inventory(data: Any, source: str | Path = "<inventory>") -> Inventory:
    """Validate already-loaded YAML data. Raises BadInput naming the field."""
    if not isinstance(data, dict):
        raise BadInput(str(source), "", "expected a mapping at the top level")
    try:
        return Inventory.model_validate({**data, "path": Path(source)})
    except ValidationError as exc:
        raise _all_errors(str(source), exc) from None


def load_inventory(path: str | Path) -> Inventory:
    """Read and validate an inventory file; every problem is a one-line BadInput."""
    return parse_inventory(read_yaml(path), Path(path))
