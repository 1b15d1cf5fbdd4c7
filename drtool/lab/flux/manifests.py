"""What ``flux bootstrap`` installs: the flux-system Namespace, the toolkit CRDs, the
controller Deployments, and the sync objects (GitRepository + Kustomization ``flux-system``).

The CRDs serve the versions real Flux 2.4 serves, so repos that mix
``source.toolkit.fluxcd.io/v1beta2`` and ``v1`` or ``helm.toolkit.fluxcd.io/v2beta1`` and
``v2`` apply cleanly, and carry Flux's printer columns so ``kubectl get`` looks familiar.
"""
from __future__ import annotations

from typing import Any

import yaml

DEFAULT_VERSION = "v2.4.0"
NAMESPACE = "flux-system"
COMPONENTS = ("source-controller", "kustomize-controller", "helm-controller", "notification-controller")
# Controller image versions shipped with Flux v2.4.0.
_IMAGES = {"source-controller": "v1.4.1", "kustomize-controller": "v1.4.0", "helm-controller": "v1.1.0",
           "notification-controller": "v1.4.0"}

_READY_COLUMNS = [
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Status", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].message'},
]

# (group, kind, plural, short names, [(version, storage)], extra printer columns)
_CRDS: tuple[tuple[str, str, str, tuple[str, ...], tuple[tuple[str, bool], ...], list[dict[str, Any]]], ...] = (
    ("source.toolkit.fluxcd.io", "GitRepository", "gitrepositories", ("gitrepo",),
     (("v1", True), ("v1beta2", False)),
     [{"name": "URL", "type": "string", "jsonPath": ".spec.url"}]),
    ("source.toolkit.fluxcd.io", "HelmRepository", "helmrepositories", ("helmrepo",),
     (("v1", True), ("v1beta2", False)),
     [{"name": "URL", "type": "string", "jsonPath": ".spec.url"}]),
    ("source.toolkit.fluxcd.io", "HelmChart", "helmcharts", ("hc",),
     (("v1", True), ("v1beta2", False)),
     [{"name": "Chart", "type": "string", "jsonPath": ".spec.chart"},
      {"name": "Version", "type": "string", "jsonPath": ".spec.version"}]),
    ("source.toolkit.fluxcd.io", "OCIRepository", "ocirepositories", ("ocirepo",),
     (("v1beta2", True),),
     [{"name": "URL", "type": "string", "jsonPath": ".spec.url"}]),
    ("source.toolkit.fluxcd.io", "Bucket", "buckets", (),
     (("v1", True), ("v1beta2", False)),
     [{"name": "Endpoint", "type": "string", "jsonPath": ".spec.endpoint"}]),
    ("kustomize.toolkit.fluxcd.io", "Kustomization", "kustomizations", ("ks",),
     (("v1", True), ("v1beta2", False)), []),
    ("helm.toolkit.fluxcd.io", "HelmRelease", "helmreleases", ("hr",),
     (("v2", True), ("v2beta2", False), ("v2beta1", False)), []),
)


def crds(version: str = DEFAULT_VERSION) -> list[dict[str, Any]]:
    """The toolkit CustomResourceDefinitions, as in gotk-components.yaml."""
    out = []
    for group, kind, plural, short, versions, columns in _CRDS:
        out.append({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}",
                         "labels": {"app.kubernetes.io/component": group.split(".")[0] + "-controller",
                                    "app.kubernetes.io/instance": NAMESPACE,
                                    "app.kubernetes.io/part-of": "flux",
                                    "app.kubernetes.io/version": version}},
            "spec": {
                "group": group,
                "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural,
                          "singular": kind.lower(), "shortNames": list(short)},
                "scope": "Namespaced",
                "versions": [{"name": v, "served": True, "storage": storage,
                              "subresources": {"status": {}},
                              "additionalPrinterColumns": _READY_COLUMNS[:1] + columns + _READY_COLUMNS[1:],
                              "schema": {"openAPIV3Schema": {"type": "object",
                                                             "x-kubernetes-preserve-unknown-fields": True}}}
                             for v, storage in versions],
            },
        })
    return out


def namespace(version: str = DEFAULT_VERSION) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": NAMESPACE, "labels": {"app.kubernetes.io/instance": NAMESPACE,
                                                      "app.kubernetes.io/part-of": "flux",
                                                      "app.kubernetes.io/version": version,
                                                      "pod-security.kubernetes.io/warn": "restricted"}}}


def controller_deployments(version: str = DEFAULT_VERSION,
                           components: tuple[str, ...] = COMPONENTS) -> list[dict[str, Any]]:
    """One Deployment per toolkit controller in flux-system (no nodeSelector, no tolerations)."""
    out = []
    for name in components:
        labels = {"app": name}
        out.append({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NAMESPACE,
                         "labels": {"app.kubernetes.io/component": name, "app.kubernetes.io/instance": NAMESPACE,
                                    "app.kubernetes.io/part-of": "flux", "app.kubernetes.io/version": version,
                                    "control-plane": "controller"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": dict(labels), "annotations": {
                         "prometheus.io/port": "8080", "prometheus.io/scrape": "true"}},
                         "spec": {"serviceAccountName": name, "terminationGracePeriodSeconds": 10,
                                  "containers": [{"name": "manager",
                                                  "image": f"ghcr.io/fluxcd/{name}:{_IMAGES.get(name, 'v1.0.0')}",
                                                  "args": ["--events-addr=http://notification-controller."
                                                           "flux-system.svc.cluster.local./",
                                                           "--watch-all-namespaces=true", "--log-level=info"]}]}}},
        })
    return out


def components(version: str = DEFAULT_VERSION, extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Every object of gotk-components.yaml, in apply order."""
    return [namespace(version), *crds(version), *controller_deployments(version, COMPONENTS + tuple(extra))]


def sync_objects(url: str, branch: str, path: str, secret_name: str = NAMESPACE,
                 interval: str = "1m0s") -> list[dict[str, Any]]:
    """The GitRepository and Kustomization ``flux-system`` of gotk-sync.yaml."""
    path = "./" + path.strip("/").removeprefix("./") if path.strip("/") not in ("", ".") else "./"
    return [
        {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
         "metadata": {"name": NAMESPACE, "namespace": NAMESPACE},
         "spec": {"interval": interval, "ref": {"branch": branch}, "secretRef": {"name": secret_name},
                  "url": url}},
        {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
         "metadata": {"name": NAMESPACE, "namespace": NAMESPACE},
         "spec": {"interval": "10m0s", "path": path, "prune": True,
                  "sourceRef": {"kind": "GitRepository", "name": NAMESPACE}}},
    ]


def render(objects: list[dict[str, Any]], header: str) -> str:
    """Multi-document YAML with a leading comment, as Flux writes its manifests."""
    docs = "".join("---\n" + yaml.safe_dump(o, sort_keys=False, default_flow_style=False) for o in objects)
    return header + docs


def components_yaml(version: str = DEFAULT_VERSION, extra: tuple[str, ...] = ()) -> str:
    names = ",".join(COMPONENTS + tuple(extra))
    return render(components(version, extra), "# This manifest was generated by flux. DO NOT EDIT.\n"
                                              f"# Flux Version: {version}\n# Components: {names}\n")


def sync_yaml(url: str, branch: str, path: str, secret_name: str = NAMESPACE) -> str:
    return render(sync_objects(url, branch, path, secret_name), "# This manifest was generated by flux. DO NOT EDIT.\n")
