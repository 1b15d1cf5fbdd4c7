"""An operator's own GitOps repository, as the lab tests that rehearse one (`inv lab.up --gitops
PATH --path P`) write it: one Flux Kustomization ``apps`` (path ./apps) under the cluster path,
and a ``hello`` Deployment in namespace ``web`` under apps/, committed on branch main."""
from __future__ import annotations

import subprocess
from pathlib import Path

APPS_KUSTOMIZATION = """apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: apps, namespace: flux-system}
spec:
  interval: 10m
  path: ./apps
  prune: true
  wait: true
  sourceRef: {kind: GitRepository, name: flux-system}
"""


def hello_app(replicas: int = 1, node: str | None = None) -> str:
    """Namespace web and the Deployment web/hello; ``node`` pins its pods (nodeSelector on the
    node's hostname label), so Ready means they were scheduled there."""
    selector = f"      nodeSelector: {{kubernetes.io/hostname: {node}}}\n" if node else ""
    return ("apiVersion: v1\nkind: Namespace\nmetadata: {name: web}\n---\n"
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: hello, namespace: web}\nspec:\n"
            f"  replicas: {replicas}\n  selector: {{matchLabels: {{app: hello}}}}\n  template:\n"
            "    metadata: {labels: {app: hello}}\n    spec:\n" + selector +
            "      containers: [{name: hello, image: nginx:1.27}]\n")


def own_repo(root: Path, cluster_path: str, app: str) -> Path:
    """``root/my-gitops``: ``cluster_path/apps.yaml`` (the apps Kustomization) and ``apps/hello.yaml``
    holding ``app``, committed."""
    repo = root / "my-gitops"
    (repo / cluster_path).mkdir(parents=True)
    (repo / "apps").mkdir()
    (repo / cluster_path / "apps.yaml").write_text(APPS_KUSTOMIZATION)
    (repo / "apps" / "hello.yaml").write_text(app)
    for cmd in (["init", "-q", "-b", "main"], ["add", "-A"],
                ["-c", "user.name=op", "-c", "user.email=op@example.invalid", "commit", "-qm", "my cluster"]):
        subprocess.run(["git", *cmd], cwd=repo, check=True, capture_output=True, timeout=30)
    return repo
