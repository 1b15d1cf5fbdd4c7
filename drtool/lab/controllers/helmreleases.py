"""Simulated helm-controller: "install" a HelmRelease as one Deployment or StatefulSet.

The release waits for its chart source (HelmRepository) and its ``dependsOn`` releases,
then installs after the scenario's delay and waits for the workload like ``helm install
--wait`` (Flux's default), before turning ``Ready=True`` reason ``InstallSucceeded``.
Scenario faults: ``fail_times: N`` fails N install/upgrade attempts (``InstallFailed``) then
succeeds; ``retries_exceeded`` fails every attempt. Whether a failure is retried follows
helm-controller v1.1.0's remediation (see ``_failed``): with the default
``install.remediation.retries: 0`` the first failure stalls the release (``Stalled=True``
reason ``RetriesExceeded``). Dependencies are re-checked every ``--requeue-dependency``;
durations play at the scenario's ``time_scale``.
A chart the catalog (``drtool/gitops/chart_crds.yaml``) knows also gets its CRDs (``chartcrds``).

Status carries the fields of both API shapes the lab serves (v2 ``history``,
``lastAttemptedRevision``; v2beta1 ``lastAppliedRevision``, ``helmChart``), since all
served versions are one stored object.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from drtool.gitops.charts import ChartCatalog, default_catalog
from drtool.lab.api.objects import clone, now_rfc3339
from drtool.lab.api.status import ApiError

from .chartcrds import chart_crd_objects
from .conditions import flux_not_ready, flux_progressing, flux_ready, is_ready, set_condition, status_copy
from .durations import format_duration, parse_duration
from .health import CURRENT, health
from .charts import chart_of as _chart, workload_for
from .runtime import DONE, WAIT, Key, Result, Runtime, flux_gate, key_of

GROUP = "helm.toolkit.fluxcd.io"
SOURCE_GROUP = "source.toolkit.fluxcd.io"
DEFAULT_TIMEOUT = 300.0


class HelmReleaseReconciler:
    component = "helm-controller"
    owns = ((GROUP, "HelmRelease"),)
    watches = ((SOURCE_GROUP, "HelmRepository"), (SOURCE_GROUP, "HelmChart"), (SOURCE_GROUP, "OCIRepository"),
               (GROUP, "HelmRelease"), ("apps", "Deployment"))

    def __init__(self, runtime: Runtime, catalog: ChartCatalog | None = None):
        self.rt = runtime
        self.catalog = catalog if catalog is not None else default_catalog()
        self._failures: dict[tuple[Key, Any], int] = {}

    def forget(self, key: Key) -> None:
        self._failures = {k: v for k, v in self._failures.items() if k[0] != key}

    async def reconcile(self, obj: dict[str, Any]) -> Result:
        if (gate := flux_gate(self.rt, self.component, obj)) is not None:
            return gate
        spec, meta = obj.get("spec") or {}, obj["metadata"]
        key, gen = key_of(obj), int(meta.get("generation") or 1)
        ns, name = meta.get("namespace") or "default", meta["name"]
        status = status_copy(obj)
        chart, version, source_ref = _chart(spec)
        faults = self.rt.scenario.faults("HelmRelease", ns, name)

        if is_ready(obj) and status.get("lastAttemptedGeneration") == gen:
            return DONE
        stalled = any(c.get("type") == "Stalled" and c.get("status") == "True" for c in status.get("conditions") or [])
        if stalled and status.get("lastAttemptedGeneration") == gen:
            return DONE

        # 1. chart source
        src_kind = source_ref.get("kind") or "HelmRepository"
        src_ns = source_ref.get("namespace") or ns
        source = self.rt.store.peek(SOURCE_GROUP, src_kind, src_ns, source_ref.get("name", "")) \
            if self.rt.store.kinds.by_kind(SOURCE_GROUP, src_kind) is not None else None
        if not is_ready(source):
            what = "not found" if source is None else "is not ready"
            return self._blocked(obj, status, gen, "ArtifactFailed",
                                 f"HelmChart '{src_ns}/{ns}-{name}' is not ready: {src_kind} "
                                 f"'{src_ns}/{source_ref.get('name')}' {what}")

        # 2. dependencies: helm-controller v1.1.0 helmrelease_controller.go reconcileRelease
        # requeues on a fixed --requeue-dependency interval ("Exponential backoff would cause
        # execution to be prolonged too much"); no watch event wakes it earlier.
        for dep in spec.get("dependsOn") or []:
            dep_ns = dep.get("namespace") or ns
            if not is_ready(self.rt.store.peek(GROUP, "HelmRelease", dep_ns, dep.get("name", ""))):
                message = f"dependency '{dep_ns}/{dep.get('name')}' is not ready"
                self._blocked(obj, status, gen, "DependencyNotReady", message)
                self.rt.emit(obj, "DependencyNotReady", message, self.component)
                return Result(requeue_after=self.rt.scenario.scaled(self.rt.scenario.flux.requeue_dependency))

        # 3. install (after the scenario's delay), with the scenario's failures
        values_hash = hashlib.sha256(json.dumps(spec.get("values") or {}, sort_keys=True).encode()).hexdigest()[:8]
        token = (gen, version, values_hash)
        attempt = self._failures.get((key, token), 0)
        delay = self.rt.scenario.delay("HelmRelease", ns, name, self.rt.scenario.defaults.helm_release)
        history = status.get("history") or []
        action = "upgrade" if history else "install"
        Action = action.capitalize()
        timeout = parse_duration((spec.get(action) or {}).get("timeout"), parse_duration(spec.get("timeout"),
                                                                                            DEFAULT_TIMEOUT))
        left = self.rt.remaining(key, (token, attempt), delay)
        status["lastAttemptedRevision"] = version
        status["lastAttemptedGeneration"] = gen
        status["lastAttemptedValuesChecksum"] = values_hash
        status["lastAttemptedReleaseAction"] = action
        status["helmChart"] = f"{src_ns}/{ns}-{name}"
        if left > 0:
            flux_progressing(status, gen, f"Running '{action}' action with timeout of {format_duration(timeout)}")
            self.rt.write_status(obj, status)
            return Result(requeue_after=left)
        release = f"{ns}/{name}"
        if faults.retries_exceeded or attempt < faults.fail_times:
            return self._failed(obj, status, gen, key, token, attempt, action,
                                f"Helm {action} failed for release {release} with chart {chart}@{version}: "
                                "context deadline exceeded")

        # 4. the chart's CRDs, then the workload, then wait for it like `helm install --wait`
        kind = faults.workload_kind or None
        workload = workload_for(obj, kind, self.rt.scenario.images.charts.get(chart, ()))
        try:
            self._install_crds(obj, chart, version, action)
            self.rt.store.apply(workload)
        except ApiError as exc:
            return self._failed(obj, status, gen, key, token, attempt, action,
                                f"Helm {action} failed for release {release} with chart {chart}@{version}: "
                                f"{exc.message}")
        w_meta = workload["metadata"]
        current = self.rt.store.peek("apps", workload["kind"], w_meta["namespace"], w_meta["name"])
        h = health(current)
        if h.status != CURRENT:
            waited = self.rt.elapsed(key, ("wait", token, attempt))
            if waited < self.rt.scenario.scaled(timeout):
                flux_progressing(status, gen, f"Running '{action}' action with timeout of {format_duration(timeout)}")
                self.rt.write_status(obj, status)
                return Result(requeue_after=self.rt.scenario.scaled(timeout) - waited, wait=True)
            return self._failed(obj, status, gen, key, token, attempt, action,
                                f"Helm {action} failed for release {release} with chart {chart}@{version}: "
                                f"timed out waiting for the condition: {workload['kind']}/{w_meta['namespace']}/"
                                f"{w_meta['name']} {h.message}")

        digest = hashlib.sha256(f"{release}{version}{values_hash}".encode()).hexdigest()
        entry = {"name": name, "namespace": w_meta["namespace"], "version": len(history) + 1,
                 "status": "deployed", "chartName": chart, "chartVersion": version.lstrip("v"),
                 "appVersion": version.lstrip("v"), "configDigest": f"sha256:{digest}",
                 "digest": f"sha256:{digest[::-1]}", "firstDeployed": now_rfc3339(), "lastDeployed": now_rfc3339()}
        for old in history:
            if old.get("status") == "deployed":
                old["status"] = "superseded"
        status["history"] = [entry] + history[:4]
        status["lastAppliedRevision"] = version
        status["lastReleaseRevision"] = entry["version"]
        status.pop("failures", None)
        status.pop("installFailures", None)
        status.pop("upgradeFailures", None)
        message = (f"Helm {action} succeeded for release {release}.v{entry['version']} with chart "
                   f"{chart}@{version}")
        set_condition(status, "Released", "True", f"{Action}Succeeded", message, gen)
        flux_ready(status, gen, f"{Action}Succeeded", message)
        self.rt.write_status(obj, status)
        self.rt.emit(obj, f"{Action}Succeeded", message, self.component)
        return DONE

    def _install_crds(self, obj: dict[str, Any], chart: str, version: str, action: str) -> None:
        for crd, replace in chart_crd_objects(self.catalog, chart, version, obj, action):
            name = crd["metadata"]["name"]
            if self.rt.store.peek("apiextensions.k8s.io", "CustomResourceDefinition", None, name) is None:
                self.rt.store.create(crd)
            elif replace:
                self.rt.store.apply(crd)

    def _failed(self, obj: dict[str, Any], status: dict[str, Any], gen: int, key: Key, token: Any, attempt: int,
                action: str, message: str) -> Result:
        """A failed install/upgrade, remediated as helm-controller v1.1.0 does it.

        ``internal/reconcile/atomic_release.go``: after a failed release action the object is
        requeued for remediation and another attempt while its remediation has retries left
        (``api/v2/helmrelease_types.go`` ``RetriesExhausted``: failures > retries, retries
        default 0, -1 never exhausts); once exhausted it is ``Stalled=True`` reason
        ``RetriesExceeded`` "Failed to <action> after N attempt(s)" and not retried again
        (a terminal error) until its spec changes.
        """
        Action = action.capitalize()
        failures = attempt + 1
        self._failures[(key, token)] = failures
        status["failures"] = int(status.get("failures") or 0) + 1
        status[f"{action}Failures"] = failures
        remediation = ((obj.get("spec") or {}).get(action) or {}).get("remediation") or {}
        try:
            retries = int(remediation.get("retries", 0))
        except (TypeError, ValueError):
            retries = 0
        exhausted = retries >= 0 and failures > retries
        set_condition(status, "Released", "False", f"{Action}Failed", message, gen)
        flux_not_ready(status, gen, f"{Action}Failed", message)
        if exhausted:
            set_condition(status, "Stalled", "True", "RetriesExceeded",
                          f"Failed to {action} after {failures} attempt(s)", gen)
        self.rt.write_status(obj, status)
        self.rt.emit(obj, f"{Action}Failed", message, self.component, "Warning")
        if exhausted:
            return DONE
        # ErrMustRequeue → Requeue: true, paced by the workqueue's 5ms·2^n rate limiter.
        return Result(requeue_after=self.rt.scenario.scaled(0.005 * 2 ** attempt))

    def _blocked(self, obj: dict[str, Any], status: dict[str, Any], gen: int, reason: str, message: str) -> Result:
        before = clone(status.get("conditions") or [])
        flux_not_ready(status, gen, reason, message)
        written = self.rt.write_status(obj, status)
        if written is not None and before != status.get("conditions"):
            self.rt.emit(obj, reason, message, self.component)
        return WAIT
