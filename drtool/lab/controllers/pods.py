"""Simulated scheduler and kubelets: bind pods to Ready nodes and run them.

Only pods owned by a ReplicaSet, StatefulSet or DaemonSet are handled here; K3s's own
``helm-install-*`` Job pods are the K3s simulation's business. A pod that fits no
node stays Pending with ``PodScheduled=False`` reason ``Unschedulable`` and is retried
whenever a Node changes (a node that joins or turns Ready later). Once bound, it starts
after the scenario's pod delay, or plays the scenario's fault: CrashLoopBackOff with a
growing ``restartCount``, or ErrImagePull / ImagePullBackOff.

Images follow the scenario's cost model (``images:``): an image the node holds (its
``Node.status.images``) is not pulled again; any other is pulled over the node's link, one pull
at a time per node, and added to the Node's images once pulled. The kubelet's events say so, in
the words of kubernetes v1.31.4 pkg/kubelet/images/image_manager.go (EnsureImageExists):
``Pulled: Container image "x" already present on machine``, ``Pulling: Pulling image "x"``,
``Pulled: Successfully pulled image "x" in 7.264s (9.1s including waiting). Image size: N bytes.``
(durations in the model's seconds, as Flux messages keep theirs; the lab plays them at
``time_scale``). Containers then start after ``images.container_start`` each.
"""
from __future__ import annotations

import ipaddress
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from drtool.lab.api.objects import clone, now_rfc3339
from drtool.lab.api.status import ApiError
from drtool.lab.scenarios import ObjectFaults
from drtool.lab.scenarios.costs import go_duration
from drtool.remote.image_cache import normalized

from .conditions import set_condition, status_copy
from .runtime import DONE, WAIT, Key, Result, Runtime, key_of
from .scheduler import schedule

MANAGED_OWNERS = ("ReplicaSet", "StatefulSet", "DaemonSet")
BACKOFF_CAP = 4.0          # seconds between simulated restarts / pull retries


@dataclass
class _StartPlan:
    """When a bound pod's events fall due and when its containers run (``time.monotonic``)."""

    events: list[tuple[float, str, str]] = field(default_factory=list)   # (at, reason, message)
    pulled: list[tuple[float, str]] = field(default_factory=list)        # (at, image) for the Node
    ready_at: float = 0.0


def node_image_names(node: dict[str, Any] | None) -> set[str]:
    """Every name in a Node's ``status.images`` (what its runtime holds)."""
    return {n for e in ((node or {}).get("status") or {}).get("images") or [] for n in e.get("names") or []}


def _controller_owner(obj: dict[str, Any]) -> dict[str, Any] | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def _pod_ip(namespace: str, name: str) -> str:
    n = zlib.crc32(f"{namespace}/{name}".encode()) % 65000 + 2
    return str(ipaddress.IPv4Address("10.42.0.0") + n)


class PodReconciler:
    component = "default-scheduler"
    owns = (("", "Pod"),)
    watches = (("", "Node"),)

    def __init__(self, runtime: Runtime):
        self.rt = runtime
        self._restarts: dict[Key, int] = {}
        self._plans: dict[Key, tuple[str, _StartPlan]] = {}
        # Per node: image -> monotonic time a pull under way ends; and when the node's one puller
        # is free again (kubelet serializeImagePulls, true by default:
        # kubernetes v1.31.4 pkg/kubelet/apis/config/v1beta1/defaults.go).
        self._pulling: dict[str, dict[str, float]] = {}
        self._puller_free: dict[str, float] = {}

    def forget(self, key: Key) -> None:
        self._restarts.pop(key, None)
        self._plans.pop(key, None)

    # ------------------------------------------------------------------ images (the cost model)

    def _plan(self, pod: dict[str, Any], containers: list[dict[str, Any]], delay: float) -> _StartPlan:
        """Pulls, events and start time of a just-bound pod, from the node's images and the cost model."""
        sc = self.rt.scenario
        costs, node_name = sc.images, (pod.get("spec") or {}).get("nodeName") or ""
        now = time.monotonic()
        pulling = self._pulling.setdefault(node_name, {})
        for ref in [r for r, end in pulling.items() if end <= now]:
            del pulling[ref]             # done: the Node lists it (or lost it in a wipe)
        held = {ref: 0.0 for ref in node_image_names(self.rt.store.peek("", "Node", None, node_name))}
        held.update(pulling)
        plan, at = _StartPlan(), now
        for c in containers:
            image = c.get("image", "")
            # The runtime knows an image by its normalized name: containerd's CRI pulls and stores
            # `distribution.ParseDockerRef(image).String()` and looks an image up the same way
            # (containerd v1.7.23 pkg/cri/sbserver/image_pull.go PullImage, helpers.go
            # localResolve); the kubelet's events keep the name the pod gave.
            name = normalized(image)
            if name in held:
                at = max(at, held[name])               # present, or being pulled for another pod
                plan.events.append((at, "Pulled", f'Container image "{image}" already present on machine'))
                continue
            pull = costs.pull_seconds(image)
            start = max(at, self._puller_free.get(node_name, 0.0))
            waited = (start - at) / sc.time_scale
            plan.events.append((at, "Pulling", f'Pulling image "{image}"'))
            at = start + sc.scaled(pull)
            self._puller_free[node_name] = held[name] = pulling[name] = at
            plan.pulled.append((at, image))
            plan.events.append((at, "Pulled", f'Successfully pulled image "{image}" in {go_duration(pull)} '
                                f"({go_duration(pull + waited)} including waiting). "
                                f"Image size: {costs.size_bytes(image)} bytes."))
        plan.ready_at = at + sc.scaled(costs.container_start * len(containers)) + delay
        return plan

    def _play(self, pod: dict[str, Any], plan: _StartPlan) -> float:
        """Emit the events that fell due and record pulled images on the Node; seconds still to wait."""
        now = time.monotonic()
        while plan.events and plan.events[0][0] <= now:
            _, reason, message = plan.events.pop(0)
            self.rt.emit(pod, reason, message, "kubelet")
        due = [ref for at, ref in plan.pulled if at <= now]
        if due:
            plan.pulled = [(at, ref) for at, ref in plan.pulled if at > now]
            self._add_node_images((pod.get("spec") or {}).get("nodeName") or "", due)
        left = plan.ready_at - now
        if plan.events:
            left = min(left, plan.events[0][0] - now)
        return max(0.0, left)

    def _add_node_images(self, node_name: str, refs: list[str]) -> None:
        """The kubelet's next status update lists what it pulled in ``Node.status.images``."""
        node = self.rt.store.peek("", "Node", None, node_name)
        if node is None:
            return
        status = status_copy(node)
        listed = node_image_names(node)
        entries = list(status.get("images") or [])
        entries += [{"names": [normalized(r)], "sizeBytes": self.rt.scenario.images.size_bytes(r)}
                    for r in refs if normalized(r) not in listed]
        status["images"] = entries
        try:
            self.rt.store.update_status("", "Node", None, node_name, status)
        except ApiError:
            pass             # the Node is gone: nothing to report to

    def _workload_faults(self, pod: dict[str, Any]) -> tuple[ObjectFaults, float]:
        """Faults and start delay from the pod's workload (or the HelmRelease that made it)."""
        sc = self.rt.scenario
        ns = pod["metadata"]["namespace"]
        owner = _controller_owner(pod)
        workload: dict[str, Any] | None = None
        if owner and owner.get("kind") == "ReplicaSet":
            rs = self.rt.store.peek("apps", "ReplicaSet", ns, owner["name"])
            dep_ref = _controller_owner(rs) if rs else None
            if dep_ref:
                workload = self.rt.store.peek("apps", dep_ref.get("kind", "Deployment"), ns, dep_ref["name"])
        elif owner:
            workload = self.rt.store.peek("apps", owner["kind"], ns, owner["name"])
        default = sc.defaults.pod
        if workload is None:
            return sc.faults("Pod", ns, pod["metadata"]["name"]), default
        w_kind, w_name = workload["kind"], workload["metadata"]["name"]
        if ns == "flux-system" and (workload["metadata"].get("labels") or {}).get("app.kubernetes.io/part-of") == "flux":
            default = sc.defaults.flux_controllers
        faults = sc.faults(w_kind, ns, w_name)
        if faults == ObjectFaults():
            labels = workload["metadata"].get("labels") or {}
            if "helm.toolkit.fluxcd.io/name" in labels:
                hr = sc.faults("HelmRelease", labels.get("helm.toolkit.fluxcd.io/namespace"),
                               labels["helm.toolkit.fluxcd.io/name"])
                faults = ObjectFaults(crashloop=hr.crashloop, image_pull_error=hr.image_pull_error)
        delay = default if faults.delay is None else faults.delay
        return faults, delay

    async def reconcile(self, pod: dict[str, Any]) -> Result:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        owner = _controller_owner(pod)
        if owner is None or owner.get("kind") not in MANAGED_OWNERS or meta.get("deletionTimestamp"):
            return DONE
        key = key_of(pod)
        status = status_copy(pod)
        if status.get("phase") in ("Succeeded", "Failed"):
            return DONE
        if not spec.get("nodeName"):
            return self._schedule(pod, status)
        faults, delay = self._workload_faults(pod)
        containers = spec.get("containers") or [{"name": "main", "image": "busybox"}]
        if faults.image_pull_error:
            left = self.rt.remaining(key, ("start", meta.get("uid")), delay)
            if left > 0:
                return Result(requeue_after=left)
            return self._image_pull_error(pod, status, containers)
        uid = str(meta.get("uid"))
        planned = self._plans.get(key)
        if planned is None or planned[0] != uid:
            planned = self._plans[key] = (uid, self._plan(pod, containers, delay))
        plan = planned[1]
        left = self._play(pod, plan)
        if left > 0:
            return Result(requeue_after=left)
        if faults.crashloop:
            return self._crashloop(pod, status, containers)
        if status.get("phase") == "Running" and all(c.get("ready") for c in status.get("containerStatuses") or [{}]):
            return DONE
        now = now_rfc3339()
        status.update(phase="Running", podIP=_pod_ip(meta["namespace"], meta["name"]),
                      podIPs=[{"ip": _pod_ip(meta["namespace"], meta["name"])}], qosClass="BestEffort")
        for cond in ("Initialized", "ContainersReady", "Ready"):
            set_condition(status, cond, "True", "", "")
        for cond in status["conditions"]:
            if not cond.get("reason"):
                cond.pop("reason", None)
                cond.pop("message", None)
        status["containerStatuses"] = [{
            "name": c.get("name", "main"), "image": c.get("image", ""), "imageID": "", "ready": True,
            "started": True, "restartCount": 0, "state": {"running": {"startedAt": now}},
            "containerID": f"containerd://{zlib.crc32((meta['uid'] + c.get('name', '')).encode()):08x}"}
            for c in containers]
        self.rt.write_status(pod, status)
        self.rt.emit(pod, "Started", f"Started container {containers[0].get('name', 'main')}", "kubelet")
        return DONE

    # ------------------------------------------------------------------ scheduling

    def _schedule(self, pod: dict[str, Any], status: dict[str, Any]) -> Result:
        nodes = self.rt.objects("", "Node")
        load: dict[str, int] = {}
        for other in self.rt.objects("", "Pod"):
            node = (other.get("spec") or {}).get("nodeName")
            if node:
                load[node] = load.get(node, 0) + 1
        decision = schedule(pod.get("spec") or {}, nodes, load)
        meta = pod["metadata"]
        if decision.node is None:
            before = clone(status.get("conditions") or [])
            status["phase"] = "Pending"
            set_condition(status, "PodScheduled", "False", "Unschedulable", decision.message)
            self.rt.write_status(pod, status)
            if before != status.get("conditions"):
                self.rt.emit(pod, "FailedScheduling", decision.message, self.component, "Warning")
            return WAIT
        bound = clone(pod)
        bound["spec"]["nodeName"] = decision.node
        bound["metadata"].pop("resourceVersion", None)
        try:
            bound = self.rt.store.update(bound)
        except ApiError:
            return Result(requeue_after=0.2)
        node = next((n for n in nodes if n["metadata"]["name"] == decision.node), {})
        host_ip = next((a.get("address") for a in (node.get("status") or {}).get("addresses") or []
                        if a.get("type") == "InternalIP"), "")
        status = status_copy(bound)
        status.update(phase="Pending", startTime=now_rfc3339())
        if host_ip:
            status["hostIP"] = host_ip
            status["hostIPs"] = [{"ip": host_ip}]
        set_condition(status, "PodScheduled", "True", "", "")
        status["conditions"] = [{k: v for k, v in c.items() if v != "" or k == "status"}
                                for c in status["conditions"]]
        for cond in ("Initialized", "ContainersReady", "Ready"):
            set_condition(status, cond, "False" if cond != "Initialized" else "True",
                          "ContainersNotReady" if cond != "Initialized" else "", "")
        status["conditions"] = [{k: v for k, v in c.items() if v != "" or k == "status"}
                                for c in status["conditions"]]
        containers = (bound.get("spec") or {}).get("containers") or []
        status["containerStatuses"] = [{
            "name": c.get("name", "main"), "image": c.get("image", ""), "imageID": "", "ready": False,
            "started": False, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}
            for c in containers]
        self.rt.write_status(bound, status)
        self.rt.emit(bound, "Scheduled", f"Successfully assigned {meta['namespace']}/{meta['name']} to "
                     f"{decision.node}", self.component)
        # Start the pod's clock at binding time: its delay runs from here.
        self.rt.elapsed(key_of(bound), ("start", meta.get("uid")))
        return Result(requeue_after=0.0)

    # ------------------------------------------------------------------ faults

    def _not_ready_conditions(self, status: dict[str, Any], names: list[str]) -> None:
        message = f"containers with unready status: [{' '.join(names)}]"
        for cond in ("ContainersReady", "Ready"):
            set_condition(status, cond, "False", "ContainersNotReady", message)

    def _image_pull_error(self, pod: dict[str, Any], status: dict[str, Any],
                          containers: list[dict[str, Any]]) -> Result:
        key = key_of(pod)
        tries = self._restarts[key] = self._restarts.get(key, 0) + 1
        reason = "ErrImagePull" if tries % 2 == 1 else "ImagePullBackOff"
        names = [c.get("name", "main") for c in containers]
        status["phase"] = "Pending"
        self._not_ready_conditions(status, names)
        statuses = []
        for c in containers:
            image = c.get("image", "")
            host = image.split("/")[0] if "/" in image else "docker.io"
            message = (f'failed to pull and unpack image "{image}": failed to resolve reference "{image}": '
                       f"failed to do request: Head \"https://{host}/v2/\": dial tcp: lookup {host}: "
                       "no such host" if reason == "ErrImagePull" else f'Back-off pulling image "{image}"')
            statuses.append({"name": c.get("name", "main"), "image": image, "imageID": "", "ready": False,
                             "started": False, "restartCount": 0,
                             "state": {"waiting": {"reason": reason, "message": message}}})
        status["containerStatuses"] = statuses
        self.rt.write_status(pod, status)
        self.rt.emit(pod, "Failed" if reason == "ErrImagePull" else "BackOff",
                     f"Error: {reason}" if reason == "ErrImagePull" else statuses[0]["state"]["waiting"]["message"],
                     "kubelet", "Warning")
        return Result(requeue_after=min(BACKOFF_CAP, 0.5 * tries))

    def _crashloop(self, pod: dict[str, Any], status: dict[str, Any], containers: list[dict[str, Any]]) -> Result:
        key = key_of(pod)
        restarts = self._restarts[key] = self._restarts.get(key, 0) + 1
        meta = pod["metadata"]
        names = [c.get("name", "main") for c in containers]
        status["phase"] = "Running"
        self._not_ready_conditions(status, names)
        now = now_rfc3339()
        backoff = min(300, 10 * 2 ** (restarts - 1))
        status["containerStatuses"] = [{
            "name": c.get("name", "main"), "image": c.get("image", ""), "imageID": "", "ready": False,
            "started": False, "restartCount": restarts,
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now}},
            "state": {"waiting": {"reason": "CrashLoopBackOff",
                                  "message": f"back-off {backoff}s restarting failed container={c.get('name', 'main')} "
                                             f"pod={meta['name']}_{meta['namespace']}({meta.get('uid', '')})"}}}
            for c in containers]
        self.rt.write_status(pod, status)
        self.rt.emit(pod, "BackOff", "Back-off restarting failed container", "kubelet", "Warning")
        return Result(requeue_after=min(BACKOFF_CAP, 0.5 * restarts))
