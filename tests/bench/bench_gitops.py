"""`inv gitops.check` on a generated repository of 500 files, against `python -c pass`.

The repository is laid out like a real one grown over time: a cluster path with one Flux
Kustomization per app group, each group's apps in their own directories (kustomization.yaml,
namespace, HelmRelease, Deployment, Service, ConfigMap, ...), dependsOn chains, a SOPS secret,
HelmRepositories in an infrastructure Kustomization. It is clean (no blocker), so the whole check
runs: build, kinds, nodes, inputs, drift, data and repository rules. Each run is its own process,
as an operator runs it, interleaved with the baseline. No lab and no root needed.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.bench.bench_stats import BenchResult, Row, Spread, ratios

REPO = Path(__file__).resolve().parents[2]
TARGET_S = 2.0   # issue 13
FILES = 500
PER_APP = ("kustomization.yaml", "namespace.yaml", "helmrelease.yaml", "deployment.yaml", "service.yaml",
           "configmap.yaml", "serviceaccount.yaml", "pdb.yaml")


def _dump(path: Path, *docs: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def make_repo(root: Path, files: int = FILES, groups: int = 6) -> Path:
    """Write a Flux repository of exactly ``files`` files under ``root``; returns ``root``."""
    written = 0

    def write(path: Path, *docs: dict) -> None:
        nonlocal written
        _dump(path, *docs)
        written += 1

    flux = "kustomize.toolkit.fluxcd.io/v1"
    src = {"kind": "GitRepository", "name": "flux-system"}
    write(root / "clusters/bench/infrastructure.yaml", {
        "apiVersion": flux, "kind": "Kustomization", "metadata": {"name": "infrastructure", "namespace": "flux-system"},
        "spec": {"interval": "10m", "path": "./infrastructure", "prune": True, "sourceRef": src,
                 "decryption": {"provider": "sops", "secretRef": {"name": "sops-age"}}}})
    write(root / "infrastructure/kustomization.yaml", {"apiVersion": "kustomize.config.k8s.io/v1beta1",
                                                        "kind": "Kustomization", "resources": ["sources.yaml", "secret.sops.yaml"]})
    write(root / "infrastructure/sources.yaml", {
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
        "metadata": {"name": "charts", "namespace": "flux-system"}, "spec": {"interval": "1h", "url": "https://charts.example.org"}})
    write(root / "infrastructure/secret.sops.yaml", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "shared", "namespace": "flux-system"},
        "stringData": {"token": "ENC[AES256_GCM,data:eA==,iv:eA==,tag:eA==,type:str]"},
        "sops": {"age": [{"recipient": "age1bench"}], "version": "3.9.2"}})
    budget = files - written - groups * 2   # each group: its Kustomization file and its kustomization.yaml
    apps = budget // len(PER_APP)
    extra = budget - apps * len(PER_APP)
    per_group = [apps // groups + (1 if g < apps % groups else 0) for g in range(groups)]
    for g, count in enumerate(per_group):
        group = f"group{g}"
        write(root / f"clusters/bench/{group}.yaml", {
            "apiVersion": flux, "kind": "Kustomization", "metadata": {"name": group, "namespace": "flux-system"},
            "spec": {"interval": "10m", "path": f"./apps/{group}", "prune": True, "sourceRef": src,
                     "dependsOn": [{"name": "infrastructure"}] + ([{"name": f"group{g - 1}"}] if g else [])}})
        names = [f"app{g}-{i}" for i in range(count)]
        write(root / f"apps/{group}/kustomization.yaml", {"apiVersion": "kustomize.config.k8s.io/v1beta1",
                                                           "kind": "Kustomization", "resources": names})
        for name in names:
            d = root / "apps" / group / name
            labels = {"app": name}
            write(d / "kustomization.yaml", {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                                             "resources": list(PER_APP[1:])})
            write(d / "namespace.yaml", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
            write(d / "helmrelease.yaml", {
                "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                "metadata": {"name": f"{name}-db", "namespace": name},
                "spec": {"interval": "10m", "chart": {"spec": {"chart": "postgresql", "version": "1.0.0",
                         "sourceRef": {"kind": "HelmRepository", "name": "charts", "namespace": "flux-system"}}},
                         "values": {"nodeSelector": {"kubernetes.io/os": "linux"}, "primary": {"resources": {}}}}})
            write(d / "deployment.yaml", {
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": name, "labels": labels},
                "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels},
                         "spec": {"serviceAccountName": name, "containers": [{"name": name, "image": f"example/{name}:1",
                                  "envFrom": [{"configMapRef": {"name": name}}], "ports": [{"containerPort": 8080}]}],
                                  "volumes": [{"name": "config", "configMap": {"name": name}}]}}}})
            write(d / "service.yaml", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": name},
                                       "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}})
            write(d / "configmap.yaml", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": name},
                                         "data": {f"key{i}": f"value {i}" for i in range(20)}})
            write(d / "serviceaccount.yaml", {"apiVersion": "v1", "kind": "ServiceAccount",
                                              "metadata": {"name": name, "namespace": name}})
            write(d / "pdb.yaml", {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                                   "metadata": {"name": name, "namespace": name},
                                   "spec": {"minAvailable": 1, "selector": {"matchLabels": labels}}})
    for i in range(extra):  # notes nobody reads, as in every real repository
        (root / "docs").mkdir(exist_ok=True)
        (root / "docs" / f"note-{i}.md").write_text(f"# note {i}\n")
        written += 1
    assert written == files, written
    return root


def bench_inventory(tmp: Path, checkout: Path) -> Path:
    data = yaml.safe_load((REPO / "inventory" / "lab.yaml").read_text())
    data["flux"]["path"] = "clusters/bench"
    data["flux"]["checkout"] = str(checkout)
    path = tmp / "inventory.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _time(argv: list[str]) -> tuple[float, str]:
    start = time.monotonic()
    res = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - start
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[2:5])} exited {res.returncode}: {(res.stderr or res.stdout).strip()[-300:]}")
    return elapsed, res.stdout


def run(progress, reps: int = 5, workdir: Path | None = None) -> BenchResult:
    """Time ``inv gitops.check --json`` on the generated repository ``reps`` times against ``python -c pass``."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="drtool-bench-gitops-") as tmp_name:
        tmp = Path(workdir or tmp_name)
        repo = make_repo(tmp / "repo")
        inventory = bench_inventory(tmp, repo)
        py = sys.executable
        wall: list[float] = []
        base: list[float] = []
        inner: list[float] = []
        summary: dict = {}
        for i in range(reps):
            base.append(_time([py, "-c", "pass"])[0])
            seconds, out = _time([py, "-m", "invoke", "gitops.check", "-i", str(inventory), "--json"])
            wall.append(seconds)
            summary = json.loads(out)
            inner.append(summary["duration_s"])
            progress(f"gitops: run {i + 1}/{reps}: {seconds:.2f} s ({summary['duration_s']:.2f} s checking)")
    spread, check = Spread.of(wall), Spread.of(inner)
    result = BenchResult("gitops")
    result.data = {"seconds": spread.as_dict(), "check_seconds": check.as_dict(), "files": summary.get("files"),
                   "kustomizations": summary.get("kustomizations"), "findings": len(summary.get("findings", []))}
    result.rows.append(Row(f"`inv gitops.check` on a repository of {summary.get('files')} files "
                           f"({summary.get('kustomizations')} Kustomizations)", spread.show("s", 2),
                           f"`python -c pass` {Spread.of(base).median:.3f} s", ratios(wall, base).show("×", 1),
                           f"< {TARGET_S:g} s", spread.median < TARGET_S))
    result.rows.append(Row("`inv gitops.check`: the check itself (in-process, without start-up)", check.show("s", 3),
                           "—", "—"))
    return result
