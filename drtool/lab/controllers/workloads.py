"""Simulated kube-controller-manager workload controllers.

Deployment → ReplicaSet ``<name>-<pod-template-hash>`` → Pods ``<rs>-<5 chars>``;
StatefulSet → Pods ``<name>-0..n-1`` created in order (OrderedReady: the next pod only
once the previous is Ready). Status fields are the ones the real controllers write and
kstatus reads (observedGeneration, replicas, readyReplicas, updatedReplicas,
availableReplicas, Available/Progressing conditions, StatefulSet revisions).
"""
from __future__ import annotations

import hashlib
import json
import secrets
import string
from typing import Any

from drtool.lab.api.objects import clone
from drtool.lab.api.status import AlreadyExists, ApiError

from .conditions import set_condition, status_copy
from .health import health
from .runtime import DONE, Result, StatelessReconciler

_ALNUM = "bcdfghjklmnpqrstvwxz2456789"     # the alphabet of Kubernetes' random name suffixes


def template_hash(template: dict[str, Any]) -> str:
    """A stable short hash of a pod template (plays ``pod-template-hash``)."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return "".join(_ALNUM[int(digest[i:i + 2], 16) % len(_ALNUM)] for i in range(0, 20, 2))


def _owner_ref(obj: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"].get("uid", ""), "controller": True, "blockOwnerDeletion": True}


def _owned_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    uid = owner["metadata"].get("uid")
    return any(r.get("uid") == uid and r.get("controller") for r in obj["metadata"].get("ownerReferences") or [])


def _selector_text(selector: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items()))


def _pod_ready(pod: dict[str, Any]) -> bool:
    return health(pod).current and (pod.get("status") or {}).get("phase") == "Running"


def _new_pod(owner: dict[str, Any], name: str, extra_labels: dict[str, str]) -> dict[str, Any]:
    template = clone(owner["spec"].get("template") or {})
    meta = template.get("metadata") or {}
    labels = dict(meta.get("labels") or {}, **extra_labels)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": owner["metadata"]["namespace"], "labels": labels,
                         "annotations": dict(meta.get("annotations") or {}),
                         "ownerReferences": [_owner_ref(owner)]},
            "spec": dict(template.get("spec") or {}, restartPolicy="Always", schedulerName="default-scheduler")}


class DeploymentReconciler(StatelessReconciler):
    component = "deployment-controller"
    owns = (("apps", "Deployment"),)

    async def reconcile(self, dep: dict[str, Any]) -> Result:
        meta, spec = dep["metadata"], dep.get("spec") or {}
        ns, gen = meta["namespace"], int(meta.get("generation") or 1)
        replicas = int(spec.get("replicas", 1))
        template = spec.get("template") or {}
        phash = template_hash(template)
        rs_name = f"{meta['name']}-{phash}"
        selector = clone(spec.get("selector") or {"matchLabels": (template.get("metadata") or {}).get("labels") or {}})
        selector.setdefault("matchLabels", {})["pod-template-hash"] = phash
        rs_template = clone(template)
        rs_template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = phash
        desired = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": rs_name, "namespace": ns,
                         "labels": dict((template.get("metadata") or {}).get("labels") or {}, **{"pod-template-hash": phash}),
                         "annotations": {"deployment.kubernetes.io/revision": str(gen)},
                         "ownerReferences": [_owner_ref(dep)]},
            "spec": {"replicas": replicas, "selector": selector, "template": rs_template},
        }
        try:
            self.rt.store.apply(desired)
        except ApiError:
            return Result(requeue_after=1.0)
        owned = [rs for rs in self.rt.objects("apps", "ReplicaSet", ns) if _owned_by(rs, dep)]
        for rs in owned:
            if rs["metadata"]["name"] != rs_name and int(rs["spec"].get("replicas", 0)) != 0:
                old = clone(rs)
                old["spec"]["replicas"] = 0
                old["metadata"].pop("resourceVersion", None)
                self.rt.store.update(old)
        new_rs = next((rs for rs in owned if rs["metadata"]["name"] == rs_name), None)
        totals = {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0}
        for rs in owned:
            st = rs.get("status") or {}
            for field in totals:
                totals[field] += int(st.get(field) or 0)
        updated = int(((new_rs or {}).get("status") or {}).get("replicas") or 0)
        status = status_copy(dep)
        status.update(observedGeneration=gen, replicas=totals["replicas"], updatedReplicas=updated,
                      readyReplicas=totals["readyReplicas"], availableReplicas=totals["availableReplicas"])
        unavailable = max(0, replicas - totals["availableReplicas"])
        if unavailable:
            status["unavailableReplicas"] = unavailable
        else:
            status.pop("unavailableReplicas", None)
        for field in ("readyReplicas", "availableReplicas", "updatedReplicas", "replicas"):
            if not status.get(field):
                status.pop(field, None)
        if totals["availableReplicas"] >= replicas:
            set_condition(status, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        else:
            set_condition(status, "Available", "False", "MinimumReplicasUnavailable",
                          "Deployment does not have minimum availability.")
        if updated >= replicas and totals["availableReplicas"] >= replicas:
            set_condition(status, "Progressing", "True", "NewReplicaSetAvailable",
                          f'ReplicaSet "{rs_name}" has successfully progressed.')
        else:
            set_condition(status, "Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
        self.rt.write_status(dep, status)
        return DONE


class ReplicaSetReconciler(StatelessReconciler):
    component = "replicaset-controller"
    owns = (("apps", "ReplicaSet"),)

    async def reconcile(self, rs: dict[str, Any]) -> Result:
        meta, spec = rs["metadata"], rs.get("spec") or {}
        ns, gen = meta["namespace"], int(meta.get("generation") or 1)
        replicas = int(spec.get("replicas", 1))
        pods = [p for p in self.rt.objects("", "Pod", ns, _selector_text(spec.get("selector") or {}))
                if _owned_by(p, rs) and not p["metadata"].get("deletionTimestamp")]
        for _ in range(replicas - len(pods)):
            suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))
            try:
                self.rt.store.create(_new_pod(rs, f"{meta['name']}-{suffix}", {}))
            except ApiError:
                return Result(requeue_after=0.5)
        for pod in pods[replicas:] if len(pods) > replicas else []:
            self.rt.store.delete("", "Pod", ns, pod["metadata"]["name"])
        pods = pods[:replicas]
        ready = sum(1 for p in pods if _pod_ready(p))
        status = {"observedGeneration": gen, "replicas": len(pods) if len(pods) >= replicas else replicas,
                  "fullyLabeledReplicas": replicas, "readyReplicas": ready, "availableReplicas": ready}
        if replicas == 0:
            status = {"observedGeneration": gen, "replicas": 0}
        self.rt.write_status(rs, status)
        return DONE


class StatefulSetReconciler(StatelessReconciler):
    component = "statefulset-controller"
    owns = (("apps", "StatefulSet"),)

    async def reconcile(self, sts: dict[str, Any]) -> Result:
        meta, spec = sts["metadata"], sts.get("spec") or {}
        ns, name, gen = meta["namespace"], meta["name"], int(meta.get("generation") or 1)
        replicas = int(spec.get("replicas", 1))
        revision = f"{name}-{template_hash(spec.get('template') or {})}"
        pods = {p["metadata"]["name"]: p for p in self.rt.objects("", "Pod", ns) if _owned_by(p, sts)}
        ready = 0
        for ordinal in range(replicas):
            pod_name = f"{name}-{ordinal}"
            pod = pods.get(pod_name)
            if pod is None:
                try:
                    self.rt.store.create(_new_pod(sts, pod_name, {
                        "controller-revision-hash": revision,
                        "statefulset.kubernetes.io/pod-name": pod_name,
                        "apps.kubernetes.io/pod-index": str(ordinal)}))
                except AlreadyExists:
                    pass
                break            # OrderedReady: one pod at a time
            if not _pod_ready(pod):
                break
            ready += 1
        for pod_name, pod in pods.items():
            ordinal = pod_name.rsplit("-", 1)[-1]
            if ordinal.isdigit() and int(ordinal) >= replicas:
                self.rt.store.delete("", "Pod", ns, pod_name)
        created = min(replicas, len([p for p in pods if p.rsplit("-", 1)[-1].isdigit()
                                     and int(p.rsplit("-", 1)[-1]) < replicas]))
        status = {"observedGeneration": gen, "replicas": created, "readyReplicas": ready,
                  "currentReplicas": created, "updatedReplicas": created, "availableReplicas": ready,
                  "currentRevision": revision, "updateRevision": revision, "collisionCount": 0}
        self.rt.write_status(sts, {k: v for k, v in status.items() if v != 0 or k in ("observedGeneration",
                                                                                         "collisionCount", "replicas")})
        return DONE
