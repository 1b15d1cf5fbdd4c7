"""The check's single door to the kustomize builder, the API surface and the chart catalog.

The check must build a repository exactly the way Flux does (and the way the lab's
simulated kustomize-controller does), and judge kinds against the API that the pinned
K3s and Flux versions serve. Those live in their own modules; this adapter is the only
place that imports them, so the rest of ``drtool.gitops.check`` never changes when they do.
While a richer module is absent, a minimal fallback keeps the check working:
the lab's kustomize builder and a small table of built-in kinds.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

try:  # the shared builder (Flux's kustomize + postBuild substitution)
    from drtool.gitops.kustomize import BuildError  # type: ignore[import-not-found]
    from drtool.gitops.kustomize import build_kustomization as _build_dicts  # type: ignore[import-not-found]
    from drtool.gitops.kustomize import substitute as _substitute  # type: ignore[import-not-found]
except ImportError:  # fallback: the lab's builder (imported only when a build needs it)
    _build_dicts = None
    _substitute = None

    class BuildError(Exception):  # type: ignore[no-redef]
        """The path cannot be built; ``str()`` names the file."""

try:  # the API surface of the pinned Kubernetes/K3s and Flux versions
    from drtool.kube import apisurface as _apisurface  # type: ignore[attr-defined]
except ImportError:
    _apisurface = None

try:  # which CRDs a chart installs
    from drtool.gitops.charts import crds_for_chart as _crds_for_chart  # type: ignore[import-not-found]
except ImportError:
    _crds_for_chart = None

# Annotation kustomize puts on every built object naming the file it came from.
_PATH_ANNOTATIONS = ("internal.config.kubernetes.io/path", "config.kubernetes.io/path")


@dataclass(frozen=True)
class Built:
    """One object of a build and the repository-relative file it came from ("" when unknown)."""

    obj: dict[str, Any]
    source: str


class Builder:
    """Builds Flux Kustomization paths of one checkout, the way kustomize-controller does.

    Plain paths (resources only, no Flux build fields) are built in-process
    (``drtool.gitops.plainbuild``); everything else, errors included, goes to the shared
    builder, whose objects are traced back to their files through ``Provenance``.
    """

    def __init__(self, root: Path):
        from drtool.gitops.plainbuild import PlainBuilder

        self.root = Path(root)
        self.plain = PlainBuilder(self.root)
        self._provenance: Provenance | None = None

    def build(self, path: str, spec: dict[str, Any] | None = None) -> list[Built]:
        """The objects Flux would build from ``path`` with Kustomization ``spec``; raises ``BuildError``."""
        from drtool.gitops.plainbuild import NotPlain

        try:
            return [Built(obj, src) for obj, src in self.plain.build(path, spec)]
        except NotPlain:
            pass
        if _build_dicts is not None:
            if self._provenance is None:
                self._provenance = Provenance(self.root)
            out = []
            prefix, suffix = str((spec or {}).get("namePrefix") or ""), str((spec or {}).get("nameSuffix") or "")
            for obj in _build_dicts(self.root, path, spec or {}):
                notes = (obj.get("metadata") or {}).get("annotations") or {}
                source = next((notes[a] for a in _PATH_ANNOTATIONS if a in notes), "") or \
                    self._provenance.file_of(obj, prefix, suffix)
                out.append(Built(dict(obj), str(source)))
            return out
        from drtool.lab.controllers.kustomize import BuildError as LabBuildError
        from drtool.lab.controllers.kustomize import build as lab_build

        try:
            built = [Built(m.obj, m.source) for m in lab_build(self.root, path)]
        except LabBuildError as exc:
            raise BuildError(str(exc)) from None
        target_ns = (spec or {}).get("targetNamespace")
        for b in built if target_ns else ():
            if b.obj.get("kind") not in _CLUSTER_SCOPED:
                b.obj.setdefault("metadata", {})["namespace"] = target_ns
        return built


_CLUSTER_SCOPED = frozenset({"Namespace", "PersistentVolume", "CustomResourceDefinition", "ClusterRole",
                             "ClusterRoleBinding", "StorageClass", "PriorityClass", "IngressClass"})


class Provenance:
    """Which repository file declares an object, for builders that do not say (kind and name match)."""

    def __init__(self, root: Path):
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        self.index: dict[tuple[str, str], list[tuple[str, str]]] = {}
        root = Path(root)
        for path in sorted(root.rglob("*")):
            if path.suffix not in (".yaml", ".yml") or ".git" in path.parts or not path.is_file():
                continue
            try:
                docs = list(yaml.load_all(path.read_bytes(), Loader=loader))
            except (yaml.YAMLError, OSError, UnicodeDecodeError):
                continue
            rel = path.relative_to(root).as_posix()
            for doc in docs:
                if isinstance(doc, dict) and isinstance(doc.get("metadata"), dict):
                    meta = doc["metadata"]
                    self.index.setdefault((str(doc.get("kind")), str(meta.get("name"))), []).append(
                        (str(meta.get("namespace") or ""), rel))

    def file_of(self, obj: dict[str, Any], prefix: str = "", suffix: str = "") -> str:
        """The file declaring ``obj`` (its name with the Kustomization's namePrefix/nameSuffix taken off)."""
        meta = obj.get("metadata") or {}
        name = str(meta.get("name"))
        if prefix and name.startswith(prefix):
            name = name[len(prefix):]
        if suffix and name.endswith(suffix):
            name = name[: -len(suffix)]
        found = self.index.get((str(obj.get("kind")), name), []) or \
            self.index.get((str(obj.get("kind")), str(meta.get("name"))), [])
        same_ns = [f for ns, f in found if ns == str(meta.get("namespace") or "")]
        return (same_ns or [f for _, f in found] or [""])[0]


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-=]([^}]*))?\}")


def substitute(objects: list[dict[str, Any]], variables: dict[str, str]) -> list[dict[str, Any]]:
    """postBuild substitution of ``variables``; unknown variables keep their ``${...}`` text.

    The fallback handles ``${var}`` and ``${var:=default}``/``${var:-default}``, the forms
    kustomize-controller v1.4.0 documents for ``spec.postBuild.substitute``
    (api/v1/kustomization_types.go, PostBuild); a value the check cannot know stays visible.
    """
    if _substitute is not None:
        return _substitute(objects, variables)

    def walk(value: Any) -> Any:
        if isinstance(value, str) and "${" in value:
            def one(m: re.Match) -> str:
                if m.group(1) in variables:
                    return str(variables[m.group(1)])
                return m.group(2) if m.group(2) is not None else m.group(0)
            return _VAR.sub(one, value)
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return [walk(o) for o in objects]


# --- API surface ---------------------------------------------------------------------------

# Fallback: the built-in groups/versions/kinds Kubernetes v1.31 serves
# (kubernetes/kubernetes api/discovery/aggregated_v2.json at v1.31.4), the kinds K3s
# v1.31.4+k3s1 adds itself (helm.cattle.io, k3s.cattle.io), and what Flux v2.4.0's default
# install serves (DOMAIN.md "Served versions in Flux v2.4").
_BUILTIN: dict[str, tuple[str, ...]] = {
    "v1": ("Binding", "ComponentStatus", "ConfigMap", "Endpoints", "Event", "LimitRange", "Namespace", "Node",
           "PersistentVolume", "PersistentVolumeClaim", "Pod", "PodTemplate", "ReplicationController",
           "ResourceQuota", "Secret", "Service", "ServiceAccount"),
    "admissionregistration.k8s.io/v1": ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
                                        "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"),
    "apiextensions.k8s.io/v1": ("CustomResourceDefinition",),
    "apiregistration.k8s.io/v1": ("APIService",),
    "apps/v1": ("ControllerRevision", "DaemonSet", "Deployment", "ReplicaSet", "StatefulSet"),
    "autoscaling/v1": ("HorizontalPodAutoscaler",),
    "autoscaling/v2": ("HorizontalPodAutoscaler",),
    "batch/v1": ("CronJob", "Job"),
    "certificates.k8s.io/v1": ("CertificateSigningRequest",),
    "coordination.k8s.io/v1": ("Lease",),
    "discovery.k8s.io/v1": ("EndpointSlice",),
    "events.k8s.io/v1": ("Event",),
    "flowcontrol.apiserver.k8s.io/v1": ("FlowSchema", "PriorityLevelConfiguration"),
    "flowcontrol.apiserver.k8s.io/v1beta3": ("FlowSchema", "PriorityLevelConfiguration"),
    "networking.k8s.io/v1": ("Ingress", "IngressClass", "NetworkPolicy"),
    "node.k8s.io/v1": ("RuntimeClass",),
    "policy/v1": ("PodDisruptionBudget",),
    "rbac.authorization.k8s.io/v1": ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"),
    "scheduling.k8s.io/v1": ("PriorityClass",),
    "storage.k8s.io/v1": ("CSIDriver", "CSINode", "CSIStorageCapacity", "StorageClass", "VolumeAttachment"),
    "helm.cattle.io/v1": ("HelmChart", "HelmChartConfig"),
    "k3s.cattle.io/v1": ("Addon", "ETCDSnapshotFile"),
    "metrics.k8s.io/v1beta1": ("NodeMetrics", "PodMetrics"),
}
_FLUX_V24: dict[str, tuple[str, ...]] = {
    "source.toolkit.fluxcd.io/v1": ("GitRepository", "HelmRepository", "HelmChart", "Bucket"),
    "source.toolkit.fluxcd.io/v1beta2": ("GitRepository", "HelmRepository", "HelmChart", "Bucket", "OCIRepository"),
    "source.toolkit.fluxcd.io/v1beta1": ("GitRepository", "HelmRepository", "HelmChart", "Bucket"),
    "kustomize.toolkit.fluxcd.io/v1": ("Kustomization",),
    "kustomize.toolkit.fluxcd.io/v1beta2": ("Kustomization",),
    "kustomize.toolkit.fluxcd.io/v1beta1": ("Kustomization",),
    "helm.toolkit.fluxcd.io/v2": ("HelmRelease",),
    "helm.toolkit.fluxcd.io/v2beta2": ("HelmRelease",),
    "helm.toolkit.fluxcd.io/v2beta1": ("HelmRelease",),
    "notification.toolkit.fluxcd.io/v1": ("Receiver",),
    "notification.toolkit.fluxcd.io/v1beta3": ("Alert", "Provider"),
    "notification.toolkit.fluxcd.io/v1beta2": ("Alert", "Provider", "Receiver"),
    "notification.toolkit.fluxcd.io/v1beta1": ("Alert", "Provider", "Receiver"),
}
FLUX_GROUP_SUFFIX = ".toolkit.fluxcd.io"


@dataclass(frozen=True)
class Surface:
    """The ``(group/version, kind)`` pairs a freshly installed cluster serves before any CRD of the repo."""

    served: frozenset[tuple[str, str]]
    source: str
    """Where the table came from (shown in ``--json`` output)."""

    def serves(self, api_version: str, kind: str) -> bool:
        return (api_version, kind) in self.served

    def versions_of(self, group: str, kind: str) -> list[str]:
        """Served versions of ``kind`` in ``group`` (``""`` for core)."""
        out = []
        for gv, k in self.served:
            g, _, v = gv.rpartition("/")
            if k == kind and g == group:
                out.append(v)
        return sorted(out)

    def knows_group(self, group: str) -> bool:
        return any(gv.rpartition("/")[0] == group for gv, _ in self.served)


def api_surface(k3s_version: str, flux_version: str, server_args: Iterable[str] = (),
                components_extra: Iterable[str] = ()) -> Surface:
    """What a fresh cluster at the pinned K3s and Flux versions serves before the repo's own CRDs."""
    args = list(server_args)
    if _apisurface is not None:
        minor = ".".join(k3s_version.lstrip("v").split(".")[:2])
        try:
            resources = (list(_apisurface.builtin_resources(minor)) + list(_apisurface.k3s_resources())
                         + list(_apisurface.flux_resources(flux_version, tuple(components_extra))))
        except ValueError:
            resources = None  # a version the recorded surface does not cover: use the table below
        if resources is not None:
            served = {(f"{r.group}/{v}" if r.group else v, r.kind) for r in resources for v in r.versions}
            return Surface(frozenset(served), f"drtool.kube.apisurface (Kubernetes {minor}, Flux {flux_version})")
    served = {(gv, k) for gv, kinds in list(_BUILTIN.items()) + list(_FLUX_V24.items()) for k in kinds}
    if not _disabled("traefik", args):
        # K3s installs Traefik from its packaged chart unless --disable traefik.
        served |= {("traefik.io/v1alpha1", k) for k in ("IngressRoute", "IngressRouteTCP", "IngressRouteUDP",
                                                       "Middleware", "MiddlewareTCP", "ServersTransport",
                                                       "ServersTransportTCP", "TLSOption", "TLSStore",
                                                       "TraefikService")}
    return Surface(frozenset(served), f"built-in table (Kubernetes v1.31, K3s {k3s_version}, Flux v2.4)")


def _disabled(component: str, args: list[str]) -> bool:
    for i, arg in enumerate(args):
        if arg.startswith("--disable="):
            if component in arg.split("=", 1)[1].split(","):
                return True
        elif arg == "--disable" and i + 1 < len(args) and component in args[i + 1].split(","):
            return True
    return False


# --- chart catalog -------------------------------------------------------------------------

# Fallback catalog: the CRDs the charts the check meets most often install by default.
_CHART_CRDS: dict[str, tuple[tuple[str, str], ...]] = {
    "gateway-helm": tuple(("gateway.networking.k8s.io", k) for k in
                          ("GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute", "ReferenceGrant",
                           "TLSRoute", "TCPRoute", "UDPRoute", "BackendTLSPolicy")) +
                    tuple(("gateway.envoyproxy.io", k) for k in
                          ("EnvoyProxy", "EnvoyPatchPolicy", "ClientTrafficPolicy", "BackendTrafficPolicy",
                           "SecurityPolicy", "EnvoyExtensionPolicy", "Backend", "HTTPRouteFilter")),
    "kube-prometheus-stack": tuple(("monitoring.coreos.com", k) for k in
                                   ("Alertmanager", "AlertmanagerConfig", "PodMonitor", "Probe", "Prometheus",
                                    "PrometheusAgent", "PrometheusRule", "ScrapeConfig", "ServiceMonitor",
                                    "ThanosRuler")),
}


def crds_for_chart(chart: str, version: str, values: dict[str, Any] | None = None) -> set[tuple[str, str]]:
    """``(group, kind)`` pairs the chart installs as CRDs with ``values``; empty when the chart is unknown."""
    if _crds_for_chart is not None:
        out = set()
        for crd in _crds_for_chart(chart, version, values=values) or ():
            if isinstance(crd, tuple):
                out.add((crd[0], crd[1]))
            else:
                out.add((getattr(crd, "group", ""), getattr(crd, "kind", "")))
        return out
    return set(_CHART_CRDS.get(chart, ()))
