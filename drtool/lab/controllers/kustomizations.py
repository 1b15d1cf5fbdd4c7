"""Simulated kustomize-controller: build a Kustomization's path and apply it.

Follows fluxcd/kustomize-controller v1.4.0 ``internal/controller/kustomization_controller.go``:
suspended → source (``Source '...' not found``, retry at ``retryInterval``) → artifact
(``Source artifact not found, retrying in 30s``) → ``dependsOn`` (``checkDependencies``: Ready
for the current generation and, on the same source, ``lastAppliedRevision`` equal to the
artifact's; otherwise re-checked only every ``--requeue-dependency``, never on a watch event) →
decryption key (a missing Secret fails the build) → build (``drtool.gitops.kustomize``, the real kustomize) → decrypt →
``postBuild`` substitution → staged apply → prune → health checks polled every 5 s
(``WaitForSet`` Interval) up to ``GetTimeout()`` → ``Applied revision: ...``. A failure waits
``GetRetryInterval()`` (``retryInterval``, else ``interval``). Every real duration is played
at the scenario's ``time_scale``; messages keep Flux's real figures.

The staged apply is ``apply()`` of the same file with fluxcd/pkg ``ssa`` v0.41.1
(``manager_apply.go`` ``ApplyAll``, ``errors/errors.go`` ``DryRunErr``, ``sort.go``): CRDs and
Namespaces first, then kinds ending in ``Class``, then everything else sorted by kind; in each
stage every object is dry-run before any is applied, so one object of a kind the cluster does
not serve (``no matches for kind``) fails the whole stage, including a HelmRelease in that
same stage that would have brought its CRD.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from typing import Any

from drtool.gitops.kustomize import BuildError, build_kustomization, substitute
from drtool.lab.api.kinds import split_api_version
from drtool.lab.api.objects import clone
from drtool.lab.api.status import ApiError

from .conditions import flux_not_ready, flux_progressing, flux_ready, get_condition, status_copy
from .durations import HEALTH_POLL, format_duration, parse_duration
from .health import CURRENT, FAILED, health
from .runtime import WAIT, Key, Result, Runtime, flux_gate, key_of
from .sources import ArtifactStore

GROUP = "kustomize.toolkit.fluxcd.io"
SOURCE_GROUP = "source.toolkit.fluxcd.io"
_ENC = re.compile(r"^ENC\[[A-Z0-9_]+,data:.*\]$")
MIN_TIMEOUT = 30.0           # api/v1 kustomization_types.go GetTimeout: never under 30s
DEFAULT_INTERVAL = 600.0
# fluxcd/pkg ssa v0.41.1 sort.go ReconcileOrder.
ORDER_FIRST = ("CustomResourceDefinition", "Namespace", "ClusterClass", "RuntimeClass", "PriorityClass",
               "StorageClass", "VolumeSnapshotClass", "IngressClass", "GatewayClass", "ResourceQuota",
               "ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "ConfigMap",
               "Secret", "Service", "LimitRange", "Deployment", "StatefulSet", "CronJob", "PodDisruptionBudget")
ORDER_LAST = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")


def _kind_index(kind: str) -> int:
    if kind in ORDER_FIRST:
        return ORDER_FIRST.index(kind) - len(ORDER_FIRST)
    if kind in ORDER_LAST:
        return 1 + ORDER_LAST.index(kind)
    return 0


def sort_key(obj: dict[str, Any]) -> tuple[int, str, str, str]:
    """ssa ``SortableUnstructureds``: kind order, then kind name, namespace, name."""
    meta = obj.get("metadata") or {}
    return _kind_index(obj["kind"]), obj["kind"], meta.get("namespace") or "", meta.get("name") or ""


def stage_of(obj: dict[str, Any]) -> int:
    """0: CRDs and Namespaces (``IsClusterDefinition``), 1: ``*Class`` kinds, 2: the rest."""
    kind, api_version = str(obj.get("kind")), str(obj.get("apiVersion"))
    if (kind == "CustomResourceDefinition" and api_version.startswith("apiextensions.k8s.io/")) or \
            (kind == "Namespace" and api_version == "v1"):
        return 0
    return 1 if kind.endswith("Class") else 2


def describe(obj: dict[str, Any]) -> str:
    """ssa ``FmtUnstructured``: ``Kind/namespace/name`` (``Kind/name`` without a namespace)."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind')}/{ns + '/' if ns else ''}{meta.get('name')}"


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


def is_encrypted(obj: dict[str, Any]) -> bool:
    """kustomize-controller's decryptor ``IsEncryptedSecret``: a Secret carrying a ``sops`` block."""
    return obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1" and isinstance(obj.get("sops"), dict)


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


def get_timeout(spec: dict[str, Any]) -> float:
    """api/v1 ``GetTimeout``: ``timeout``, else ``interval`` - 30s; at least 30s (real seconds)."""
    interval = parse_duration(spec.get("interval"), DEFAULT_INTERVAL)
    timeout = parse_duration(spec.get("timeout"), interval - 30.0)
    return max(timeout, MIN_TIMEOUT)


def get_retry_interval(spec: dict[str, Any]) -> float:
    """api/v1 ``GetRetryInterval``: ``retryInterval``, else ``interval`` (real seconds)."""
    return parse_duration(spec.get("retryInterval"), parse_duration(spec.get("interval"), DEFAULT_INTERVAL))


class _Failed(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


class KustomizationReconciler:
    component = "kustomize-controller"
    owns = ((GROUP, "Kustomization"),)
    watches = ((SOURCE_GROUP, "GitRepository"), (SOURCE_GROUP, "OCIRepository"))

    def __init__(self, runtime: Runtime, artifacts: ArtifactStore):
        self.rt, self.artifacts = runtime, artifacts
        self._applied: dict[Key, tuple[Any, list[str]]] = {}     # key -> (token, health-checked ids)
        self._builds: dict[tuple[str, str, str], tuple[list[dict[str, Any]], str]] = {}
        self._running: dict[tuple[str, str, str], asyncio.Task] = {}
        self._failed: dict[Key, tuple[Any, float]] = {}          # key -> (token, retry at)
        self._next_poll: dict[Key, float] = {}

    def forget(self, key: Key) -> None:
        self._applied.pop(key, None)
        self._failed.pop(key, None)
        self._next_poll.pop(key, None)

    def _scaled(self, real_seconds: float) -> float:
        return self.rt.scenario.scaled(real_seconds)

    async def reconcile(self, obj: dict[str, Any]) -> Result:
        if (gate := flux_gate(self.rt, self.component, obj)) is not None:
            return gate
        spec, meta = obj.get("spec") or {}, obj["metadata"]
        key, gen = key_of(obj), int(meta.get("generation") or 1)
        ns, name = meta.get("namespace") or "default", meta["name"]
        status = status_copy(obj)
        retry = get_retry_interval(spec)
        requeue_dep = self.rt.scenario.flux.requeue_dependency

        # 1. source
        ref = spec.get("sourceRef") or {}
        src_kind, src_ns = ref.get("kind", "GitRepository"), ref.get("namespace") or ns
        source = self.rt.store.peek(SOURCE_GROUP, src_kind, src_ns, ref.get("name", ""))
        if source is None:
            plural = f"{src_kind.lower()}s.{SOURCE_GROUP}"
            return self._not_ready(obj, status, gen, "ArtifactFailed", f'{plural} "{ref.get("name")}" not found',
                                   requeue_after=self._scaled(retry), wait=True, warn=False)
        revision = ((source.get("status") or {}).get("artifact") or {}).get("revision")
        tree = self.artifacts.path_for(revision) if revision else None
        if tree is None:
            return self._not_ready(obj, status, gen, "ArtifactFailed",
                                   f"Source artifact not found, retrying in {format_duration(requeue_dep)}",
                                   requeue_after=self._scaled(requeue_dep), wait=True, warn=False)

        # The lab starts kustomize as soon as the artifact is known: the scenario's delay, not
        # this machine's speed, is what plays the build time.
        self._built(key, tree, revision, spec, source, notify=False)

        # 2. dependencies: re-checked on a timer only, as the real controller does
        if spec.get("dependsOn"):
            problem = self._check_dependencies(obj, spec, revision)
            if problem:
                self._not_ready(obj, status, gen, "DependencyNotReady", problem, warn=False, event=False)
                self.rt.emit(obj, "DependencyNotReady", "Dependencies do not meet ready condition, "
                             f"retrying in {format_duration(requeue_dep)}", self.component)
                return Result(requeue_after=self._scaled(requeue_dep))

        # 3. decryption key: internal/decryptor/decryptor.go ImportKeys returns the API's NotFound
        # as is, and build() fails with it (reason BuildFailed, retried at retryInterval).
        decryption = spec.get("decryption") or {}
        secret_name = (decryption.get("secretRef") or {}).get("name")
        if decryption.get("provider") == "sops" and secret_name:
            if self.rt.store.peek("", "Secret", ns, secret_name) is None:
                return self._not_ready(obj, status, gen, "BuildFailed", f'secrets "{secret_name}" not found',
                                       requeue_after=self._scaled(retry))

        # 4. build and apply, once per (generation, revision, requested reconcile)
        token = (gen, revision, (meta.get("annotations") or {}).get("reconcile.fluxcd.io/requestedAt"))
        applied = self._applied.get(key)
        if applied is None or applied[0] != token:
            failed = self._failed.get(key)
            now = self.rt.loop.time()
            if failed is not None and failed[0] == token and now < failed[1]:
                # A failed attempt is retried after retryInterval, not when its own status
                # write comes back as an event (the real controller filters those out).
                return Result(requeue_after=failed[1] - now)
            delay = self.rt.scenario.delay("Kustomization", ns, name, self.rt.scenario.defaults.kustomization)
            left = self.rt.remaining(key, token, delay)
            if left > 0:
                if get_condition({"status": status}, "Reconciling") is None:
                    flux_progressing(status, gen, f"Building manifests for revision {revision} with a timeout of "
                                                  f"{format_duration(get_timeout(spec))}")
                    status["lastAttemptedRevision"] = revision
                    self.rt.write_status(obj, status)
                return Result(requeue_after=left)
            status["lastAttemptedRevision"] = revision
            built = self._built(key, tree, revision, spec, source)
            if built is None:
                return Result()                    # queued again when kustomize is done
            try:
                if built[1]:
                    raise _Failed("BuildFailed", built[1])
                self._apply(obj, spec, self._prepare(built[0], spec, ns), status, revision)
            except _Failed as failure:
                self.rt.reset_clock(key, token)
                self._failed[key] = (token, self.rt.loop.time() + self._scaled(retry))
                return self._not_ready(obj, status, gen, failure.reason, failure.message,
                                       requeue_after=self._scaled(retry))
            applied = self._applied[key] = (token, self._checked_ids(spec, status))
            self._next_poll.pop(key, None)

        # 5. health
        return self._health(obj, spec, status, gen, revision, applied[1], key, token)

    # ------------------------------------------------------------------ steps

    def _check_dependencies(self, obj: dict[str, Any], spec: dict[str, Any], revision: str) -> str:
        """kustomization_controller.go ``checkDependencies``: the first problem, or ``""``."""
        ns = obj["metadata"].get("namespace") or "default"
        own_src = spec.get("sourceRef") or {}
        for dep in spec.get("dependsOn") or []:
            dep_ns, dep_name = dep.get("namespace") or ns, dep.get("name", "")
            ref = f"{dep_ns}/{dep_name}"
            k = self.rt.store.peek(GROUP, "Kustomization", dep_ns, dep_name)
            if k is None:
                return (f"dependency '{ref}' not found: kustomizations.{GROUP} \"{dep_name}\" not found")
            k_status = k.get("status") or {}
            ready = get_condition(k, "Ready")
            if not k_status.get("conditions") or int(k["metadata"].get("generation") or 1) != \
                    int(k_status.get("observedGeneration") or 0) or not ready or ready.get("status") != "True":
                return f"dependency '{ref}' is not ready"
            k_src = (k.get("spec") or {}).get("sourceRef") or {}
            if (k_src.get("name") == own_src.get("name")
                    and (k_src.get("namespace") or dep_ns) == (own_src.get("namespace") or ns)
                    and k_src.get("kind") == own_src.get("kind")
                    and k_status.get("lastAppliedRevision") != revision):
                return f"dependency '{ref}' revision is not up to date"
        return ""

    def _built(self, key: Key, tree: Any, revision: str, spec: dict[str, Any],
               source: dict[str, Any], notify: bool = True) -> tuple[list[dict[str, Any]], str] | None:
        """The build of ``spec.path`` at ``revision`` as (objects, error), or None while it runs.

        kustomize runs in a worker thread so the other reconciles go on meanwhile; when it
        finishes the Kustomization is queued again (``notify``). Results are kept per revision, path and
        build-relevant spec (an artifact never changes), errors included.
        """
        build_spec = {k: spec.get(k) for k in ("targetNamespace", "namePrefix", "nameSuffix", "patches",
                                               "components", "patchesStrategicMerge", "patchesJson6902",
                                               "images") if spec.get(k)}
        ignore = (source.get("spec") or {}).get("ignore")
        cache_key = (revision, str(spec.get("path") or "./"),
                     hashlib.sha256(json.dumps([build_spec, ignore], sort_keys=True).encode()).hexdigest())
        if cache_key in self._builds:
            return self._builds[cache_key]
        task = self._running.get(cache_key)
        if task is None:
            task = self.rt.loop.create_task(asyncio.to_thread(build_kustomization, tree, spec.get("path") or "./",
                                                              build_spec, ignore))
            self._running[cache_key] = task
        if not task.done():
            if notify:
                task.add_done_callback(lambda _task, k=key: self.rt.kick(k))
            return None
        del self._running[cache_key]
        exc = task.exception()
        if exc is not None and not isinstance(exc, BuildError):
            raise exc
        result = ([], str(exc)) if exc is not None else (task.result(), "")
        self._builds[cache_key] = result
        return result

    def _prepare(self, objects: list[dict[str, Any]], spec: dict[str, Any], ns: str) -> list[dict[str, Any]]:
        """Decrypt (kustomize-controller ``build``), then ``postBuild`` substitution."""
        # The cached objects are shared: decryption makes new ones, substitution returns new
        # ones, and _apply copies what it changes.
        if spec.get("decryption"):
            objects = [decrypt_sops(o) if is_encrypted(o) else o for o in objects]
        post = spec.get("postBuild")
        if post:
            try:
                variables = self._load_vars(post, ns, objects)
                variables.update({k: str(v) for k, v in (post.get("substitute") or {}).items()})
                objects = substitute(objects, variables)
            except BuildError as exc:
                raise _Failed("BuildFailed", str(exc)) from None
        return objects

    def _load_vars(self, post: dict[str, Any], ns: str, objects: list[dict[str, Any]]) -> dict[str, str]:
        """fluxcd/pkg kustomize v1.13.0 ``loadVars``: ConfigMap ``data`` / Secret ``data``, in order."""
        variables: dict[str, str] = {}
        for ref in post.get("substituteFrom") or []:
            kind, name = ref.get("kind"), ref.get("name", "")
            if kind not in ("ConfigMap", "Secret"):
                continue
            found = self.rt.store.peek("", kind, ns, name)
            if found is None:
                if ref.get("optional"):
                    continue
                first = next((o["metadata"]["name"] for o in objects
                              if ((o["metadata"].get("labels") or {}).get("kustomize.toolkit.fluxcd.io/substitute")
                                  != "disabled")), name)
                raise _Failed("BuildFailed", f"post build failed for '{first}': substitute from '{kind}/{name}' "
                                             f"error: {kind.lower()}s \"{name}\" not found")
            for k, v in (found.get("data") or {}).items():
                if kind == "Secret":
                    try:
                        v = base64.b64decode(str(v)).decode(errors="replace")
                    except ValueError:
                        continue
                variables[str(k)] = str(v).replace("\n", "")
        return variables

    def _apply(self, obj: dict[str, Any], spec: dict[str, Any], objects: list[dict[str, Any]],
               status: dict[str, Any], revision: str) -> None:
        """``apply()`` + inventory + prune; raises ``_Failed`` with Flux's message."""
        ns, name = obj["metadata"].get("namespace") or "default", obj["metadata"]["name"]
        prepared = []
        for o in objects:
            o = dict(o)
            meta = o["metadata"] = dict(o.get("metadata") or {})
            labels = meta["labels"] = dict(meta.get("labels") or {})
            labels["kustomize.toolkit.fluxcd.io/name"] = name
            labels["kustomize.toolkit.fluxcd.io/namespace"] = ns
            common = spec.get("commonMetadata") or {}
            labels.update(common.get("labels") or {})
            if common.get("annotations"):
                meta["annotations"] = {**(meta.get("annotations") or {}), **common["annotations"]}
            if is_encrypted(o):
                raise _Failed("ReconciliationFailed", f"{describe(o)} is SOPS encrypted, configuring decryption is "
                                                      "required for this secret to be reconciled")
            prepared.append(o)
        stages: list[list[dict[str, Any]]] = [[], [], []]
        for o in prepared:
            stages[stage_of(o)].append(o)
        log: list[str] = []
        for index, stage in enumerate(stages):
            stage.sort(key=sort_key)
            for o in stage:                                   # the server-side dry-run of ApplyAll
                problem = self._dry_run(o)
                if problem:
                    raise _Failed("ReconciliationFailed", problem + ("\n" + "".join(log) if index == 2 else ""))
            for o in stage:
                group, _ = split_api_version(o["apiVersion"])
                meta = o["metadata"]
                before = self.rt.store.peek(group, o["kind"], meta.get("namespace"), meta["name"])
                try:
                    after = self.rt.store.apply(o)
                except ApiError as exc:
                    raise _Failed("ReconciliationFailed", f"{describe(o)} apply failed: {exc.message}") from None
                if before is None:
                    log.append(f"{describe(o)} created\n")
                elif before["metadata"].get("resourceVersion") != after["metadata"].get("resourceVersion"):
                    log.append(f"{describe(o)} configured\n")
        applied = [o for stage in stages for o in stage]
        new_ids = [_inventory_id(o) for o in applied]
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
                        log.append(f"{kind}/{o_ns + '/' if o_ns else ''}{o_name} deleted\n")
        status["inventory"] = {"entries": [{"id": i, "v": split_api_version(o["apiVersion"])[1]}
                                           for i, o in zip(new_ids, applied)]}
        if log:
            self.rt.emit(obj, "Progressing", "".join(log).rstrip("\n"), self.component)

    def _dry_run(self, o: dict[str, Any]) -> str:
        """What the API server's dry-run apply would refuse, in ssa ``DryRunErr`` wording."""
        group, version = split_api_version(str(o["apiVersion"]))
        info = self.rt.store.kinds.by_kind(group, o["kind"])
        if info is None or version not in info.versions:
            return f"{describe(o)} dry-run failed: no matches for kind \"{o['kind']}\" in version \"{o['apiVersion']}\""
        o_ns = o["metadata"].get("namespace")
        if info.namespaced:
            if not o_ns:
                return f"{describe(o)} namespace not specified: the server could not find the requested resource"
            if self.rt.store.peek("", "Namespace", None, o_ns) is None:
                return f"{describe(o)} not found: namespaces \"{o_ns}\" not found"
        elif o_ns:
            o["metadata"].pop("namespace", None)      # the API server ignores it on cluster-scoped kinds
        return ""

    def _not_ready(self, obj: dict[str, Any], status: dict[str, Any], gen: int, reason: str, message: str,
                   requeue_after: float | None = None, wait: bool = False, warn: bool = True,
                   event: bool = True) -> Result:
        """Ready=False with ``reason``; an Event when the condition changed."""
        before = clone(status.get("conditions") or [])
        flux_not_ready(status, gen, reason, message)
        written = self.rt.write_status(obj, status)
        if event and written is not None and before != status.get("conditions"):
            self.rt.emit(obj, reason, message, self.component, "Warning" if warn else "Normal")
        return Result(requeue_after=requeue_after, wait=wait)

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
        timeout = get_timeout(spec)
        now = self.rt.loop.time()
        due = self._next_poll.get(key)
        if checked and due is not None and now < due:
            # Between two polls of WaitForSet nothing is looked at, whatever changed.
            return Result(requeue_after=due - now)
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
        waited_real = waited / self.rt.scenario.time_scale
        if failed:
            message = (f"health check failed after {format_duration(waited_real)}: failed early due to stalled "
                       f"resources: [{', '.join(failed)}]")
            return self._unhealthy(obj, status, gen, message, key, token, spec)
        if pending:
            if waited >= self._scaled(timeout):
                message = (f"health check failed after {format_duration(waited_real)}: timeout waiting for: "
                           f"[{', '.join(pending)}]")
                return self._unhealthy(obj, status, gen, message, key, token, spec)
            message = f"Running health checks for revision {revision} with a timeout of {format_duration(timeout)}"
            flux_progressing(status, gen, message)
            self.rt.write_status(obj, status)
            poll = self._scaled(HEALTH_POLL)
            self._next_poll[key] = now + poll
            return Result(requeue_after=min(poll, max(0.001, self._scaled(timeout) - waited)))
        self._next_poll.pop(key, None)
        was_ready = (get_condition(obj, "Ready") or {}).get("status") == "True" and \
            (obj.get("status") or {}).get("lastAppliedRevision") == revision
        status["lastAppliedRevision"] = revision
        flux_ready(status, gen, "ReconciliationSucceeded", f"Applied revision: {revision}")
        self.rt.write_status(obj, status)
        if not was_ready:
            interval = format_duration(parse_duration(spec.get("interval"), DEFAULT_INTERVAL))
            waited_ms = int(self.rt.elapsed(key, token) / self.rt.scenario.time_scale * 1000)
            self.rt.emit(obj, "ReconciliationSucceeded",
                         f"Reconciliation finished in {waited_ms}ms, next run in {interval}", self.component)
        # Stay subscribed: a new source revision must trigger the next apply.
        return WAIT

    def _unhealthy(self, obj: dict[str, Any], status: dict[str, Any], gen: int, message: str, key: Key,
                   token: Any, spec: dict[str, Any]) -> Result:
        before = clone(status.get("conditions") or [])
        flux_not_ready(status, gen, "HealthCheckFailed", message)
        written = self.rt.write_status(obj, status)
        if written is not None and before != status.get("conditions"):
            self.rt.emit(obj, "HealthCheckFailed", message, self.component, "Warning")
        # The next attempt (after retryInterval) re-applies and waits for the objects again.
        self._applied.pop(key, None)
        self._next_poll.pop(key, None)
        self.rt.reset_clock(key, ("health", token))
        self.rt.reset_clock(key, token)
        retry = self._scaled(get_retry_interval(spec))
        self._failed[key] = (token, self.rt.loop.time() + retry)
        return Result(requeue_after=retry)
