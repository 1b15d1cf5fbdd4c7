#!/usr/bin/env python3
"""Generate ``drtool/gitops/chart_crds.yaml``: the CRDs common Helm charts install.

Reads each chart's CRD files straight from a Git checkout of the chart's repository at a
tag (``git show``), so each catalog entry names the repository, path and tag it came from::

    python scripts/gen_chart_crds.py --generate MIRRORS_DIR [OUTPUT]   # every chart in CHARTS
    python scripts/gen_chart_crds.py REPO_DIR TAG PATH [PATH...]       # print one chart's CRDs

PATH is a file or a directory (every ``*.yaml`` below it). Helm template directives are
dropped before parsing (CRD files in ``templates/`` are wrapped in ``{{- if ... }}``), so the
output lists every CRD the files can produce; the catalog records the values that gate them.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

import yaml

_DIRECTIVE_LINE = re.compile(r"^\s*\{\{-?.*?-?\}\}\s*$")
_INLINE = re.compile(r"\{\{-?.*?-?\}\}")


def files(repo: str, tag: str, path: str) -> list[str]:
    out = subprocess.run(["git", "-C", repo, "ls-tree", "-r", "--name-only", tag, "--", path],
                         check=True, capture_output=True, text=True).stdout.split()
    return [f for f in out if f.endswith((".yaml", ".yml"))]


def _fill(line: str) -> str:
    """``labels: {{- include ... | nindent 4 }}`` opens a mapping; elsewhere a template is a scalar."""
    bare = _INLINE.sub("", line)
    return bare if bare.rstrip().endswith(":") else _INLINE.sub("x", line)


def crds_in(text: str) -> list[dict]:
    lines = [("" if _DIRECTIVE_LINE.match(line) else _fill(line)) for line in text.splitlines()]
    found = []
    # BaseLoader: every scalar a string, so odd defaults in CRD schemas never stop the parse
    # (libyaml's when PyYAML has it: the same documents, several times faster on big CRDs).
    for doc in yaml.load_all("\n".join(lines), Loader=getattr(yaml, "CBaseLoader", yaml.BaseLoader)):
        if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
            spec = doc["spec"]
            found.append({"group": spec["group"], "kind": spec["names"]["kind"], "plural": spec["names"]["plural"],
                          "scope": spec.get("scope", "Namespaced"),
                          "versions": [v["name"] for v in spec.get("versions", []) if v.get("served", "true") != "false"],
                          **({"shortNames": spec["names"]["shortNames"]} if spec["names"].get("shortNames") else {})})
    return found


# What the catalog covers: (chart, version range, repository, tag, CRD paths, values that
# gate the CRDs (any true installs them; None = always), whether the files sit in the chart's
# ``crds/`` directory (Helm's own CRD install, which HelmRelease ``install.crds: Skip`` turns off)).
CHARTS = (
    ("cert-manager", ">=1.14.0,<1.18.0", "cert-manager/cert-manager", "v1.16.5", ["deploy/crds"],
     {"crds.enabled": False, "installCRDs": False}, False,
     "the chart's templates/crd-*.yaml are built from deploy/crds; same six kinds checked at v1.14.7, v1.15.5, v1.17.4"),
    ("cert-manager", ">=1.18.0,<1.20.0", "cert-manager/cert-manager", "v1.19.6", ["deploy/crds"],
     {"crds.enabled": False, "installCRDs": False}, False,
     "short names iss/ciss added in v1.18; checked at v1.18.2"),
    ("kube-prometheus-stack", ">=65.0.0,<66.0.0", "prometheus-community/helm-charts", "kube-prometheus-stack-65.0.0",
     ["charts/kube-prometheus-stack/charts/crds/crds"], {"crds.enabled": True}, True,
     "sub-chart crds (condition crds.enabled), files in its crds/ directory"),
    ("kube-prometheus-stack", ">=66.0.0,<67.0.0", "prometheus-community/helm-charts", "kube-prometheus-stack-66.3.1",
     ["charts/kube-prometheus-stack/charts/crds/crds"], {"crds.enabled": True}, True,
     "sub-chart crds (condition crds.enabled), files in its crds/ directory"),
    ("prometheus-operator-crds", ">=16.0.0,<17.0.0", "prometheus-community/helm-charts",
     "prometheus-operator-crds-16.0.1", ["charts/prometheus-operator-crds/charts/crds/templates"], None, False,
     "templated CRDs of the crds sub-chart, not gated"),
    ("external-secrets", ">=0.10.0,<0.11.0", "external-secrets/external-secrets", "v0.10.7", ["config/crds/bases"],
     {"installCRDs": True}, False, "chart templates/crds are generated from config/crds/bases (chart helm-chart-0.10.7)"),
    ("sealed-secrets", ">=2.16.0,<2.17.0", "bitnami-labs/sealed-secrets", "v0.27.2", ["helm/sealed-secrets/crds"],
     None, True, "chart version 2.16.1 (helm/sealed-secrets/Chart.yaml at v0.27.2)"),
    ("traefik", ">=27.0.0,<28.0.0", "traefik/traefik-helm-chart", "v27.0.2", ["traefik/crds"], None, True,
     "Traefik v2: traefik.io and the older traefik.containo.us CRDs from crds/"),
    ("traefik", ">=33.0.0,<34.0.0", "traefik/traefik-helm-chart", "v33.0.0", ["traefik/crds"], None, True,
     "every file of crds/, Gateway API and Hub CRDs included, as Helm installs them"),
    ("longhorn", ">=1.7.0,<1.8.0", "longhorn/longhorn", "v1.7.2", ["chart/templates/crds.yaml"], None, False,
     "templates/crds.yaml, not gated"),
    ("cloudnative-pg", ">=0.22.0,<0.23.0", "cloudnative-pg/charts", "cloudnative-pg-v0.22.1",
     ["charts/cloudnative-pg/templates/crds"], {"crds.create": True}, False, "templates/crds/crds.yaml"),
    ("kyverno", ">=3.3.0,<3.4.0", "kyverno/kyverno", "kyverno-chart-3.3.9", ["charts/kyverno/charts/crds"],
     {"crds.install": True}, False, "sub-chart crds (condition crds.install), templated CRDs"),
    ("gateway-helm", ">=1.2.0,<1.3.0", "envoyproxy/gateway", "v1.2.8", ["charts/gateway-helm/crds"], None, True,
     "Envoy Gateway: Gateway API CRDs and gateway.envoyproxy.io CRDs from crds/"),
    ("gateway-helm", ">=1.4.0,<1.5.0", "envoyproxy/gateway", "v1.4.6", ["charts/gateway-helm/crds"], None, True,
     "Envoy Gateway: Gateway API CRDs and gateway.envoyproxy.io CRDs from crds/"),
)


def generate(mirrors: str) -> str:
    """The catalog, reading each repository from ``<mirrors>/<owner>+<name>/repo``."""
    out = ["# What common Helm charts install as CRDs: chart name + version range -> CRDs.",
           "# Generated by scripts/gen_chart_crds.py from the charts' own files (repository, tag and",
           "# path named per entry); extend it per scenario (chart_crds) or per `inv lab.up --chart-crds FILE`.",
           "charts:"]
    for chart, rng, repo, tag, paths, gates, crds_dir, note in CHARTS:
        local = f"{mirrors}/{repo.replace('/', '+')}/repo"
        out.append(f"- chart: {chart}")
        out.append(f"  versions: '{rng}'")
        out.append(f"  source: {repo} {', '.join(paths)} at {tag}")
        out.append(f"  note: {yaml.safe_dump(note, default_style=None, width=1000).strip().removesuffix('...').strip()}")
        if gates:
            out.append("  enabled_by: " + yaml.safe_dump(gates, default_flow_style=True, width=1000).strip())
        out.append(f"  crds_dir: {'true' if crds_dir else 'false'}")
        out.append("  crds:")
        seen = set()
        for p in paths:
            for f in files(local, tag, p):
                text = subprocess.run(["git", "-C", local, "show", f"{tag}:{f}"], check=True,
                                      capture_output=True, text=True).stdout
                for c in crds_in(text):
                    key = (c["group"], c["kind"])
                    if key not in seen:
                        seen.add(key)
                        out.append("  - " + yaml.safe_dump(c, default_flow_style=True, width=1000).strip())
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--generate":
        mirrors, output = argv[1], argv[2] if len(argv) > 2 else "drtool/gitops/chart_crds.yaml"
        text = generate(mirrors)                 # reading the charts takes minutes: write only then
        tmp = output + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, output)
        return 0
    repo, tag, *paths = argv
    seen = set()
    for p in paths:
        for f in files(repo, tag, p):
            text = subprocess.run(["git", "-C", repo, "show", f"{tag}:{f}"], check=True,
                                  capture_output=True, text=True).stdout
            for c in crds_in(text):
                key = (c["group"], c["kind"])
                if key not in seen:
                    seen.add(key)
                    print("- " + yaml.safe_dump(c, default_flow_style=True, width=200).strip() + f"  # {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
