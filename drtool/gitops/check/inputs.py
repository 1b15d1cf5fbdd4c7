"""Finding 4 and the secret-shaped parts of 7: what the rebuilt cluster needs that Git does not hold.

References followed (kustomize-controller v1.4.0 api/v1/kustomization_types.go and
internal/decryptor/decryptor.go: ``decryption.secretRef`` read from the Kustomization's namespace,
``postBuild.substituteFrom`` with ``optional``, "as if the resource was present but empty");
helm-controller v1.1.0 api/v2/reference_types.go: ``valuesFrom`` with ``optional``; source and
notification objects' ``secretRef``). A reference is satisfied when Git creates the object or
drtool restores it (the inventory's ``secrets``); bootstrap itself creates ``flux-system/flux-system``.
"""
from __future__ import annotations

from typing import Any

from drtool.gitops.check.findings import CheckResult, Finding, Severity
from drtool.gitops.check.live import LiveSnapshot
from drtool.gitops.check.podspecs import pod_specs, walk_keys
from drtool.gitops.check.repo import Kustomization, Repo, group_of, ref, substitution_values
from drtool.inventory import Inventory

SOURCE_KINDS = ("GitRepository", "HelmRepository", "OCIRepository", "Bucket", "HelmChart")
_EXISTING = ("existingSecret", "existingSecretName", "existingClaim", "existingConfigMap")
# What `flux bootstrap` creates itself: the sync source, its deploy-key Secret, the sync Kustomization.
BOOTSTRAP_MADE = {("Secret", "flux-system", "flux-system"), ("GitRepository", "flux-system", "flux-system"),
                  ("Kustomization", "flux-system", "flux-system")}


class Refs:
    """Decides whether a Secret/ConfigMap/PVC exists on the rebuilt cluster before it is needed."""

    def __init__(self, repo: Repo, inv: Inventory, live: LiveSnapshot | None):
        self.repo, self.live = repo, live
        self.restored = {(s.namespace, s.name) for s in inv.secrets}
        self.inv_path = str(inv.path)

    def in_git(self, kind: str, namespace: str, name: str) -> bool:
        return bool(self.repo.find(kind, namespace, name))

    def satisfied(self, kind: str, namespace: str, name: str) -> bool:
        if (kind, namespace, name) in BOOTSTRAP_MADE:
            return True
        if kind == "Secret" and (namespace, name) in self.restored:
            return True
        return self.in_git(kind, namespace, name)

    def live_note(self, kind: str, namespace: str, name: str) -> str:
        if self.live is not None and self.live.has(kind, namespace, name):
            return "; it exists only in the live cluster"
        return ""

    def fix(self, kind: str, namespace: str, name: str) -> str:
        if kind in SOURCE_KINDS:
            return f"declare {kind} {namespace}/{name} in Git (in this Kustomization or one it dependsOn), or fix the sourceRef"
        if kind == "Secret":
            return (f"add it to secrets: in {self.inv_path} ({{name: {name}, namespace: {namespace}, from_file: ...}}) "
                    "so drtool restores it before bootstrap, or commit it SOPS-encrypted")
        return f"commit {kind} {namespace}/{name} to Git"


def _missing(refs: Refs, result: CheckResult, severity: Severity, kind: str, namespace: str, name: str, what: str,
             ks: Kustomization, file: str, finding_kind: str = "outside-git") -> None:
    if not name or "${" in name or refs.satisfied(kind, namespace, name):
        return
    result.add(Finding(
        finding_kind, severity, f"{kind}/{namespace}/{name}",
        f"{what} needs {kind} {namespace}/{name}, which is neither in Git nor restored by drtool"
        + refs.live_note(kind, namespace, name),
        refs.fix(kind, namespace, name), kustomization=ks.key, file=file))


def check_inputs(repo: Repo, inv: Inventory, live: LiveSnapshot | None, result: CheckResult) -> None:
    refs = Refs(repo, inv, live)
    for ks in repo.kustomizations.values():
        _kustomization(refs, ks, result)
        sops_files = sorted({ks.file_of(b) for b in ks.objects if b.obj.get("sops")})
        _sops(ks, sops_files, inv, result)
        for b in ks.objects:
            _object(refs, ks, b.obj, ks.file_of(b), result)
    _sealed(repo, inv, result)


def _kustomization(refs: Refs, ks: Kustomization, result: CheckResult) -> None:
    secret = ((ks.spec.get("decryption") or {}).get("secretRef") or {}).get("name")
    if secret:
        _missing(refs, result, "blocker", "Secret", ks.namespace, str(secret),
                 f"Kustomization {ks.key} decryption.secretRef", ks, ks.file)
    _, unsatisfied = substitution_values(refs.repo, ks)
    for entry in unsatisfied:
        if entry.get("optional"):
            continue  # optional: treated as present and empty (kustomize-controller v1.4.0 SubstituteReference)
        kind = str(entry.get("kind"))
        _missing(refs, result, "blocker", kind, ks.namespace, str(entry.get("name")),
                 f"Kustomization {ks.key} postBuild.substituteFrom", ks, ks.file)
    kube = ((ks.spec.get("kubeConfig") or {}).get("secretRef") or {}).get("name")
    if kube:
        _missing(refs, result, "blocker", "Secret", ks.namespace, str(kube), f"Kustomization {ks.key} kubeConfig", ks, ks.file)


def _object(refs: Refs, ks: Kustomization, obj: dict[str, Any], file: str, result: CheckResult) -> None:
    kind = obj.get("kind")
    meta = obj.get("metadata") or {}
    ns = str(meta.get("namespace") or "default")
    spec = obj.get("spec") or {}
    if not isinstance(spec, dict):
        return
    subject = ref(obj)
    group = group_of(str(obj.get("apiVersion", "")))
    if kind == "HelmRelease" and group == "helm.toolkit.fluxcd.io":
        source = (((spec.get("chart") or {}).get("spec") or {}).get("sourceRef") or spec.get("chartRef") or {})
        if source.get("name") and source.get("kind"):
            _missing(refs, result, "blocker", str(source["kind"]), str(source.get("namespace") or ns),
                     str(source["name"]), f"{subject} chart source", ks, file, finding_kind="repository")
        for v in spec.get("valuesFrom") or []:
            if isinstance(v, dict) and not v.get("optional"):
                _missing(refs, result, "blocker", str(v.get("kind")), ns, str(v.get("name")),
                         f"{subject} valuesFrom", ks, file)
        kube = ((spec.get("kubeConfig") or {}).get("secretRef") or {}).get("name")
        if kube:
            _missing(refs, result, "blocker", "Secret", ns, str(kube), f"{subject} kubeConfig", ks, file)
        for path, key, value in walk_keys(spec.get("values"), _EXISTING):
            target = "PersistentVolumeClaim" if key == "existingClaim" else \
                "ConfigMap" if key == "existingConfigMap" else "Secret"
            release_ns = str(spec.get("targetNamespace") or ns)
            _missing(refs, result, "warning", target, release_ns, value, f"{subject} {path}", ks, file,
                     finding_kind="repository")
    elif kind in SOURCE_KINDS and group == "source.toolkit.fluxcd.io":
        for field in ("secretRef", "certSecretRef"):
            name = (spec.get(field) or {}).get("name")
            if name:
                _missing(refs, result, "blocker", "Secret", ns, str(name), f"{subject} {field}", ks, file)
    elif kind in ("Provider", "Receiver", "Alert") and group == "notification.toolkit.fluxcd.io":
        name = (spec.get("secretRef") or {}).get("name")
        if name:
            _missing(refs, result, "warning", "Secret", ns, str(name), f"{subject} secretRef", ks, file)
    elif kind == "ServiceAccount":
        for s in obj.get("imagePullSecrets") or []:
            if isinstance(s, dict):
                _missing(refs, result, "warning", "Secret", ns, str(s.get("name")), f"{subject} imagePullSecrets", ks, file)
    for pod in pod_specs(obj):
        for s in pod.get("imagePullSecrets") or []:
            if isinstance(s, dict):
                _missing(refs, result, "warning", "Secret", ns, str(s.get("name")), f"{subject} imagePullSecrets", ks, file)
        for vol in pod.get("volumes") or []:
            if not isinstance(vol, dict):
                continue
            claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
            if claim and kind != "StatefulSet":
                _missing(refs, result, "warning", "PersistentVolumeClaim", ns, str(claim),
                         f"{subject} volume {vol.get('name')}", ks, file, finding_kind="repository")
            secret = vol.get("secret") or {}
            if secret.get("secretName") and not secret.get("optional"):
                _missing(refs, result, "warning", "Secret", ns, str(secret["secretName"]),
                         f"{subject} volume {vol.get('name')}", ks, file, finding_kind="repository")


def _sops(ks: Kustomization, files: list[str], inv: Inventory, result: CheckResult) -> None:
    if not files:
        return
    decryption = ks.spec.get("decryption") or {}
    if not decryption:
        result.add(Finding(
            "repository", "blocker", f"sops {files[0]}",
            f"Kustomization {ks.key} applies SOPS-encrypted file(s) {', '.join(files)} but has no spec.decryption: "
            "kustomize-controller refuses to apply encrypted objects",
            f"add decryption: {{provider: sops, secretRef: {{name: sops-age}}}} to Kustomization {ks.name}",
            kustomization=ks.key, file=files[0]))
    elif not (decryption.get("secretRef") or {}).get("name"):
        restored = ", ".join(f"{s.namespace}/{s.name}" for s in inv.secrets) or "none"
        result.add(Finding(
            "repository", "blocker", f"sops {files[0]}",
            f"Kustomization {ks.key} decrypts {', '.join(files)} without decryption.secretRef: no key among the "
            f"secrets drtool restores ({restored})",
            "set decryption.secretRef to the Secret holding the key and list it under secrets: in the inventory",
            kustomization=ks.key, file=files[0]))


def _sealed(repo: Repo, inv: Inventory, result: CheckResult) -> None:
    sealed = [(ks, b) for ks, b in repo.objects() if b.obj.get("kind") == "SealedSecret"
              and group_of(str(b.obj.get("apiVersion", ""))) == "bitnami.com"]
    if not sealed:
        return
    # The controller's key Secrets are named sealed-secrets-key<suffix>; a new controller makes a new key.
    if any(s.name.startswith("sealed-secrets-key") for s in inv.secrets):
        return
    ks, b = sealed[0]
    result.add(Finding(
        "repository", "blocker", ref(b.obj),
        f"{len(sealed)} SealedSecret(s) (first {ref(b.obj)}) can only be unsealed with the old controller's key, "
        "and the inventory restores no sealed-secrets-key Secret: the new controller makes a new key",
        "back up the sealed-secrets-key Secret from the controller's namespace and list it under secrets: "
        "in the inventory",
        kustomization=ks.key, file=ks.file_of(b)))
