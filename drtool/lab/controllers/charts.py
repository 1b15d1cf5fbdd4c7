"""What a HelmRelease's chart "renders" in the lab: pure functions of the release object.

Kept apart from the reconciler (which needs the scenario and the runtime) so that the
critical-path calculation in ``drtool.lab.scenarios.critical`` can use them without
importing the controllers' runtime, which imports the scenarios.
"""
from __future__ import annotations

from typing import Any

from drtool.lab.api.objects import clone


def chart_of(spec: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(chart name, version, sourceRef) from ``spec.chart.spec`` or ``spec.chartRef``."""
    chart_spec = (spec.get("chart") or {}).get("spec") or {}
    if chart_spec:
        return (str(chart_spec.get("chart") or "chart"), str(chart_spec.get("version") or "1.0.0"),
                chart_spec.get("sourceRef") or {})
    ref = spec.get("chartRef") or {}
    return str(ref.get("name") or "chart"), "1.0.0", ref


def _first(values: dict[str, Any], *paths: str) -> Any:
    for path in paths:
        cur: Any = values
        for part in path.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        if cur is not None:
            return cur
    return None


def workload_for(release: dict[str, Any], kind: str | None = None,
                 chart_images: tuple[str, ...] = ()) -> dict[str, Any]:
    """The Deployment/StatefulSet the chart "renders" for ``release`` (pure).

    Values honoured: ``replicas``/``replicaCount``/``deployment.replicas``/
    ``singleBinary.replicas``, ``nodeSelector``, ``tolerations``, ``image.repository``/
    ``image.tag`` and the lab convention ``workloadKind`` (Deployment or StatefulSet).
    ``chart_images``: the images the chart's default values run (the scenario's cost model);
    unless the values set ``image.repository``, the pod runs one container per image, so it
    pulls what the real chart's pods would.
    """
    meta, spec = release["metadata"], release.get("spec") or {}
    values = spec.get("values") or {}
    chart, version, _ = chart_of(spec)
    kind = kind or str(values.get("workloadKind") or "Deployment")
    namespace = spec.get("targetNamespace") or meta.get("namespace") or "default"
    name = spec.get("releaseName") or (f"{spec['targetNamespace']}-{meta['name']}" if spec.get("targetNamespace")
                                       else meta["name"])
    replicas = _first(values, "replicas", "replicaCount", "deployment.replicas", "singleBinary.replicas")
    image_repo = _first(values, "image.repository") or f"docker.io/lab/{chart}"
    image_tag = _first(values, "image.tag") or version.lstrip("v")
    selector = {"app.kubernetes.io/name": chart, "app.kubernetes.io/instance": name}
    labels = dict(selector, **{
        "app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/version": version.lstrip("v"),
        "helm.sh/chart": f"{chart}-{version.lstrip('v')}",
        "helm.toolkit.fluxcd.io/name": meta["name"],
        "helm.toolkit.fluxcd.io/namespace": meta.get("namespace") or "default",
    })
    pod_spec: dict[str, Any] = {"containers": [{"name": chart, "image": f"{image_repo}:{image_tag}",
                                                "ports": [{"containerPort": 8080, "name": "http"}]}]}
    if chart_images and not _first(values, "image.repository"):
        pod_spec["containers"] = [
            {"name": chart if i == 0 else f"{chart}-{i}", "image": ref,
             **({"ports": [{"containerPort": 8080, "name": "http"}]} if i == 0 else {})}
            for i, ref in enumerate(chart_images)]
    if isinstance(values.get("nodeSelector"), dict):
        pod_spec["nodeSelector"] = {str(k): str(v) for k, v in values["nodeSelector"].items()}
    if isinstance(values.get("tolerations"), list):
        pod_spec["tolerations"] = clone(values["tolerations"])
    body: dict[str, Any] = {
        "apiVersion": "apps/v1", "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": labels,
                     "annotations": {"meta.helm.sh/release-name": name,
                                     "meta.helm.sh/release-namespace": namespace}},
        "spec": {"replicas": int(replicas) if isinstance(replicas, (int, float, str)) and str(replicas).isdigit()
                 else 1,
                 "selector": {"matchLabels": selector},
                 "template": {"metadata": {"labels": dict(selector)}, "spec": pod_spec}},
    }
    if kind == "StatefulSet":
        body["spec"]["serviceName"] = f"{name}-headless"
    return body
