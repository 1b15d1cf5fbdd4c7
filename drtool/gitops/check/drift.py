"""Finding 5: what the live cluster has that Git will not bring back, and what will not reconcile.

An object is accounted for when a Kustomization applied it (kustomize-controller labels
``kustomize.toolkit.fluxcd.io/name``), Helm installed it (``app.kubernetes.io/managed-by: Helm`` and
the ``meta.helm.sh/release-*`` annotations, helm-controller v1.1.0 internal/action/diff.go),
another object owns it (``ownerReferences``), Git declares it, drtool restores it, or Kubernetes,
K3s and bootstrap make it on their own. Everything else was made by hand and will not come back.
"""
from __future__ import annotations

from typing import Any

from drtool.gitops.check.findings import CheckResult, Finding
from drtool.gitops.check.live import LiveSnapshot
from drtool.gitops.check.repo import Repo, ref
from drtool.inventory import Inventory

SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
# Made by Kubernetes itself in every namespace, or by the API server in default.
AUTOMATIC = {("ConfigMap", "kube-root-ca.crt"), ("Service", "kubernetes")}
AUTOMATIC_SECRET_TYPES = frozenset({"kubernetes.io/service-account-token", "helm.sh/release.v1"})
DRIFT_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "CronJob", "Service", "ConfigMap", "Secret",
               "PersistentVolumeClaim", "Ingress", "Kustomization", "HelmRelease")


def _accounted(obj: dict[str, Any], git: set[tuple[str, str, str]], restored: set[tuple[str, str]]) -> bool:
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    notes = meta.get("annotations") or {}
    kind, ns, name = str(obj.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name"))
    if ns in SYSTEM_NAMESPACES or (kind, name) in AUTOMATIC or meta.get("ownerReferences"):
        return True
    if "kustomize.toolkit.fluxcd.io/name" in labels or "helm.toolkit.fluxcd.io/name" in labels:
        return True
    if labels.get("app.kubernetes.io/managed-by") == "Helm" or "meta.helm.sh/release-name" in notes:
        return True
    if labels.get("app.kubernetes.io/part-of") == "flux" or ns == "flux-system" and name == "flux-system":
        return True  # bootstrap makes these again
    if kind == "Secret" and (obj.get("type") in AUTOMATIC_SECRET_TYPES or (ns, name) in restored):
        return True
    if kind == "Secret" and "cert-manager.io/certificate-name" in notes:
        return True  # cert-manager issues it again from its Certificate (it sets no owner by default)
    return (kind, ns, name) in git


def check_drift(repo: Repo, inv: Inventory, live: LiveSnapshot | None, result: CheckResult) -> None:
    for ks, b in repo.objects():
        if b.obj.get("kind") in ("Kustomization", "HelmRelease") and (b.obj.get("spec") or {}).get("suspend") is True:
            result.add(Finding(
                "drift", "warning", ref(b.obj),
                f"{ref(b.obj)} is suspended in Git: after bootstrap it will not reconcile",
                "remove spec.suspend (or set it false) once it should come back",
                kustomization=ks.key, file=ks.file_of(b)))
    if live is None:
        return
    git = {(str(b.obj.get("kind")), str((b.obj.get("metadata") or {}).get("namespace") or ""),
            str((b.obj.get("metadata") or {}).get("name"))) for _, b in repo.objects()}
    git |= {("Kustomization", k.namespace, k.name) for k in repo.kustomizations.values()}
    restored = {(s.namespace, s.name) for s in inv.secrets}
    for kind in DRIFT_KINDS:
        for obj in live.of(kind):
            obj = {**obj, "kind": kind}
            if kind in ("Kustomization", "HelmRelease") and (obj.get("spec") or {}).get("suspend") is True:
                result.add(Finding(
                    "drift", "warning", ref(obj),
                    f"{ref(obj)} is suspended in the live cluster: whatever it holds back may differ from Git, and "
                    "after the rebuild Git's spec applies",
                    "resume it (flux resume) and let it reconcile before the rebuild, or accept the difference"))
            if _accounted(obj, git, restored):
                continue
            result.add(Finding(
                "drift", "warning", ref(obj),
                f"{ref(obj)} exists in the live cluster but no Kustomization, Helm release or owner accounts for it: "
                "it will not come back",
                "commit it to Git (Secrets SOPS-encrypted, or restored through the inventory's secrets:) or delete it"))
