"""Convert a k3s-ansible ``inventory.yml`` into a drtool inventory (pure: data in, data out).

k3s-ansible keeps the cluster token as a literal (``token:``); drtool never
does, so the token is replaced by ``token_env: K3S_TOKEN`` and a note says so.
Flux settings do not exist in k3s-ansible: placeholders are written and must be edited.
"""
from __future__ import annotations

import re
import shlex
from typing import Any

from drtool.errors import BadInput

_DNS = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _hosts(group: Any) -> dict[str, dict]:
    if not isinstance(group, dict):
        return {}
    hosts = group.get("hosts") or {}
    if not isinstance(hosts, dict):
        return {}
    return {str(h): (v if isinstance(v, dict) else {}) for h, v in hosts.items()}


def convert_ansible(data: Any, source: str) -> tuple[dict, list[str]]:
    """Return (drtool inventory data, notes for the operator)."""
    if not isinstance(data, dict) or not isinstance(data.get("k3s_cluster"), dict):
        raise BadInput(source, "k3s_cluster", "expected a k3s-ansible inventory with a k3s_cluster group")
    cluster = data["k3s_cluster"]
    children = cluster.get("children") or {}
    vars_ = cluster.get("vars") or {}
    if not isinstance(children, dict) or not isinstance(vars_, dict):
        raise BadInput(source, "k3s_cluster", "children and vars must be mappings")
    servers, agents = _hosts(children.get("server")), _hosts(children.get("agent"))
    if not servers:
        raise BadInput(source, "k3s_cluster.children.server.hosts", "at least one server host is required")
    version = vars_.get("k3s_version")
    if not version:
        raise BadInput(source, "k3s_cluster.vars.k3s_version", "required (drtool pins the K3s version)")

    notes: list[str] = []
    nodes = []
    for role, hosts in (("server", servers), ("agent", agents)):
        for i, (host, hvars) in enumerate(hosts.items(), 1):
            address = str(hvars.get("ansible_host", host))
            name = host.lower() if _DNS.match(host.lower()) else f"{role}{i}"
            node: dict[str, Any] = {"name": name, "host": address, "role": role}
            port = hvars.get("ansible_port", vars_.get("ansible_port"))
            user = hvars.get("ansible_user", vars_.get("ansible_user"))
            if port:
                node["port"] = int(port)
            if user:
                node["user"] = str(user)
            nodes.append(node)

    endpoint = str(vars_.get("api_endpoint") or "")
    if not endpoint or "{{" in endpoint:
        endpoint = nodes[0]["host"]
        notes.append(f"api_endpoint was a template or missing: using the first server {endpoint}")
    if not endpoint.startswith("https://"):
        endpoint = f"https://{endpoint}:6443"

    if vars_.get("token"):
        notes.append("the literal token was NOT copied: export K3S_TOKEN with it (or set k3s.token.token_file)")
    out = {
        "cluster": {"name": "k3s", "api_endpoint": endpoint},
        "nodes": nodes,
        "k3s": {
            "version": str(version),
            "server_args": shlex.split(str(vars_.get("extra_server_args") or "")),
            "agent_args": shlex.split(str(vars_.get("extra_agent_args") or "")),
            "token": {"token_env": "K3S_TOKEN"},
        },
        "flux": {
            "version": "v2.4.0", "provider": "github", "owner": "CHANGE-ME", "repository": "CHANGE-ME",
            "branch": "main", "path": "clusters/k3s", "personal": True,
        },
    }
    notes.append("flux settings are placeholders (owner/repository/path): edit them before a rebuild")
    return out, notes
