#!/usr/bin/env python3
"""Generate ``drtool/kube/apisurface.yaml``: the API surface of Kubernetes, K3s and Flux.

Sources (read, never copied as code):

* Kubernetes v1.31 built-in kinds: ``api/discovery/aggregated_v2.json`` (every group but
  the core one) and ``api/discovery/api__v1.json`` (the core group) of
  github.com/kubernetes/kubernetes. Only GA versions (``v1``, ``v2``) are kept: those are
  what a default 1.31 cluster serves for every kind (alpha and beta APIs of 1.31 are off by
  default, flowcontrol ``v1beta3`` aside). ``scripts/apisurface-sources/`` holds the GA part
  of those files (same format, fewer fields) from which the checked-in data was made.
* K3s v1.31 kinds: k3s ``pkg/crd/crds.go`` (Addon, namespaced; ETCDSnapshotFile, cluster
  scoped) and k3s-io/helm-controller v0.16 ``pkg/crd/crds.go`` (HelmChart with status,
  HelmChartConfig), all ``v1``; wrangler's ``crd.NamespacedType`` names the plural by
  lower-casing the kind and adding ``s``, and sets no short names.
* Flux v2.4.0: ``manifests/crds/kustomization.yaml`` of github.com/fluxcd/flux2 at v2.4.0
  names the controller releases; each controller's ``config/crd/bases/*.yaml`` at that tag
  gives group, kind, plural, scope, short names, served/storage versions and printer columns.

Usage::

    python scripts/gen_apisurface.py \\
        --k8s-aggregated KUBERNETES/api/discovery/aggregated_v2.json \\
        --k8s-core KUBERNETES/api/discovery/api__v1.json \\
        --flux-git source-controller=/path/to/source-controller@v1.4.1 ... \\
        [--output drtool/kube/apisurface.yaml]
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO / "drtool" / "kube" / "apisurface.yaml"
ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
KEPT_SUBRESOURCES = ("status", "scale")
GA_VERSION = re.compile(r"^v\d+$")

# Flux v2.4.0 (flux2 manifests/crds/kustomization.yaml at tag v2.4.0).
FLUX_VERSION = "v2.4.0"
FLUX_CONTROLLERS = {
    "source-controller": "v1.4.1",
    "kustomize-controller": "v1.4.0",
    "helm-controller": "v1.1.0",
    "notification-controller": "v1.4.0",
    "image-reflector-controller": "v0.33.0",
    "image-automation-controller": "v0.39.0",
}

# K3s v1.31: (group, kind, namespaced, subresources, printer columns, source).
K3S_KINDS = (
    ("helm.cattle.io", "HelmChart", True, ["status"],
     [("Job", ".status.jobName"), ("Chart", ".spec.chart"), ("TargetNamespace", ".spec.targetNamespace"),
      ("Version", ".spec.version"), ("Repo", ".spec.repo"), ("HelmVersion", ".spec.helmVersion"),
      ("Bootstrap", ".spec.bootstrap")],
     "k3s-io/helm-controller pkg/crd/crds.go (v0.16)"),
    ("helm.cattle.io", "HelmChartConfig", True, [], [], "k3s-io/helm-controller pkg/crd/crds.go (v0.16)"),
    ("k3s.cattle.io", "Addon", True, [], [("Source", ".spec.source"), ("Checksum", ".spec.checksum")],
     "k3s-io/k3s pkg/crd/crds.go (v1.31)"),
    ("k3s.cattle.io", "ETCDSnapshotFile", False, [],
     [("SnapshotName", ".spec.snapshotName"), ("Node", ".spec.nodeName"), ("Location", ".spec.location"),
      ("Size", ".status.size"), ("CreationTime", ".status.creationTime")],
     "k3s-io/k3s pkg/crd/crds.go (v1.31)"),
)


def _entry(group: str, versions: list[str], kind: str, plural: str, singular: str, namespaced: bool,
           short: list[str] | None, categories: list[str] | None, subresources: list[str],
           verbs: list[str] | None, columns: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"group": group, "versions": versions, "kind": kind, "plural": plural,
                           "singular": singular or kind.lower(), "namespaced": namespaced}
    if short:
        out["shortNames"] = list(short)
    if categories:
        out["categories"] = list(categories)
    if subresources:
        out["subresources"] = subresources
    if verbs and sorted(verbs) != ALL_VERBS:
        out["verbs"] = sorted(verbs)
    if columns:
        out["printerColumns"] = columns
    return out


def kubernetes_from_aggregated(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """GA resources of an ``APIGroupDiscoveryList``; one entry per (group, kind), versions in file order."""
    by_kind: dict[tuple[str, str], dict[str, Any]] = {}
    for item in doc["items"]:
        group = item["metadata"]["name"]
        for ver in item["versions"]:
            if not GA_VERSION.match(ver["version"]):
                continue
            for res in ver["resources"]:
                kind = res["responseKind"]["kind"]
                key = (group, kind)
                if key in by_kind:
                    by_kind[key]["versions"].append(ver["version"])
                    continue
                subs = [s["subresource"] for s in res.get("subresources") or []
                        if s["subresource"] in KEPT_SUBRESOURCES]
                by_kind[key] = _entry(group, [ver["version"]], kind, res["resource"],
                                      res.get("singularResource", ""), res["scope"] == "Namespaced",
                                      res.get("shortNames"), res.get("categories"), subs, res.get("verbs"))
    return list(by_kind.values())


def kubernetes_from_core(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The core group's resources of an ``APIResourceList`` (subresources folded into their kind)."""
    out: dict[str, dict[str, Any]] = {}
    for res in doc["resources"]:
        name = res["name"]
        if "/" in name:
            base, sub = name.split("/", 1)
            if base in out and sub in KEPT_SUBRESOURCES:
                out[base].setdefault("subresources", []).append(sub)
            continue
        out[name] = _entry("", ["v1"], res["kind"], name, res.get("singularName", ""), res["namespaced"],
                           res.get("shortNames"), res.get("categories"), [], res.get("verbs"))
    return list(out.values())


def _version_key(v: str) -> tuple[int, int, int]:
    """Kubernetes' version priority (GA > beta > alpha, higher numbers first), as the API server
    orders a CRD's versions in discovery (apimachinery ``version.CompareKubeAwareVersionStrings``)."""
    m = re.match(r"^v(\d+)(?:(alpha|beta)(\d+))?$", v)
    if not m:
        return (3, 0, 0)
    level = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    return (level, -int(m.group(1)), -int(m.group(3) or 0))


def resource_from_crd(crd: dict[str, Any]) -> dict[str, Any]:
    spec = crd["spec"]
    names = spec["names"]
    served = [v for v in spec["versions"] if v.get("served", True)]
    served.sort(key=lambda v: _version_key(v["name"]))
    storage = next((v for v in served if v.get("storage")), served[0])
    cols = [{k: c[k] for k in ("name", "type", "jsonPath", "priority") if k in c}
            for c in storage.get("additionalPrinterColumns") or []]
    entry = _entry(spec["group"], [v["name"] for v in served], names["kind"], names["plural"],
                   names.get("singular", ""), spec.get("scope", "Namespaced") == "Namespaced",
                   names.get("shortNames"), names.get("categories"),
                   list((storage.get("subresources") or {}).keys()), None, cols)
    entry["storageVersion"] = storage["name"]
    deprecated = [v["name"] for v in served if v.get("deprecated")]
    if deprecated:
        entry["deprecatedVersions"] = deprecated
    return entry


def flux_from_git(name: str, repo: str, tag: str) -> list[dict[str, Any]]:
    files = subprocess.run(["git", "-C", repo, "ls-tree", "--name-only", tag, "config/crd/bases/"],
                           check=True, capture_output=True, text=True).stdout.split()
    out = []
    for f in sorted(files):
        if not f.endswith(".yaml"):
            continue
        text = subprocess.run(["git", "-C", repo, "show", f"{tag}:{f}"], check=True,
                              capture_output=True, text=True).stdout
        out.append(resource_from_crd(yaml.safe_load(text)))
    return out


def k3s_resources() -> list[dict[str, Any]]:
    out = []
    for group, kind, namespaced, subs, cols, source in K3S_KINDS:
        e = _entry(group, ["v1"], kind, kind.lower() + "s", kind.lower(), namespaced, None, None, subs, None,
                   [{"name": n, "type": "string", "jsonPath": p} for n, p in cols])
        e["source"] = source
        out.append(e)
    return out


def generate(aggregated: dict[str, Any], core: dict[str, Any],
             flux: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        "kubernetes": {"version": "1.31",
                       "source": "kubernetes/kubernetes api/discovery/aggregated_v2.json + api__v1.json, GA versions",
                       "resources": kubernetes_from_core(core) + kubernetes_from_aggregated(aggregated)},
        "k3s": {"version": "v1.31.4+k3s1", "resources": k3s_resources()},
        "flux": {"version": FLUX_VERSION,
                 "source": "fluxcd/flux2 manifests/crds/kustomization.yaml at v2.4.0; controllers' config/crd/bases",
                 "components": {name: {"version": FLUX_CONTROLLERS[name], "resources": res}
                                for name, res in flux.items()}},
    }


def render(data: dict[str, Any]) -> str:
    head = ("# Generated by scripts/gen_apisurface.py; do not edit by hand (see its docstring for sources).\n")
    return head + yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = REPO / "scripts" / "apisurface-sources"
    ap.add_argument("--k8s-aggregated", default=str(src / "kubernetes-aggregated_v2.ga.json"))
    ap.add_argument("--k8s-core", default=str(src / "kubernetes-api__v1.json"))
    ap.add_argument("--flux-git", action="append", default=[], metavar="CONTROLLER=REPO@TAG")
    ap.add_argument("--flux-from", default=None,
                    help="take the Flux part from this existing apisurface.yaml instead of --flux-git")
    ap.add_argument("--output", default=str(DEFAULT_OUTPUT))
    args = ap.parse_args(argv)
    flux: dict[str, list[dict[str, Any]]] = {}
    for spec in args.flux_git:
        name, _, rest = spec.partition("=")
        repo, _, tag = rest.rpartition("@")
        if name not in FLUX_CONTROLLERS or tag != FLUX_CONTROLLERS[name]:
            print(f"--flux-git {spec}: expected one of {FLUX_CONTROLLERS}", file=sys.stderr)
            return 2
        flux[name] = flux_from_git(name, repo, tag)
    if args.flux_from:
        old = yaml.safe_load(Path(args.flux_from).read_text())
        flux = {k: v["resources"] for k, v in old["flux"]["components"].items()}
    flux = {k: flux[k] for k in FLUX_CONTROLLERS if k in flux}
    data = generate(json.loads(Path(args.k8s_aggregated).read_text()), json.loads(Path(args.k8s_core).read_text()),
                    flux)
    Path(args.output).write_text(render(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
