"""The kinds the lab API serves: built-ins plus whatever CRDs register.

A kind's identity is ``(group, kind)``; it may be served under several versions
(Flux repos mix ``v1beta2`` and ``v1`` of one kind), all backed by the same objects.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class KindInfo:
    """How one kind is addressed and what it supports."""

    group: str                          # "" for the core group
    versions: tuple[str, ...]           # served versions, preferred first
    kind: str
    plural: str
    namespaced: bool
    subresources: tuple[str, ...] = ("status",)
    short_names: tuple[str, ...] = ()
    singular: str = ""
    categories: tuple[str, ...] = ()
    # CRD additionalPrinterColumns (per the preferred version) for kubectl's table output.
    printer_columns: tuple[dict[str, Any], ...] = ()
    builtin: bool = False

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @property
    def resource(self) -> str:
        """The name used in request counts and messages: ``pods``, ``kustomizations.kustomize.toolkit.fluxcd.io``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def api_version(self, version: str | None = None) -> str:
        v = version or self.versions[0]
        return f"{self.group}/{v}" if self.group else v


def split_api_version(api_version: str) -> tuple[str, str]:
    """``"apps/v1"`` → ``("apps", "v1")``; ``"v1"`` → ``("", "v1")``."""
    group, _, version = api_version.rpartition("/")
    return group, version


def _core(kind: str, plural: str, namespaced: bool, status: bool = True, short: tuple[str, ...] = (),
          categories: tuple[str, ...] = ()) -> KindInfo:
    return KindInfo("", ("v1",), kind, plural, namespaced, ("status",) if status else (), short,
                    categories=categories, builtin=True)


BUILTIN_KINDS: tuple[KindInfo, ...] = (
    _core("Namespace", "namespaces", False, short=("ns",)),
    _core("Node", "nodes", False, short=("no",)),
    _core("Pod", "pods", True, short=("po",), categories=("all",)),
    _core("Service", "services", True, short=("svc",), categories=("all",)),
    _core("Secret", "secrets", True, status=False),
    _core("ConfigMap", "configmaps", True, status=False, short=("cm",)),
    _core("Event", "events", True, status=False, short=("ev",)),
    _core("ServiceAccount", "serviceaccounts", True, status=False, short=("sa",)),
    _core("PersistentVolume", "persistentvolumes", False, short=("pv",)),
    _core("PersistentVolumeClaim", "persistentvolumeclaims", True, short=("pvc",)),
    KindInfo("apps", ("v1",), "Deployment", "deployments", True, short_names=("deploy",),
             categories=("all",), builtin=True),
    KindInfo("apps", ("v1",), "StatefulSet", "statefulsets", True, short_names=("sts",),
             categories=("all",), builtin=True),
    KindInfo("apps", ("v1",), "DaemonSet", "daemonsets", True, short_names=("ds",),
             categories=("all",), builtin=True),
    KindInfo("apps", ("v1",), "ReplicaSet", "replicasets", True, short_names=("rs",),
             categories=("all",), builtin=True),
    KindInfo("batch", ("v1",), "Job", "jobs", True, categories=("all",), builtin=True),
    # Part of Kubernetes 1.31's networking.k8s.io/v1; Flux's gotk-components.yaml carries three.
    KindInfo("networking.k8s.io", ("v1",), "NetworkPolicy", "networkpolicies", True, subresources=(),
             short_names=("netpol",), builtin=True),
    KindInfo("apiextensions.k8s.io", ("v1",), "CustomResourceDefinition", "customresourcedefinitions",
             False, short_names=("crd", "crds"), builtin=True),
    KindInfo("events.k8s.io", ("v1",), "Event", "events", True, subresources=(), short_names=("ev",),
             builtin=True),
)


@dataclass
class KindRegistry:
    """Lookup of kinds by ``(group, kind)`` and by ``(group, version, plural)``."""

    _by_kind: dict[tuple[str, str], KindInfo] = field(default_factory=dict)

    @classmethod
    def with_builtins(cls) -> "KindRegistry":
        reg = cls()
        for info in BUILTIN_KINDS:
            reg.add(info)
        return reg

    def add(self, info: KindInfo) -> KindInfo:
        """Register ``info``; versions of an already known kind are merged (new ones appended)."""
        known = self._by_kind.get((info.group, info.kind))
        if known is not None:
            versions = tuple(dict.fromkeys(info.versions + known.versions))
            info = replace(info, versions=versions)
        self._by_kind[(info.group, info.kind)] = info
        return info

    def remove(self, group: str, kind: str) -> None:
        self._by_kind.pop((group, kind), None)

    def by_kind(self, group: str, kind: str) -> KindInfo | None:
        return self._by_kind.get((group, kind))

    def by_plural(self, group: str, version: str, plural: str) -> KindInfo | None:
        for info in self._by_kind.values():
            if info.group == group and info.plural == plural and version in info.versions:
                return info
        return None

    def all(self) -> Iterable[KindInfo]:
        return list(self._by_kind.values())

    def groups(self) -> dict[str, list[str]]:
        """Every non-core group with its versions (preferred first), in registration order."""
        out: dict[str, list[str]] = {}
        for info in self._by_kind.values():
            if info.group:
                vs = out.setdefault(info.group, [])
                for v in info.versions:
                    if v not in vs:
                        vs.append(v)
        return out

    def in_group_version(self, group: str, version: str) -> list[KindInfo]:
        return [i for i in self._by_kind.values() if i.group == group and version in i.versions]


def kind_from_crd(crd: dict[str, Any]) -> KindInfo | None:
    """The ``KindInfo`` a CustomResourceDefinition declares, or ``None`` if it is incomplete."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    if not (spec.get("group") and names.get("kind") and names.get("plural")):
        return None
    served = [v for v in spec.get("versions") or [] if v.get("served", True) and v.get("name")]
    if not served:
        return None
    # The storage version is what kubectl prefers; keep it first.
    served.sort(key=lambda v: not v.get("storage", False))
    subresources = tuple((served[0].get("subresources") or {}).keys())
    return KindInfo(
        group=spec["group"], versions=tuple(v["name"] for v in served), kind=names["kind"],
        plural=names["plural"], namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        subresources=subresources, short_names=tuple(names.get("shortNames") or ()),
        singular=names.get("singular") or names["kind"].lower(),
        categories=tuple(names.get("categories") or ()),
        printer_columns=tuple(served[0].get("additionalPrinterColumns") or ()),
    )
