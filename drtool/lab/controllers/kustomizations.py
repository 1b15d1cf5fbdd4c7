"""Simulated kustomize-controller: build a Kustomization's path and apply it.

Order of checks, as in the real controller: suspended → source artifact → dependsOn →
decryption key → build → apply (CRDs and Namespaces first) → prune → health checks
(``wait: true`` checks everything applied, else ``healthChecks``). Every failure lands
on the ``Ready`` condition with Flux's reason and a message naming the file or object;
nothing here raises into the runtime for a bad repo.
"""
from __future__ import annotations

import base64
import re
from typing import Any

from drtool.lab.api.kinds import split_api_version
from drtool.lab.api.objects import clone
from drtool.lab.api.status import ApiError

from .conditions import flux_not_ready, flux_progressing, flux_ready, is_ready, status_copy
from .durations import format_duration, parse_duration
from .health import CURRENT, FAILED, health
from .kustomize import BuildError, Manifest, build
from .runtime import WAIT, Key, Result, Runtime, flux_gate, key_of
from .sources import ArtifactStore

GROUP = "kustomize.toolkit.fluxcd.io"
_ENC = re.compile(r"^ENC\[[A-Z0-9_]+,data:.*\]$")
DEFAULT_TIMEOUT = 300.0


def _inventory_id(obj: dict[str, Any]) -> str:
    group, _ = split_api_version(obj["apiVersion"])
    meta = obj["metadata"]
    return f"{meta.get('namespace') or ''}_{meta['name']}_{group}_{obj['kind']}"


def _parse_inventory_id(entry: str) -> tuple[str, str, str, str] | None:
    parts = entry.split("_")
    if len(parts) != 4:
        return None
    namespace, name, group, kind = parts
    return group, kind, namespace, name


def decrypt_sops(obj: dict[str, Any]) -> dict[str, Any]:
    """Play SOPS decryption: drop the ``sops`` block and replace ``ENC[...]`` values.

    The lab has no age key material; a decrypted value is a fixed placeholder, which is
    all the simulated workloads need.
    """
    out = {k: v for k, v in obj.items() if k != "sops"}
    for field, encode in (("data", True), ("stringData", False)):
        values = out.get(field)
        if isinstance(values, dict):
            plain = "decrypted-by-lab"
            out[field] = {k: ((base64.b64encode(plain.encode()).decode() if encode else plain)
                              if isinstance(v, str) and _ENC.match(v) else v) for k, v in values.items()}
    return out


class KustomizationReconciler:
    component = "kustomize-controller"
    owns = ((GROUP, "Kustomization"),)
    watches = (("source.toolkit.fluxcd.io", "GitRepository"), ("source.toolkit.fluxcd.io", "OCIRepository"),
               (GROUP, "Kustomization"), ("", "Secret"), ("apps", "Deployment"), ("apps", "StatefulSet"),
               ("helm.toolkit.fluxcd.io", "HelmRelease"), ("", "Pod"))

    def __init__(self, runtime: Runtime, artifacts: ArtifactStore):
        self.rt, self.artifacts = runtime, artifacts
        self._applied: dict[Key, tuple[Any, list[str]]] = {}     # key -> (token, health-checked ids)

    def forget(self, key: Key) -> None:
        self._applied.pop(key, None)

    async def reconcile(self, obj: dict[str, Any]) -> Result:
        if (gate := flux_gate(self.rt, self.component, obj)) is not None:
            return gate
        spec, meta = obj.get("spec") or {}, obj["metadata"]
        key, gen = key_of(obj), int(meta.get("generation") or 1)
        ns, name = meta.get("namespace") or "default", meta["name"]
        status = status_copy(obj)

        # 1. source artifact
        ref = spec.get("sourceRef") or {}
        src_kind, src_ns = ref.get("kind", "GitRepository"), ref.get("namespace") or ns
        source = self.rt.store.peek("source.toolkit.fluxcd.io", src_kind, src_ns, ref.get("name", ""))
        revision = ((source or {}).get("status") or {}).get("artifact", {}).get("revision")
        if source is None:
            return self._not_ready(obj, status, gen, "ArtifactFailed",
                                   f"Source '{src_kind}/{src_ns}/{ref.get('name')}' not found")
        tree = self.artifacts.path_for(revision) if revision else None
        if tree is None:
            # kustomize-controller polls for the artifact (its --requeue-dependency) besides
            # watching the source: a source whose status does not change must not strand it.
            retry = self.rt.scenario.defaults.retry_interval
            return self._not_ready(obj, status, gen, "ArtifactFailed",
                                   f"Source artifact not found, retrying in {format_duration(retry)}",
                                   requeue_after=retry)

        # 2. dependencies
        for dep in spec.get("dependsOn") or []:
            dep_ns = dep.get("namespace") or ns
            if not is_ready(self.rt.store.peek(GROUP, "Kustomization", dep_ns, dep.get("name", ""))):
                return self._not_ready(obj, status, gen, "DependencyNotReady",
                                       f"dependency '{dep_ns}/{dep.get('name')}' is not ready")

        # 3. decryption key
        decryption = spec.get("decryption") or {}
        secret_name = (decryption.get("secretRef") or {}).get("name")
        if decryption.get("provider") == "sops" and secret_name:
            if self.rt.store.peek("", "Secret", ns, secret_name) is None:
                return self._not_ready(obj, status, gen, "DecryptionFailed",
                                       f'decryption secret error: Secret "{secret_name}" not found')

        # 4. build and apply, once per (generation, revision, requested reconcile)
        token = (gen, revision, (meta.get("annotations") or {}).get("reconcile.fluxcd.io/requestedAt"))
        applied = self._applied.get(key)
        if applied is None or applied[0] != token:
            delay = self.rt.scenario.delay("Kustomization", ns, name, self.rt.scenario.defaults.kustomization)
            left = self.rt.remaining(key, token, delay)
            if left > 0:
                if not any(c.get("type") == "Reconciling" for c in status.get("conditions") or []):
                    flux_progressing(status, gen, f"Building manifests for revision {revision}")
                    status["lastAttemptedRevision"] = revision
                    self.rt.write_status(obj, status)
                return Result(requeue_after=left)
            outcome = self._build_and_apply(obj, spec, tree, revision, status, gen)
            if outcome is not None:
                return outcome
            applied = self._applied[key] = (token, self._checked_ids(spec, status))
            status["lastAppliedRevision"] = revision

        # 5. health
        return self._health(obj, spec, status, gen, revision, applied[1], key, token)

    # ------------------------------------------------------------------ steps

    def _not_ready(self, obj: dict[str, Any], status: dict[str, Any], gen: int, reason: str, message: str,
                   wait: bool = True, requeue_after: float | None = None) -> Result:
        """Ready=False with ``reason``; wait for watched objects, or retry after the retry interval.

        ``requeue_after`` adds a timed retry to the wait (both, whichever comes first).
        """
        before = clone(status.get("conditions") or [])
        flux_not_ready(status, gen, reason, message)
        written = self.rt.write_status(obj, status)
        if written is not None and before != status.get("conditions"):
            self.rt.emit(obj, reason, message, self.component, "Warning" if reason != "DependencyNotReady" else "Normal")
        if not wait:
            requeue_after = self.rt.scenario.defaults.retry_interval
        return Result(requeue_after=requeue_after, wait=wait)

    def _build_and_apply(self, obj: dict[str, Any], spec: dict[str, Any], tree: Any, revision: str,
                         status: dict[str, Any], gen: int) -> Result | None:
        ns, name = obj["metadata"].get("namespace") or "default", obj["metadata"]["name"]
        status["lastAttemptedRevision"] = revision
        try:
            manifests = build(tree, spec.get("path") or "./")
        except BuildError as exc:
            return self._not_ready(obj, status, gen, "BuildFailed", str(exc), wait=False)
        prepared, problem = self._prepare(manifests, spec, ns, name, bool(spec.get("decryption")))
        if problem:
            return self._not_ready(obj, status, gen, "ReconciliationFailed", problem, wait=False)
        changes: list[str] = []
        for manifest in prepared:
            group, _ = split_api_version(manifest["apiVersion"])
            meta = manifest["metadata"]
            before = self.rt.store.peek(group, manifest["kind"], meta.get("namespace"), meta["name"])
            try:
                after = self.rt.store.apply(manifest)
            except ApiError as exc:
                ref = _describe(manifest)
                return self._not_ready(obj, status, gen, "ReconciliationFailed", f"{ref} apply failed: {exc.message}",
                                       wait=False)
            if before is None:
                changes.append(f"{_describe(manifest)} created")
            elif before["metadata"].get("resourceVersion") != after["metadata"].get("resourceVersion"):
                changes.append(f"{_describe(manifest)} configured")
        new_ids = [_inventory_id(m) for m in prepared]
        old_entries = ((status.get("inventory") or {}).get("entries") or [])
        if spec.get("prune"):
            keep = set(new_ids)
            for entry in old_entries:
                if entry.get("id") in keep:
                    continue
                parsed = _parse_inventory_id(entry.get("id", ""))
                if parsed and self.rt.store.kinds.by_kind(parsed[0], parsed[1]) is not None:
                    group, kind, o_ns, o_name = parsed
                    if self.rt.store.delete(group, kind, o_ns or None, o_name) is not None:
                        changes.append(f"{kind}/{o_ns + '/' if o_ns else ''}{o_name} deleted")
        status["inventory"] = {"entries": [{"id": i, "v": split_api_version(m["apiVersion"])[1]}
                                           for i, m in zip(new_ids, prepared)]}
        if changes:
            self.rt.emit(obj, "Progressing", "\n".join(changes), self.component)
        return None

    def _prepare(self, manifests: list[Manifest], spec: dict[str, Any], ns: str, name: str,
                 decrypt: bool) -> tuple[list[dict[str, Any]], str]:
        """Objects ready to apply (namespaced, labelled, decrypted), CRDs and Namespaces first."""
        target_ns = spec.get("targetNamespace")
        out: list[dict[str, Any]] = []
        for m in manifests:
            obj = clone(m.obj)
            group, version = split_api_version(str(obj["apiVersion"]))
            info = self.rt.store.kinds.by_kind(group, obj["kind"])
            if info is None or version not in info.versions:
                # Kinds whose CRD is part of this same build are applied after it.
                known = {_crd_kind(c) for c in manifests if c.obj.get("kind") == "CustomResourceDefinition"}
                if (group, obj["kind"]) not in known:
                    return [], (f"{m.ref} dry-run failed ({m.source}): no matches for kind \"{obj['kind']}\" "
                                f"in version \"{obj['apiVersion']}\"")
            meta = obj.setdefault("metadata", {})
            namespaced = info.namespaced if info is not None else True
            if namespaced:
                meta["namespace"] = target_ns or meta.get("namespace") or "default"
            else:
                meta.pop("namespace", None)
            labels = meta.setdefault("labels", {})
            labels["kustomize.toolkit.fluxcd.io/name"] = name
            labels["kustomize.toolkit.fluxcd.io/namespace"] = ns
            if obj.get("sops") is not None:
                if not decrypt:
                    return [], (f"{m.ref} ({m.source}): the object is SOPS-encrypted but spec.decryption "
                                "is not configured")
                obj = decrypt_sops(obj)
            out.append(obj)
        order = {"CustomResourceDefinition": 0, "Namespace": 1}
        out.sort(key=lambda o: order.get(o["kind"], 2))
        namespaces = {o["metadata"]["name"] for o in out if o["kind"] == "Namespace"}
        for o in out:
            o_ns = o["metadata"].get("namespace")
            if o_ns and o_ns not in namespaces and self.rt.store.peek("", "Namespace", None, o_ns) is None:
                return [], f"{_describe(o)} namespace not specified: namespaces \"{o_ns}\" not found"
        return out, ""

    def _checked_ids(self, spec: dict[str, Any], status: dict[str, Any]) -> list[str]:
        """Objects to health-check: everything applied with ``wait``, else ``healthChecks``."""
        if spec.get("wait"):
            return [e["id"] for e in (status.get("inventory") or {}).get("entries") or []]
        out = []
        for hc in spec.get("healthChecks") or []:
            group, _ = split_api_version(str(hc.get("apiVersion", "")))
            out.append(f"{hc.get('namespace') or ''}_{hc.get('name')}_{group}_{hc.get('kind')}")
        return out

    def _health(self, obj: dict[str, Any], spec: dict[str, Any], status: dict[str, Any], gen: int,
                revision: str, checked: list[str], key: Key, token: Any) -> Result:
        timeout = parse_duration(spec.get("timeout"), parse_duration(spec.get("interval"), DEFAULT_TIMEOUT))
        pending, failed = [], []
        for entry in checked:
            parsed = _parse_inventory_id(entry)
            if parsed is None:
                continue
            group, kind, o_ns, o_name = parsed
            target = (self.rt.store.peek(group, kind, o_ns or None, o_name)
                      if self.rt.store.kinds.by_kind(group, kind) is not None else None)
            h = health(target)
            ref = f"{kind}/{o_ns + '/' if o_ns else ''}{o_name}"
            if h.status == FAILED:
                failed.append(f"{ref} status: 'Failed'")
            elif h.status != CURRENT:
                pending.append(f"{ref} status: '{'NotFound' if target is None else 'InProgress'}'")
        waited = self.rt.elapsed(key, ("health", token))
        if failed:
            message = (f"health check failed after {format_duration(waited)}: failed early due to stalled "
                       f"resources: [{', '.join(failed)}]")
            return self._unhealthy(obj, status, gen, message)
        if pending:
            if waited >= timeout:
                message = (f"health check failed after {format_duration(waited)}: timeout waiting for: "
                           f"[{', '.join(pending)}]")
                return self._unhealthy(obj, status, gen, message)
            message = f"Running health checks for revision {revision} with a timeout of {format_duration(timeout)}"
            flux_progressing(status, gen, message)
            self.rt.write_status(obj, status)
            return Result(requeue_after=max(0.05, timeout - waited), wait=True)
        was_ready = is_ready(obj) and status.get("lastAppliedRevision") == (obj.get("status") or {}).get(
            "lastAppliedRevision")
        flux_ready(status, gen, "ReconciliationSucceeded", f"Applied revision: {revision}")
        self.rt.write_status(obj, status)
        if not was_ready:
            interval = format_duration(parse_duration(spec.get("interval"), 600.0))
            waited_ms = int(self.rt.elapsed(key, token) * 1000)
            self.rt.emit(obj, "ReconciliationSucceeded",
                         f"Reconciliation finished in {waited_ms}ms, next run in {interval}", self.component)
        # Stay subscribed: a new source revision must trigger the next apply.
        return WAIT

    def _unhealthy(self, obj: dict[str, Any], status: dict[str, Any], gen: int, message: str) -> Result:
        before = clone(status.get("conditions") or [])
        flux_not_ready(status, gen, "HealthCheckFailed", message)
        written = self.rt.write_status(obj, status)
        if written is not None and before != status.get("conditions"):
            self.rt.emit(obj, "HealthCheckFailed", message, self.component, "Warning")
        # Keep watching: the objects may still recover (a flaky HelmRelease retried).
        return Result(requeue_after=self.rt.scenario.defaults.retry_interval * 4, wait=True)


def _describe(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind')}/{ns + '/' if ns else ''}{meta.get('name')}"


def _crd_kind(m: Manifest) -> tuple[str, str]:
    spec = m.obj.get("spec") or {}
    return spec.get("group", ""), (spec.get("names") or {}).get("kind", "")
