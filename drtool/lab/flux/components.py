"""The objects of Flux v2.4.0's ``gotk-components.yaml``, as ``flux install``/``bootstrap``
generates them, for the lab's simulated ``flux`` CLI to apply.

Follows github.com/fluxcd/flux2 at tag v2.4.0:

* ``pkg/manifestgen/install/templates.go``: the generated kustomization (namespace, ``policies``
  when ``--network-policy`` (default true), ``roles`` with ``nameSuffix: -<namespace>``, one file
  per component), the labels transformer (``app.kubernetes.io/instance``, ``/version``,
  ``/part-of``) and the ``kubernetes.io/os: linux`` node selector;
* ``manifests/install/namespace.yaml`` (pod-security ``warn`` labels), ``manifests/rbac/``
  (ClusterRoles ``crd-controller``, ``flux-edit``, ``flux-view``; ClusterRoleBindings
  ``crd-controller``, ``cluster-reconciler``; ResourceQuota ``critical-pods``),
  ``manifests/policies/`` (NetworkPolicies ``allow-egress``, ``allow-scraping``, ``allow-webhooks``),
  ``manifests/bases/<controller>/`` (ServiceAccount, ``app.kubernetes.io/component`` label,
  ``priorityClassName: system-cluster-critical`` for source/kustomize/helm-controller);
* each controller's ``config/manager/`` at the release flux2 v2.4.0 pins (Services of
  source-controller and notification-controller/webhook-receiver, container ports);
* the CRDs from :mod:`drtool.kube.apisurface` (generated from the controllers' CRDs).

Objects come in the order ``flux`` applies them: CRDs and the Namespace first (its staged
apply), then the rest in kustomize's kind order.
"""
from __future__ import annotations

from typing import Any, Iterable

from drtool.kube import apisurface

DEFAULT_VERSION = "v2.4.0"
NAMESPACE = "flux-system"
DEFAULT_COMPONENTS = apisurface.FLUX_DEFAULT_COMPONENTS
EXTRA_COMPONENTS = apisurface.FLUX_EXTRA_COMPONENTS
FLUX_GROUPS = ("source.toolkit.fluxcd.io", "kustomize.toolkit.fluxcd.io", "helm.toolkit.fluxcd.io",
               "notification.toolkit.fluxcd.io", "image.toolkit.fluxcd.io")
# manifests/bases/*/patch.yaml at v2.4.0
_CRITICAL = ("source-controller", "kustomize-controller", "helm-controller")
# config/manager/deployment.yaml of each controller: (name, containerPort)
_PORTS = {
    "source-controller": (("http", 9090), ("http-prom", 8080), ("healthz", 9440)),
    "notification-controller": (("http", 9090), ("http-webhook", 9292), ("http-prom", 8080), ("healthz", 9440)),
}
_DEFAULT_PORTS = (("http-prom", 8080), ("healthz", 9440))
# config/manager/service.yaml: (service, controller, targetPort)
_SERVICES = (("source-controller", "source-controller", "http"),
             ("notification-controller", "notification-controller", "http"),
             ("webhook-receiver", "notification-controller", "http-webhook"))
# kustomize's legacy kind order (api/resid/gvk.go orderFirst), which `flux install` output follows.
_ORDER_FIRST = ("Namespace", "ResourceQuota", "StorageClass", "CustomResourceDefinition", "ServiceAccount",
                "PodSecurityPolicy", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "ConfigMap",
                "Secret", "Endpoints", "Service", "LimitRange", "PriorityClass", "PersistentVolume",
                "PersistentVolumeClaim", "Deployment", "StatefulSet", "CronJob", "PodDisruptionBudget")
_ORDER_LAST = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")


def components_list(extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Default components plus ``--components-extra`` (validated)."""
    extra = tuple(extra)
    unknown = [c for c in extra if c not in EXTRA_COMPONENTS]
    if unknown:
        # flux2 v2.4.0 internal/utils/utils.go ValidateComponents
        raise ValueError(f"component {unknown[0]} is not available")
    return DEFAULT_COMPONENTS + tuple(c for c in EXTRA_COMPONENTS if c in extra)


def _labels(version: str, component: str | None = None, namespace: str = NAMESPACE) -> dict[str, str]:
    out = {"app.kubernetes.io/instance": namespace, "app.kubernetes.io/part-of": "flux",
           "app.kubernetes.io/version": version}
    if component:
        out["app.kubernetes.io/component"] = component
    return out


def _meta(name: str, labels: dict[str, str], namespace: str | None = None,
          extra_labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = {**(extra_labels or {}), **labels}
    return meta


def namespace(version: str = DEFAULT_VERSION, ns: str = NAMESPACE) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": _meta(ns, _labels(version, namespace=ns),
                              extra_labels={"pod-security.kubernetes.io/warn": "restricted",
                                            "pod-security.kubernetes.io/warn-version": "latest"})}


def crds(version: str = DEFAULT_VERSION, extra: Iterable[str] = (), ns: str = NAMESPACE) -> list[dict[str, Any]]:
    """The CustomResourceDefinitions of the selected components, with the versions v2.4.0 serves."""
    out = []
    # The lab records Flux v2.4.0's CRDs only; another --version gets them under its own label.
    for res in apisurface.flux_resources(DEFAULT_VERSION, tuple(extra)):
        component = res.origin.split(":", 1)[1]
        out.append(res.crd(_labels(version, component, ns)))
    return out


def rbac(version: str = DEFAULT_VERSION, ns: str = NAMESPACE, components: tuple[str, ...] = DEFAULT_COMPONENTS
         ) -> list[dict[str, Any]]:
    """manifests/rbac with the ``-<namespace>`` name suffix (and roleRefs renamed to match)."""
    labels = _labels(version, namespace=ns)
    sfx = f"-{ns}"
    rbac_api = "rbac.authorization.k8s.io/v1"
    # controller.yaml binds every controller's ServiceAccount, selected or not.
    all_sas = [{"kind": "ServiceAccount", "name": c, "namespace": ns}
               for c in ("kustomize-controller", "helm-controller", "source-controller", "notification-controller",
                         "image-reflector-controller", "image-automation-controller")]
    crd_controller_rules = [
        *({"apiGroups": [g], "resources": ["*"], "verbs": ["*"]} for g in FLUX_GROUPS),
        {"apiGroups": [""], "resources": ["namespaces", "secrets", "configmaps", "serviceaccounts"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        {"apiGroups": [""], "resources": ["configmaps"],
         "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
        {"apiGroups": [""], "resources": ["configmaps/status"], "verbs": ["get", "update", "patch"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
        {"nonResourceURLs": ["/livez/ping"], "verbs": ["head"]},
    ]
    flux_groups = [g for g in ("notification.toolkit.fluxcd.io", "source.toolkit.fluxcd.io", "helm.toolkit.fluxcd.io",
                               "image.toolkit.fluxcd.io", "kustomize.toolkit.fluxcd.io")]
    return [
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": _meta("critical-pods" + sfx, labels, ns),
         "spec": {"hard": {"pods": "1000"},
                  "scopeSelector": {"matchExpressions": [
                      {"operator": "In", "scopeName": "PriorityClass",
                       "values": ["system-node-critical", "system-cluster-critical"]}]}}},
        {"apiVersion": rbac_api, "kind": "ClusterRole", "metadata": _meta("crd-controller" + sfx, labels),
         "rules": crd_controller_rules},
        {"apiVersion": rbac_api, "kind": "ClusterRole",
         "metadata": _meta("flux-edit" + sfx, labels, extra_labels={
             "rbac.authorization.k8s.io/aggregate-to-admin": "true",
             "rbac.authorization.k8s.io/aggregate-to-edit": "true"}),
         "rules": [{"apiGroups": flux_groups, "resources": ["*"],
                    "verbs": ["create", "delete", "deletecollection", "patch", "update"]}]},
        {"apiVersion": rbac_api, "kind": "ClusterRole",
         "metadata": _meta("flux-view" + sfx, labels, extra_labels={
             "rbac.authorization.k8s.io/aggregate-to-admin": "true",
             "rbac.authorization.k8s.io/aggregate-to-edit": "true",
             "rbac.authorization.k8s.io/aggregate-to-view": "true"}),
         "rules": [{"apiGroups": flux_groups, "resources": ["*"], "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": rbac_api, "kind": "ClusterRoleBinding", "metadata": _meta("cluster-reconciler" + sfx, labels),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
         "subjects": [{"kind": "ServiceAccount", "name": "kustomize-controller", "namespace": ns},
                      {"kind": "ServiceAccount", "name": "helm-controller", "namespace": ns}]},
        {"apiVersion": rbac_api, "kind": "ClusterRoleBinding", "metadata": _meta("crd-controller" + sfx, labels),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "crd-controller" + sfx},
         "subjects": all_sas},
    ]


def network_policies(version: str = DEFAULT_VERSION, ns: str = NAMESPACE) -> list[dict[str, Any]]:
    """manifests/policies: egress anywhere, scraping on 8080 and webhooks into notification-controller."""
    labels = _labels(version, namespace=ns)
    np = "networking.k8s.io/v1"
    return [
        {"apiVersion": np, "kind": "NetworkPolicy", "metadata": _meta("allow-egress", labels, ns),
         "spec": {"egress": [{}], "ingress": [{"from": [{"podSelector": {}}]}], "podSelector": {},
                  "policyTypes": ["Ingress", "Egress"]}},
        {"apiVersion": np, "kind": "NetworkPolicy", "metadata": _meta("allow-scraping", labels, ns),
         "spec": {"ingress": [{"from": [{"namespaceSelector": {}}], "ports": [{"port": 8080, "protocol": "TCP"}]}],
                  "podSelector": {}, "policyTypes": ["Ingress"]}},
        {"apiVersion": np, "kind": "NetworkPolicy", "metadata": _meta("allow-webhooks", labels, ns),
         "spec": {"ingress": [{"from": [{"namespaceSelector": {}}]}],
                  "podSelector": {"matchLabels": {"app": "notification-controller"}}, "policyTypes": ["Ingress"]}},
    ]


def service_accounts(version: str = DEFAULT_VERSION, components: tuple[str, ...] = DEFAULT_COMPONENTS,
                     ns: str = NAMESPACE) -> list[dict[str, Any]]:
    return [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(c, _labels(version, c, ns), ns)}
            for c in components]


def services(version: str = DEFAULT_VERSION, components: tuple[str, ...] = DEFAULT_COMPONENTS,
             ns: str = NAMESPACE) -> list[dict[str, Any]]:
    return [{"apiVersion": "v1", "kind": "Service",
             "metadata": _meta(name, _labels(version, owner, ns), ns, extra_labels={"control-plane": "controller"}),
             "spec": {"type": "ClusterIP", "selector": {"app": owner},
                      "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": target}]}}
            for name, owner, target in _SERVICES if owner in components]


def deployments(version: str = DEFAULT_VERSION, components: tuple[str, ...] = DEFAULT_COMPONENTS,
                ns: str = NAMESPACE) -> list[dict[str, Any]]:
    """One Deployment per controller, with its release's image, ports and the install's node selector."""
    images = apisurface.flux_controller_versions(DEFAULT_VERSION)
    out = []
    for name in components:
        labels = {"app": name}
        pod_spec: dict[str, Any] = {
            "serviceAccountName": name, "terminationGracePeriodSeconds": 10,
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "containers": [{"name": "manager", "image": f"ghcr.io/fluxcd/{name}:{images[name]}",
                            "args": [f"--events-addr=http://notification-controller.{ns}.svc.cluster.local./",
                                     "--watch-all-namespaces=true", "--log-level=info"],
                            "ports": [{"containerPort": p, "name": n, "protocol": "TCP"}
                                      for n, p in _PORTS.get(name, _DEFAULT_PORTS)]}]}
        if name in _CRITICAL:
            pod_spec["priorityClassName"] = "system-cluster-critical"
        out.append({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": _meta(name, _labels(version, name, ns), ns, extra_labels={"control-plane": "controller"}),
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": dict(labels), "annotations": {
                         "prometheus.io/port": "8080", "prometheus.io/scrape": "true"}},
                         "spec": pod_spec}},
        })
    return out


def _order(obj: dict[str, Any]) -> tuple[int, str, str]:
    kind = obj["kind"]
    if kind in _ORDER_FIRST:
        rank = _ORDER_FIRST.index(kind)
    elif kind in _ORDER_LAST:
        rank = len(_ORDER_FIRST) + 1 + _ORDER_LAST.index(kind)
    else:
        rank = len(_ORDER_FIRST)
    return rank, kind if rank == len(_ORDER_FIRST) else "", ""


def components(version: str = DEFAULT_VERSION, extra: Iterable[str] = (), *, network_policy: bool = True,
               ns: str = NAMESPACE) -> list[dict[str, Any]]:
    """Every object of gotk-components.yaml, in the order ``flux`` applies them."""
    selected = components_list(extra)
    objs = [namespace(version, ns), *crds(version, extra, ns), *rbac(version, ns, selected),
            *service_accounts(version, selected, ns), *services(version, selected, ns),
            *deployments(version, selected, ns)]
    if network_policy:
        objs += network_policies(version, ns)
    # Staged: CRDs and the Namespace first, then everything else (flux2 pkg/manifestgen apply).
    first = [o for o in objs if o["kind"] in ("CustomResourceDefinition", "Namespace")]
    rest = sorted((o for o in objs if o["kind"] not in ("CustomResourceDefinition", "Namespace")), key=_order)
    return sorted(first, key=lambda o: o["kind"] != "Namespace") + rest
