"""Convert a k3s-ansible inventory into a drtool inventory.

Reads what k3s-ansible (k3s-io/k3s-ansible 1.2.x: ``inventory-sample.yml``, the
``k3s_server`` / ``k3s_agent`` / ``airgap`` roles) reads: a YAML or INI inventory with a
``k3s_cluster`` group whose children are ``server`` and ``agent``, plus ``group_vars/``
and ``host_vars/`` beside it, with Ansible's precedence ("Understanding variable
precedence" in the Ansible docs): inventory-file group vars, then ``group_vars/all``,
then ``group_vars/<group>`` (parents before children; groups of the same depth in
alphabetical order, as "How variables are merged" in the Ansible inventory guide says),
then inventory-file host vars, then ``host_vars/<host>``.

What matters most is the **node name**. drtool installs every node with ``--node-name``;
a name that differs from the one K3s registered renames the node, and PersistentVolumes
pinned to it by node affinity no longer schedule. K3s names a node from ``--node-name``
/ ``node-name:`` if given, else the machine's hostname, lower-cased (k3s
``GetHostnameAndIPs``). So the name is taken from a ``--node-name`` in the host's
``extra_*_args`` or ``node-name`` in its ``*_config_yaml``, else from the inventory
hostname when that is a name; ``ansible_host`` is only the address. A host given as an
IP address carries no name at all: the caller must supply it (``--node-name
IP=NAME``), it is never invented.

Secrets are never copied: a literal ``token`` becomes ``token_env: K3S_TOKEN``, an
ansible-vault encrypted one (``!vault``) ``token_file`` (the operator decrypts it into
that file), and tokens inside ``extra_*_args`` or ``*_config_yaml`` are dropped.
"""
from __future__ import annotations

import ast
import ipaddress
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from drtool.errors import BadInput

_DNS = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
DEFAULT_DATA_DIR = "/var/lib/rancher/k3s"
# Flags whose value is a secret: never carried into the drtool inventory.
_SECRET_FLAGS = ("token", "agent-token", "token-file", "agent-token-file", "datastore-endpoint")


class Vaulted:
    """An ansible-vault encrypted value (``!vault |``): kept opaque, never written anywhere."""

    def __repr__(self) -> str:
        return "<vault-encrypted>"


class _Loader(yaml.SafeLoader):
    """YAML as Ansible writes it: ``!vault`` and ``!unsafe`` tags are known."""


_Loader.add_constructor("!vault", lambda loader, node: Vaulted())
_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except FileNotFoundError:
        raise BadInput(str(path), "", "file not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise BadInput(str(path), f"line {mark.line + 1}" if mark else "",
                       f"invalid YAML: {getattr(exc, 'problem', None) or exc}") from None


# --------------------------------------------------------------------------- the inventory as Ansible sees it


@dataclass
class Group:
    hosts: dict[str, dict] = field(default_factory=dict)
    children: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)


@dataclass
class AnsibleInventory:
    source: str
    groups: dict[str, Group] = field(default_factory=dict)
    group_files: dict[str, dict] = field(default_factory=dict)
    """``group_vars/<group>`` contents."""
    host_files: dict[str, dict] = field(default_factory=dict)
    """``host_vars/<host>`` contents."""

    def group(self, name: str) -> Group:
        return self.groups.setdefault(name, Group())

    def parents(self, group: str, _seen: set[str] | None = None) -> list[str]:
        """Ancestors of ``group`` (every parent's, a group with two parents too), farthest
        first, ``all`` first. A cycle (which Ansible refuses) ends the walk."""
        seen = _seen if _seen is not None else {group}
        out: list[str] = []
        for name, g in self.groups.items():
            if group in g.children and name not in seen:
                seen.add(name)
                out += [a for a in self.parents(name, seen) if a not in out]
                out.append(name)
        if _seen is None and group != "all" and "all" not in out:
            out.insert(0, "all")
        return out

    def hosts_of(self, group: str, _seen: set[str] | None = None) -> dict[str, None]:
        """Hosts of ``group`` and its children, in inventory order."""
        seen = _seen if _seen is not None else set()
        g = self.groups.get(group)
        if g is None or group in seen:
            return {}
        seen.add(group)
        out = dict.fromkeys(g.hosts)
        for child in g.children:
            out.update(self.hosts_of(child, seen))
        return out

    def host_vars(self, host: str, group: str) -> dict[str, Any]:
        """Variables of ``host`` as a member of ``group``, with Ansible's precedence: parents
        before children, and groups of the same depth in alphabetical order (the later wins)."""
        chain = sorted([*self.parents(group), group], key=lambda g: (len(self.parents(g)) if g != "all" else -1, g))
        merged: dict[str, Any] = {}
        for name in chain:                       # inventory-file group vars
            merged.update(self.groups.get(name, Group()).vars)
        merged.update(self.group_files.get("all", {}))
        for name in chain:                       # group_vars/<group>, parents first
            if name != "all":
                merged.update(self.group_files.get(name, {}))
        for name in chain:                       # inventory-file host vars
            merged.update(self.groups.get(name, Group()).hosts.get(host) or {})
        merged.update(self.host_files.get(host, {}))
        return merged


def _yaml_groups(inv: AnsibleInventory, name: str, data: Any, where: str) -> None:
    if data is None:
        inv.group(name)
        return
    if not isinstance(data, dict):
        raise BadInput(inv.source, where, "expected a mapping with hosts, children or vars")
    g = inv.group(name)
    hosts = data.get("hosts") or {}
    if not isinstance(hosts, dict):
        raise BadInput(inv.source, f"{where}.hosts", "expected a mapping of host names")
    for host, hvars in hosts.items():
        if hvars is not None and not isinstance(hvars, dict):
            raise BadInput(inv.source, f"{where}.hosts.{host}", "expected a mapping of variables")
        g.hosts[str(host)] = dict(hvars or {})
    gvars = data.get("vars") or {}
    if not isinstance(gvars, dict):
        raise BadInput(inv.source, f"{where}.vars", "expected a mapping")
    g.vars.update(gvars)
    children = data.get("children") or {}
    if not isinstance(children, dict):
        raise BadInput(inv.source, f"{where}.children", "expected a mapping of groups")
    for child, cdata in children.items():
        if str(child) not in g.children:
            g.children.append(str(child))
        _yaml_groups(inv, str(child), cdata, f"{where}.children.{child}")


def _ini_value(text: str) -> Any:
    """An INI variable's value as Ansible reads it: a Python literal when it is one, else the text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _ini_groups(inv: AnsibleInventory, text: str) -> None:
    """Ansible's INI inventory: ``[group]`` host lines (``host key=value ...``),
    ``[group:vars]`` and ``[group:children]``."""
    section, kind = "ungrouped", "hosts"
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith((";", "#")):
            continue
        if line.startswith("["):
            m = re.fullmatch(r"\[([^\]:\s]+)(?::(vars|children))?\]", line)
            if not m:
                raise BadInput(inv.source, f"line {n}", f"bad section header {line!r}")
            section, kind = m.group(1), m.group(2) or "hosts"
            inv.group(section)
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise BadInput(inv.source, f"line {n}", f"cannot parse: {exc}") from None
        if kind == "vars":
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise BadInput(inv.source, f"line {n}", "expected key=value in a :vars section")
            inv.group(section).vars[key.strip()] = _ini_value(value.strip())
        elif kind == "children":
            if words[0] not in inv.group(section).children:
                inv.group(section).children.append(words[0])
            inv.group(words[0])
        else:
            host, hvars = words[0], {}
            if re.search(r"\[[^\]]*:[^\]]*\]", host):
                raise BadInput(inv.source, f"line {n}", f"host ranges such as {host!r} are not supported: list the hosts")
            for word in words[1:]:
                key, sep, value = word.partition("=")
                if not sep:
                    raise BadInput(inv.source, f"line {n}", f"expected key=value after the host, got {word!r}")
                hvars[key] = _ini_value(value)
            inv.group(section).hosts.setdefault(host, {}).update(hvars)


def _vars_dir(root: Path, name: str) -> dict:
    """``group_vars/<name>`` or ``host_vars/<name>``: a file (``.yml``, ``.yaml``, none) or
    a directory of them, merged in name order."""
    files = [root / f"{name}{ext}" for ext in (".yml", ".yaml", ".json", "")]
    found = [f for f in files if f.is_file()]
    if (root / name).is_dir():
        found += sorted(f for f in (root / name).iterdir() if f.is_file() and f.suffix in (".yml", ".yaml", ".json"))
    merged: dict = {}
    for f in found:
        data = _read_yaml(f)
        if data is None:
            continue
        if not isinstance(data, dict):
            raise BadInput(str(f), "", "expected a mapping of variables")
        merged.update(data)
    return merged


def load_ansible_inventory(path: str | Path) -> AnsibleInventory:
    """A YAML or INI inventory file with the ``group_vars/`` and ``host_vars/`` beside it."""
    path = Path(path)
    inv = AnsibleInventory(str(path))
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise BadInput(str(path), "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(str(path), "", f"cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    first = next((ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(("#", ";"))), "")
    if first.startswith("[") and path.suffix not in (".yml", ".yaml", ".json"):  # INI starts with a [group]
        _ini_groups(inv, text)
    else:
        data = _read_yaml(path)
        if not isinstance(data, dict):
            raise BadInput(str(path), "", "expected a YAML inventory (groups at the top level) or an INI one")
        for name, gdata in data.items():
            _yaml_groups(inv, str(name), gdata, str(name))
    for name in list(inv.groups):
        inv.group_files[name] = _vars_dir(path.parent / "group_vars", name)
    inv.group_files.setdefault("all", _vars_dir(path.parent / "group_vars", "all"))
    for group in list(inv.groups.values()):
        for host in group.hosts:
            inv.host_files[host] = _vars_dir(path.parent / "host_vars", host)
    return inv


def inventory_from_data(data: Any, source: str) -> AnsibleInventory:
    """An already-parsed YAML inventory (no group_vars/host_vars)."""
    if not isinstance(data, dict):
        raise BadInput(source, "", "expected a YAML inventory (groups at the top level)")
    inv = AnsibleInventory(source)
    for name, gdata in data.items():
        _yaml_groups(inv, str(name), gdata, str(name))
    return inv


# --------------------------------------------------------------------------- k3s settings


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def _flag_words(args: list[str]) -> list[tuple[str, str | None, list[str]]]:
    """``--flag value`` / ``--flag=value`` / ``--bool`` groups: (flag, value, the words)."""
    out: list[tuple[str, str | None, list[str]]] = []
    i = 0
    while i < len(args):
        word = args[i]
        if word.startswith("-"):
            name, eq, value = word.lstrip("-").partition("=")
            if eq:
                out.append((name, value, [word]))
            elif i + 1 < len(args) and not args[i + 1].startswith("-"):
                out.append((name, args[i + 1], [word, args[i + 1]]))
                i += 1
            else:
                out.append((name, None, [word]))
        else:
            out.append(("", word, [word]))
        i += 1
    return out


def _config_args(config: Mapping[str, Any]) -> list[str]:
    """A K3s config file's keys as the flags they stand for (docs.k3s.io "Configuration
    File": a key is a flag without its dashes; a list repeats the flag; true is a bare flag)."""
    out: list[str] = []
    for key, value in config.items():
        values = value if isinstance(value, list) else [value]
        for v in values:
            if v is True:
                out.append(f"--{key}")
            elif v is False or v is None:
                continue
            else:
                out += [f"--{key}", str(v)]
    return out


@dataclass
class _NodeSettings:
    args: list[str]
    name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[str] = field(default_factory=list)
    data_dir: str | None = None
    kubeconfig_mode: str | None = None


def _node_settings(hvars: Mapping[str, Any], role: str, source: str, host: str, notes: set[str]) -> _NodeSettings:
    """The K3s settings of one host: its extra_*_args and *_config_yaml, split into what
    drtool holds per node (name, labels, taints), cluster-wide (args, data dir) and never
    (tokens)."""
    where = f"{host}: "
    args_var, config_var = f"extra_{role}_args", f"{role}_config_yaml"
    raw_args = hvars.get(args_var) or ""
    if isinstance(raw_args, Vaulted):
        notes.add(f"{where}{args_var} is vault-encrypted: not carried over; add its flags to k3s.{role}_args by hand")
        raw_args = ""
    words = shlex.split(str(raw_args))
    config = hvars.get(config_var)
    if isinstance(config, Vaulted):
        notes.add(f"{where}{config_var} is vault-encrypted: not carried over; add its settings by hand")
        config = None
    if config:
        try:
            parsed = yaml.safe_load(str(config))
        except yaml.YAMLError as exc:
            raise BadInput(source, f"{host}.{config_var}", f"invalid YAML: {getattr(exc, 'problem', exc)}") from None
        if parsed is not None and not isinstance(parsed, dict):
            raise BadInput(source, f"{host}.{config_var}", "expected the YAML of a K3s config file (a mapping)")
        words += _config_args(parsed or {})
    settings = _NodeSettings(args=[])
    for name, value, group in _flag_words(words):
        if name in _SECRET_FLAGS or name == "t":
            notes.add(f"--{name} in {args_var}/{config_var} was NOT copied (it holds or points to a secret)")
        elif name == "node-name" and value:
            settings.name = value.lower()
        elif name == "node-label" and value and "=" in value:
            k, _, v = value.partition("=")
            settings.labels[k] = v
        elif name == "node-taint" and value:
            settings.taints.append(value)
        elif name in ("data-dir", "d") and value:
            settings.data_dir = value
            settings.args += ["--data-dir", value]
        elif name == "write-kubeconfig-mode" and value:
            settings.kubeconfig_mode = str(value)
            settings.args += group
        elif name in ("server", "cluster-init"):
            pass  # drtool joins servers (--cluster-init / --server) and agents itself
        else:
            settings.args += group
    return settings


def _first(values: list[Any]) -> Any:
    return values[0] if values else None


def convert_inventory(ai: AnsibleInventory, node_names: Mapping[str, str] | None = None) -> tuple[dict, list[str]]:
    """Return (drtool inventory data, notes for the operator). Raises ``BadInput``."""
    source = ai.source
    node_names = {k: v.lower() for k, v in (node_names or {}).items()}
    if "k3s_cluster" not in ai.groups:
        raise BadInput(source, "k3s_cluster", "expected a k3s-ansible inventory with a k3s_cluster group")
    server_group, agent_group = "server", "agent"
    servers = list(ai.hosts_of(server_group))
    agents = [h for h in ai.hosts_of(agent_group) if h not in servers]
    if not servers:
        raise BadInput(source, "k3s_cluster.children.server.hosts", "at least one server host is required")
    notes: set[str] = set()
    ordered: list[str] = []

    def note(text: str) -> None:
        if text not in notes:
            notes.add(text)
            ordered.append(text)

    first_vars = ai.host_vars(servers[0], server_group)
    version = first_vars.get("k3s_version")
    if isinstance(version, Vaulted) or not version:
        raise BadInput(source, "k3s_cluster.vars.k3s_version", "required (drtool pins the K3s version)")

    nodes: list[dict] = []
    unnamed: list[str] = []
    args: dict[str, list[list[str]]] = {"server": [], "agent": []}
    data_dirs: set[str] = set()
    modes: set[str] = set()
    for role, group, hosts in (("server", server_group, servers), ("agent", agent_group, agents)):
        for host in hosts:
            hvars = ai.host_vars(host, group)
            local: set[str] = set()
            settings = _node_settings(hvars, role, source, host, local)
            for text in sorted(local):
                note(text)
            address = hvars.get("ansible_host", hvars.get("ansible_ssh_host", host))
            if isinstance(address, Vaulted):
                raise BadInput(source, f"{host}.ansible_host", "is vault-encrypted: drtool needs the address in clear")
            name = node_names.get(host) or node_names.get(str(address)) or settings.name
            if name is None and not _is_ip(host):
                name = host.lower()
            if name is None:
                unnamed.append(host)
                continue
            if not _DNS.match(name):
                raise BadInput(source, f"{host}", f"node name {name!r} is not a valid Kubernetes node name")
            node: dict[str, Any] = {"name": name, "host": str(address), "role": role}
            port = hvars.get("ansible_port", hvars.get("ansible_ssh_port"))
            user = hvars.get("ansible_user", hvars.get("ansible_ssh_user"))
            key = hvars.get("ansible_ssh_private_key_file")
            for var, value in (("ansible_port", port), ("ansible_user", user), ("ansible_ssh_private_key_file", key)):
                if isinstance(value, Vaulted):
                    note(f"{host}: {var} is vault-encrypted: not carried over")
            if port and not isinstance(port, Vaulted):
                node["port"] = int(port)
            if user and not isinstance(user, Vaulted):
                node["user"] = str(user)
                if str(user) == "root":
                    node["sudo"] = False
            if key and not isinstance(key, Vaulted):
                node["ssh_key"] = str(key)
            if settings.labels:
                node["labels"] = settings.labels
            if settings.taints:
                node["taints"] = settings.taints
            nodes.append(node)
            args[role].append(settings.args)
            data_dirs.add(settings.data_dir or DEFAULT_DATA_DIR)
            if settings.kubeconfig_mode:
                modes.add(settings.kubeconfig_mode)
    if unnamed:
        listed = ", ".join(unnamed)
        raise BadInput(source, "nodes", f"hosts given as addresses ({listed}) carry no node name: K3s registered each under "
                       "its hostname, and a different name would rename the node and break PersistentVolume node "
                       "affinity; give each one with --node-name ADDRESS=NAME (see `kubectl get nodes -o wide`)")

    for role in ("server", "agent"):
        distinct = {tuple(a) for a in args[role]}
        if len(distinct) > 1:
            note(f"the {role}s have different extra_{role}_args/{role}_config_yaml: k3s.{role}_args is the first "
                 f"{role}'s; check the others by hand")
    if len(data_dirs) > 1:
        raise BadInput(source, "data-dir", f"nodes use different K3s data dirs ({', '.join(sorted(data_dirs))}); "
                       "drtool has one k3s.data_dir")
    if first_vars.get("k3s_server_location") not in (None, DEFAULT_DATA_DIR):
        note("k3s_server_location only tells k3s-ansible's reset playbook what to delete; K3s's data dir comes from "
             "--data-dir / data-dir, so k3s.data_dir follows those")

    port = first_vars.get("api_port", 6443)
    endpoint = first_vars.get("api_endpoint")
    if isinstance(endpoint, Vaulted) or not endpoint or "{{" in str(endpoint):
        endpoint = nodes[0]["host"]
        note(f"api_endpoint is a template or unset: using the first server's address {endpoint} (k3s-ansible's default)")
    endpoint = str(endpoint)
    if not endpoint.startswith("https://"):
        host_part = f"[{endpoint}]" if ":" in endpoint and _is_ip(endpoint) else endpoint
        endpoint = f"https://{host_part}:{port}"

    context = str(first_vars.get("cluster_context") or "k3s-ansible")
    name = context.lower() if _DNS.match(context.lower()) else "k3s"
    k3s: dict[str, Any] = {
        "version": str(version),
        "server_args": _first(args["server"]) or [],
        "agent_args": _first(args["agent"]) or [],
    }
    token = first_vars.get("token")
    if isinstance(token, Vaulted):
        k3s["token"] = {"token_file": "k3s-token"}
        note("token is vault-encrypted and was NOT copied: decrypt it into k3s-token beside this inventory "
             "(ansible-vault view ... > k3s-token; chmod 600 k3s-token)")
    else:
        k3s["token"] = {"token_env": "K3S_TOKEN"}
        if token:
            note("the literal token was NOT copied: export K3S_TOKEN with it (or set k3s.token.token_file)")
    data_dir = data_dirs.pop() if data_dirs else DEFAULT_DATA_DIR
    if data_dir != DEFAULT_DATA_DIR:
        k3s["data_dir"] = data_dir
    if len(modes) == 1:
        k3s["kubeconfig_mode"] = modes.pop()
    airgap = first_vars.get("airgap_dir")
    if airgap and not isinstance(airgap, Vaulted):
        images = sorted(str(p) for pat in ("*.tar.zst", "*.tar.gz", "*.tar") for p in Path(str(airgap)).glob(pat))
        install: dict[str, Any] = {"method": "airgap", "script": f"{airgap}/k3s-install.sh", "binary": f"{airgap}/k3s"}
        if images:
            install["images"] = images[0]
        k3s["install"] = install
        note(f"airgap_dir {airgap}: check k3s.install.binary (k3s-ansible picks k3s-<arch> first) and images")
    for var in ("registries_config_yaml", "extra_install_envs", "extra_service_envs", "extra_manifests"):
        if first_vars.get(var):
            note(f"{var} is not carried over: drtool's inventory has no equivalent; recreate it after a rebuild")

    out = {
        "cluster": {"name": name, "context": context, "api_endpoint": endpoint},
        "nodes": nodes,
        "k3s": k3s,
        "flux": {
            "version": "v2.4.0", "provider": "github", "owner": "CHANGE-ME", "repository": "CHANGE-ME",
            "branch": "main", "path": f"clusters/{name}", "personal": True,
        },
    }
    note("flux settings are placeholders (owner/repository/path): edit them before a rebuild")
    if any(not _is_ip(h) and h.lower() == n["name"] for h, n in zip([*servers, *agents], nodes)
           if not node_names.get(h)):
        note("node names are the inventory hostnames: check them against `kubectl get nodes` before a rebuild")
    return out, ordered


def convert_ansible(data: Any, source: str, node_names: Mapping[str, str] | None = None) -> tuple[dict, list[str]]:
    """Convert already-parsed YAML inventory data (no group_vars/host_vars)."""
    return convert_inventory(inventory_from_data(data, source), node_names)


def parse_node_names(specs: list[str] | tuple[str, ...] | None) -> dict[str, str]:
    """``["192.168.1.10=node1", ...]`` (from ``--node-name``) as a dict; raises ``BadInput``."""
    out: dict[str, str] = {}
    for spec in specs or ():
        host, sep, name = str(spec).partition("=")
        if not sep or not host or not _DNS.match(name.lower()):
            raise BadInput("command line", "--node-name", f"{spec!r}: expected ADDRESS=NODE_NAME")
        out[host] = name.lower()
    return out


def node_names_by_address(node_list: Mapping[str, Any]) -> dict[str, str]:
    """``{address: node name}`` from a NodeList (``GET /api/v1/nodes``): each node's
    ``status.addresses`` (InternalIP, ExternalIP, Hostname). An address two nodes claim is left out."""
    seen: dict[str, set[str]] = {}
    for node in node_list.get("items") or []:
        name = str((node.get("metadata") or {}).get("name") or "")
        for addr in ((node.get("status") or {}).get("addresses") or []):
            if name and addr.get("address") and addr.get("type") in ("InternalIP", "ExternalIP", "Hostname"):
                seen.setdefault(str(addr["address"]), set()).add(name)
    return {addr: names.pop() for addr, names in seen.items() if len(names) == 1}


def node_names_from_cluster(kubeconfig: str | Path) -> dict[str, str]:
    """Node names by address, read from the running cluster's Node objects."""
    from drtool.errors import DrtoolError
    from drtool.kube.client import KubeTransport, api_client_from_kubeconfig

    try:
        transport = KubeTransport(api_client_from_kubeconfig(str(kubeconfig)))
        return node_names_by_address(transport.get_json("/api/v1/nodes", category="list"))
    except DrtoolError as exc:
        raise DrtoolError(f"--kubeconfig {kubeconfig}: cannot list the cluster's nodes: {str(exc).splitlines()[0]}") from exc
