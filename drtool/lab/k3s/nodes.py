"""Node objects, node passwords and the join decision, as pure functions.

K3s guards node names with a per-node password: the node keeps it in
``/etc/rancher/node/password`` (which survives uninstall) and the server keeps a hash in
the ``<name>.node-password.k3s`` Secret in kube-system. A join with a known name and a
different password is rejected; an unknown name gets a new Secret. Deleting the Node
object deletes its Secret (the server's node controller does that), which is the
documented way out.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Callable

from drtool.lab.k3s import K3S_VERSION
from drtool.lab.k3s.flags import Taint

SECRET_SUFFIX = ".node-password.k3s"
SECRET_NAMESPACE = "kube-system"
SECRET_TYPE = "k3s.cattle.io/node-password"

PASSWORD_REJECTED = (
    "Node password rejected, duplicate hostname or contents of '/etc/rancher/node/password' may not "
    "match server node-passwd entry, try enabling a unique node name with the --with-node-id flag"
)

NOT_READY_MESSAGE = ("container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
                     "message:Network plugin returns error: cni plugin not initialized")


def new_password() -> str:
    return secrets.token_hex(16)


def secret_name(node: str) -> str:
    return f"{node}{SECRET_SUFFIX}"


def hash_password(password: str, salt: str | None = None) -> str:
    """``$1:<salt>:<sha256(salt+password)>``: a salted hash, never the password itself."""
    salt = salt or secrets.token_hex(8)
    digest = hashlib.sha256((salt + password).encode()).hexdigest()
    return f"$1:{salt}:{digest}"


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        _, salt, _ = stored_hash.split(":", 2)
    except ValueError:
        return False
    return hmac.compare_digest(hash_password(password, salt), stored_hash)


def password_secret(node: str, password: str) -> dict[str, Any]:
    """The kube-system Secret the server keeps for ``node``."""
    return {
        "apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE, "immutable": True,
        "metadata": {"name": secret_name(node), "namespace": SECRET_NAMESPACE},
        "data": {"hash": base64.b64encode(hash_password(password).encode()).decode()},
    }


@dataclass(frozen=True)
class JoinVerdict:
    accepted: bool
    create_secret: bool = False
    server_log: str = ""           # what the server logs on rejection
    agent_error: str = ""          # what the joining node is told


def check_node_password(node: str, password: str, existing_secret: dict[str, Any] | None) -> JoinVerdict:
    """Decide a join by node name and password against the stored Secret (if any)."""
    if not password:
        return JoinVerdict(False, server_log=f"Node password validation failed for '{node}': empty password",
                           agent_error=PASSWORD_REJECTED)
    if existing_secret is None:
        return JoinVerdict(True, create_secret=True)
    raw = (existing_secret.get("data") or {}).get("hash", "")
    try:
        stored = base64.b64decode(raw).decode()
    except (ValueError, UnicodeDecodeError):
        stored = ""
    if verify_password(stored, password):
        return JoinVerdict(True)
    return JoinVerdict(
        False,
        server_log=(f"Node password validation failed for '{node}': unable to verify hash for node "
                    f"'{node}': hash does not match"),
        agent_error=PASSWORD_REJECTED,
    )


@dataclass(frozen=True)
class NodeSpec:
    """What a joining node declares about itself."""

    name: str
    address: str
    role: str                        # "server" or "agent"
    labels: dict[str, str]
    taints: tuple[Taint, ...] = ()
    etcd: bool = False
    images: tuple[str, ...] = ()     # what the node's containerd holds, as its kubelet reports it


def node_labels(spec: NodeSpec) -> dict[str, str]:
    """The labels K3s and the kubelet put on a node, then the ones given with ``--node-label``."""
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/instance-type": "k3s",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": spec.name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "k3s",
    }
    if spec.role == "server":
        labels["node-role.kubernetes.io/control-plane"] = "true"
        labels["node-role.kubernetes.io/master"] = "true"
    if spec.etcd:
        labels["node-role.kubernetes.io/etcd"] = "true"
    labels.update(spec.labels)
    return labels


def condition(type_: str, status: str, reason: str, message: str, now: str,
              transition: str | None = None) -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": transition or now}


def node_conditions(ready: str, now: str, since: str | None = None) -> list[dict[str, str]]:
    """Kubelet-style conditions; ``ready`` is "True", "False" or "Unknown"."""
    pressure = [
        condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available", now, since),
        condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure", now, since),
        condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available", now, since),
    ]
    if ready == "True":
        rc = condition("Ready", "True", "KubeletReady", "kubelet is posting ready status", now, since)
    elif ready == "Unknown":
        rc = condition("Ready", "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.", now, since)
        for c in pressure:
            c.update(status="Unknown", reason="NodeStatusUnknown", message="Kubelet stopped posting node status.")
    else:
        rc = condition("Ready", "False", "KubeletNotReady", NOT_READY_MESSAGE, now, since)
    return [*pressure, rc]


def node_object(spec: NodeSpec, pod_cidr: str, now: str, node_args: str = "") -> dict[str, Any]:
    """A new, not yet Ready Node as the kubelet registers it."""
    annotations = {
        "k3s.io/hostname": spec.name,
        "k3s.io/internal-ip": spec.address,
        "k3s.io/node-args": node_args or "[]",
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
    }
    obj: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": spec.name, "labels": node_labels(spec), "annotations": annotations},
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr], "providerID": f"k3s://{spec.name}"},
        "status": node_status("False", spec, now),
    }
    if spec.taints:
        obj["spec"]["taints"] = [t.as_api() for t in spec.taints]
    return obj


def node_status(ready: str, spec: NodeSpec, now: str, since: str | None = None) -> dict[str, Any]:
    capacity = {"cpu": "4", "ephemeral-storage": "61255492Ki", "hugepages-2Mi": "0",
                "memory": "8048464Ki", "pods": "110"}
    return {
        "addresses": [{"type": "InternalIP", "address": spec.address}, {"type": "Hostname", "address": spec.name}],
        "allocatable": dict(capacity),
        "capacity": capacity,
        "conditions": node_conditions(ready, now, since),
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "architecture": "amd64", "bootID": "", "containerRuntimeVersion": "containerd://1.7.23-k3s2",
            "kernelVersion": "6.8.0-lab", "kubeProxyVersion": K3S_VERSION, "kubeletVersion": K3S_VERSION,
            "machineID": "", "operatingSystem": "linux", "osImage": "Ubuntu 24.04.1 LTS", "systemUUID": "",
        },
    }


def apply_registration(existing: dict[str, Any], spec: NodeSpec) -> dict[str, Any]:
    """A re-registering kubelet keeps the Node but (re)applies its labels and taints."""
    out = dict(existing)
    meta = dict(existing.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), **node_labels(spec)}
    out["metadata"] = meta
    spec_part = dict(existing.get("spec") or {})
    if spec.taints:
        spec_part["taints"] = [t.as_api() for t in spec.taints]
    out["spec"] = spec_part
    return out


def node_images(refs: tuple[str, ...] | list[str], size_bytes: Callable[[str], int] | None = None) -> list[dict[str, Any]]:
    """``Node.status.images`` as the kubelet reports the images its runtime holds (names, sizeBytes)."""
    return [{"names": [ref], "sizeBytes": size_bytes(ref) if size_bytes else 0} for ref in sorted(set(refs))]


def image_names(node: dict[str, Any]) -> set[str]:
    """Every name in ``Node.status.images``."""
    return {n for entry in (node.get("status") or {}).get("images") or [] for n in entry.get("names") or []}


def ready_state(node: dict[str, Any]) -> str:
    """"True", "False" or "Unknown" from the Node's Ready condition."""
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return str(c.get("status", "Unknown"))
    return "Unknown"


def pod_cidr(index: int) -> str:
    return f"10.42.{index}.0/24"
