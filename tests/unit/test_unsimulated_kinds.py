"""Objects of built-in kinds the lab does not simulate are applied, served and count as Current."""
from __future__ import annotations

from pathlib import Path

from drtool.lab.api import Store
from tests.unit.test_controllers import _eventually, _ks, _ready, _run

OBJECTS = """apiVersion: v1
kind: Namespace
metadata: {name: web}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local-fast}
provisioner: rancher.io/local-path
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: web}
spec: {podSelector: {}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: web}
spec: {rules: [{host: web.lab}]}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: web}
spec: {schedule: "0 3 * * *", jobTemplate: {spec: {template: {spec: {containers: []}}}}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: web}
spec: {minAvailable: 1}
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: pods, namespace: web}
spec: {hard: {pods: "10"}}
"""


def test_kustomization_with_unsimulated_kinds_is_ready(tmp_path: Path) -> None:
    async def body(store: Store, repo: Path) -> None:
        store.create(_ks("platform", "./platform", wait=True))
        cond = await _eventually(lambda: (c := _ready(store, "kustomize.toolkit.fluxcd.io", "Kustomization",
                                                      "flux-system", "platform")) and c["status"] == "True" and c)
        assert cond["reason"] == "ReconciliationSucceeded"
        assert store.get("storage.k8s.io", "StorageClass", None, "local-fast")["provisioner"] == "rancher.io/local-path"
        assert store.get("policy", "PodDisruptionBudget", "web", "web") is not None
        assert store.get("batch", "CronJob", "web", "nightly") is not None

    _run(tmp_path, {}, body, {"platform/all.yaml": OBJECTS})
