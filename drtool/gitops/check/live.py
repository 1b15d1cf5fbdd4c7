"""A read-only snapshot of the old cluster, when it still answers.

Only lists (one request per kind, bounded pages, short timeouts); Secret values are dropped
as soon as they arrive: the check needs names, labels, owners and types, never data.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

# What drift and data look at: kinds that carry an application's state or wiring.
LISTS: dict[str, str] = {
    "CustomResourceDefinition": "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
    "Deployment": "/apis/apps/v1/deployments",
    "StatefulSet": "/apis/apps/v1/statefulsets",
    "DaemonSet": "/apis/apps/v1/daemonsets",
    "CronJob": "/apis/batch/v1/cronjobs",
    "Service": "/api/v1/services",
    "ConfigMap": "/api/v1/configmaps",
    "Secret": "/api/v1/secrets",
    "PersistentVolumeClaim": "/api/v1/persistentvolumeclaims",
    "PersistentVolume": "/api/v1/persistentvolumes",
    "Ingress": "/apis/networking.k8s.io/v1/ingresses",
    "Kustomization": "/apis/kustomize.toolkit.fluxcd.io/v1/kustomizations",
    "HelmRelease": "/apis/helm.toolkit.fluxcd.io/v2/helmreleases",
}
PAGE = 500
MAX_PAGES = 40


@dataclass
class LiveSnapshot:
    """Objects of the old cluster by kind (Secrets without their data)."""

    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return self.objects.get(kind, [])

    def has(self, kind: str, namespace: str, name: str) -> bool:
        return any((o.get("metadata") or {}).get("name") == name and
                   (o.get("metadata") or {}).get("namespace") == namespace for o in self.of(kind))


def _strip(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    if kind == "Secret":
        return {"kind": "Secret", "apiVersion": "v1", "metadata": obj.get("metadata") or {}, "type": obj.get("type")}
    obj.setdefault("kind", kind)
    return obj


def read_live(transport, budget_s: float = 30.0) -> LiveSnapshot:
    """List every kind in ``LISTS`` through ``transport`` (a ``drtool.kube.client.KubeTransport``).

    A kind the cluster does not serve (404) is simply empty; any other failure is recorded in
    ``errors`` and the kind left empty; after ``budget_s`` seconds the remaining kinds are left
    unread (and recorded so). Never raises for a cluster problem.
    """
    from drtool.errors import DrtoolError
    from drtool.kube.client import NotFound

    snap = LiveSnapshot()
    deadline = time.monotonic() + budget_s
    for kind, path in LISTS.items():
        items: list[dict[str, Any]] = []
        if time.monotonic() > deadline:
            # A cluster answering this slowly is half dead: what was read stands, the rest is noted.
            snap.errors.append(f"{kind}: not listed, the {budget_s:g} s budget for reading the cluster ran out")
            snap.objects[kind] = items
            continue
        token = None
        try:
            for _ in range(MAX_PAGES):
                query: dict[str, Any] = {"limit": PAGE}
                if token:
                    query["continue"] = token
                body = transport.get_json(path, query, category="list")
                items.extend(_strip(kind, o) for o in body.get("items") or [])
                token = (body.get("metadata") or {}).get("continue")
                if not token:
                    break
        except NotFound:
            items = []
        except DrtoolError as exc:
            snap.errors.append(f"{kind}: {str(exc).splitlines()[0]}")
            items = []
        snap.objects[kind] = items
    return snap
