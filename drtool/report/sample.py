"""Example run records, shaped like the homelab's real rebuilds.

They document the record format by example (docs/report-schema.md points here), let
``inv report --sample`` preview the output, and are the fixtures of the report tests.
Each call returns a fresh dict, so callers may change it.
"""
from __future__ import annotations

import copy
from typing import Any

T0 = 1764200701.0  # 2025-11-26 23:45:01 UTC

_PHASES = [  # name, offset, duration
    ("preflight", 0.0, 3.2), ("backup", 3.2, 24.8), ("teardown", 28.0, 19.5),
    ("install_servers", 47.5, 34.1), ("join_agents", 81.6, 21.7), ("kubeconfig", 103.3, 0.9),
    ("nodes_ready", 104.2, 9.6), ("restore_secrets", 113.8, 1.1), ("bootstrap", 114.9, 41.3),
    ("converge", 156.2, 187.4), ("post_checks", 343.6, 4.9),
]
_STEPS = {
    "backup": {"node1": [("etcd-snapshot", 0.5, 8.1), ("copy-token", 8.7, 0.4), ("copy-local-path", 9.2, 14.9)]},
    "teardown": {"node2": [("uninstall", 0.2, 8.8)], "node1": [("uninstall", 9.1, 10.2)]},
    "install_servers": {"node1": [("upload", 0.1, 6.2), ("install", 6.4, 27.5)]},
    "join_agents": {"node2": [("upload", 0.1, 5.9), ("install", 6.1, 15.4)]},
}
# id, first seen (since converge start), ready (since converge start) or None
_OBJECTS = [
    ("Kustomization/flux-system/flux-system", 0.4, 6.1),
    ("HelmRepository/flux-system/grafana", 6.3, 9.0),
    ("HelmRepository/flux-system/envoy-gateway", 6.3, 8.2),
    ("Kustomization/flux-system/infrastructure", 6.4, 121.7),
    ("HelmRelease/envoy-gateway-system/eg", 9.8, 74.3),
    ("HelmRelease/logging/loki", 9.9, 118.9),
    ("HelmRelease/logging/grafana", 10.0, 61.2),
    ("HelmRelease/logging/tempo", 10.0, 58.4),
    ("HelmRelease/logging/alloy", 10.1, 44.9),
    ("StatefulSet/logging/loki", 31.0, 117.2),
    ("Deployment/envoy-gateway-system/envoy-gateway", 20.4, 73.0),
    ("Kustomization/flux-system/workloads", 6.5, 186.9),
    ("Deployment/llm/llama-cpp", 124.3, 183.0),
    ("Deployment/logging/log-analyzer", 124.5, 151.8),
    ("Node/node1", 0.0, 0.0),
    ("Node/node2", 0.0, 0.0),
]
_PATH = [("Kustomization/flux-system/flux-system", None),
         ("HelmRelease/logging/loki", "Kustomization/flux-system/flux-system"),
         ("Kustomization/flux-system/infrastructure", "HelmRelease/logging/loki"),
         ("Deployment/llm/llama-cpp", "Kustomization/flux-system/infrastructure"),
         ("Kustomization/flux-system/workloads", "Deployment/llm/llama-cpp")]


def _object(oid: str, seen: float, ready: float | None, c0: float) -> dict[str, Any]:
    kind, _, rest = oid.partition("/")
    ns, _, name = rest.rpartition("/")
    history = [{"at": c0 + seen, "state": "InProgress", "reason": "Progressing", "message": "reconciliation in progress"}]
    if kind == "Kustomization" and oid.endswith("/workloads"):
        history.append({"at": c0 + seen + 1, "state": "InProgress", "reason": "DependencyNotReady",
                        "message": "dependency 'flux-system/infrastructure' is not ready"})
    if ready is not None:
        history.append({"at": c0 + ready, "state": "Current", "reason": "ReconciliationSucceeded",
                        "message": "Applied revision: main@sha1:5f3c2e1"})
    last = history[-1]
    return {"id": oid, "kind": kind, "namespace": ns, "name": name, "first_seen": c0 + seen,
            "ready_at": None if ready is None else c0 + ready, "state": last["state"],
            "reason": last["reason"], "message": last["message"], "history": history}


def _complete(t0: float) -> dict[str, Any]:
    phases = []
    for name, off, dur in _PHASES:
        start = t0 + off
        nodes = {node: [{"step": s, "started_at": start + so, "ended_at": start + so + sd, "exit_code": 0}
                        for s, so, sd in steps] for node, steps in _STEPS.get(name, {}).items()}
        phases.append({"name": name, "started_at": start, "ended_at": start + dur, "outcome": "ok",
                       "message": "", "nodes": nodes})
    phases[0]["message"] = "2 nodes reachable, sudo ok, 41 GiB free"
    phases[1]["message"] = "snapshot, token and 3 local-path volumes saved"
    c0 = t0 + 156.2
    objects = [_object(oid, s, r, c0) for oid, s, r in _OBJECTS]
    ready = {o["id"]: o["ready_at"] for o in objects}
    return {
        "schema": "drtool.run/v1", "run_id": "20251126-234501-homelab", "kind": "rebuild",
        "inventory": "inventory/homelab.yaml", "cluster": "homelab", "host": "ops-laptop", "trigger": "manual",
        "versions": {"drtool": "0.1.0", "k3s": "v1.31.4+k3s1", "flux": "v2.4.0"},
        "git_revision": "main@sha1:5f3c2e1",
        "flags": {"skip_backup": False, "dry_run": False, "from": None, "to": None, "resumed_from": None},
        "started_at": t0, "ended_at": t0 + 348.5, "status": "succeeded", "stopped_at": None, "error": None,
        "objective_s": 1200, "phases": phases,
        "converge": {"converged": True, "outcome": "converged", "started": c0, "ended": c0 + 187.4,
                     "objects": objects,
                     "critical_path": [{"id": i, "ready_at": ready[i], "waits_on": w} for i, w in _PATH],
                     "failures": [], "pending": [], "api_requests": {"list": 9, "watch": 11}},
        "post_checks": [{"name": "grafana-http", "ok": True, "message": "200 OK", "duration_s": 0.4},
                        {"name": "pvc-data-present", "ok": True, "message": "3 volumes with data", "duration_s": 4.1}],
        "state": {"token_file": "runs/20251126-234501-homelab/backup/token"},
    }


def _truncate_at(record: dict[str, Any], phase: str) -> dict[str, Any]:
    names = [p["name"] for p in record["phases"]]
    record["phases"] = record["phases"][: names.index(phase) + 1]
    return record


def sample_record(variant: str = "complete", t0: float = T0) -> dict[str, Any]:
    """A run record. Variants: ``complete`` (pass), ``over-objective``, ``preflight-failed``,
    ``interrupted`` (SIGINT during install_servers), ``not-converged`` (loki RetriesExceeded)."""
    rec = _complete(t0)
    if variant == "complete":
        return rec
    if variant == "over-objective":
        rec["objective_s"] = 240
        return rec
    if variant == "preflight-failed":
        rec = _truncate_at(rec, "preflight")
        p = rec["phases"][0]
        p.update(outcome="failed", message="node2: sudo requires a password")
        rec.update(status="failed", stopped_at="preflight", ended_at=p["ended_at"], converge=None,
                   error={"phase": "preflight", "type": "PreflightFailed",
                          "message": "node2: sudo requires a password", "exit_code": 3})
        del rec["post_checks"]
        return rec
    if variant == "interrupted":
        rec = _truncate_at(rec, "install_servers")
        p = rec["phases"][-1]
        p.update(outcome="interrupted", ended_at=None, message="interrupted by SIGINT")
        p["nodes"]["node1"] = p["nodes"]["node1"][:1]
        rec.update(status="interrupted", stopped_at="install_servers", ended_at=p["started_at"] + 12.0,
                   converge=None,
                   error={"phase": "install_servers", "type": "Interrupted", "message": "interrupted by SIGINT",
                          "exit_code": 130})
        del rec["post_checks"]
        return rec
    if variant == "not-converged":
        rec = _truncate_at(rec, "converge")
        conv = rec["converge"]
        c0 = conv["started"]
        stuck = {"HelmRelease/logging/loki", "StatefulSet/logging/loki", "Kustomization/flux-system/infrastructure",
                 "Kustomization/flux-system/workloads", "Deployment/llm/llama-cpp", "Deployment/logging/log-analyzer"}
        for o in conv["objects"]:
            if o["id"] in stuck:
                o["ready_at"] = None
                o["history"] = o["history"][:-1] if o["history"][-1]["state"] == "Current" else o["history"]
                last = o["history"][-1]
                o.update(state=last["state"], reason=last["reason"], message=last["message"])
        # Objects that would only have appeared after the wait gave up were never seen.
        conv["objects"] = [o for o in conv["objects"] if o["first_seen"] <= c0 + 96.0]
        stuck &= {o["id"] for o in conv["objects"]}
        loki = next(o for o in conv["objects"] if o["id"] == "HelmRelease/logging/loki")
        msg = "install retries exhausted: context deadline exceeded"
        loki["history"].append({"at": c0 + 95.0, "state": "Failed", "reason": "RetriesExceeded", "message": msg})
        loki.update(state="Failed", reason="RetriesExceeded", message=msg)
        conv.update(converged=False, outcome="failed", ended=c0 + 96.0, critical_path=[],
                    pending=sorted(stuck - {"HelmRelease/logging/loki"}),
                    failures=[{"object": "HelmRelease/logging/loki", "reason": "RetriesExceeded", "message": msg,
                               "events": ["InstallFailed: Helm install failed for release logging/loki (x3)",
                                          "BackOff: Back-off restarting failed container loki"],
                               "blocks": ["Kustomization/flux-system/infrastructure",
                                          "Kustomization/flux-system/workloads"],
                               "chain": "workloads waits on infrastructure which waits on HelmRelease logging/loki"}])
        p = rec["phases"][-1]
        p.update(outcome="failed", ended_at=c0 + 96.0, message="not converged: HelmRelease/logging/loki: RetriesExceeded")
        rec.update(status="failed", stopped_at="converge", ended_at=c0 + 96.5,
                   error={"phase": "converge", "type": "NotConverged",
                          "message": "HelmRelease/logging/loki: RetriesExceeded: " + msg, "exit_code": 4})
        del rec["post_checks"]
        return copy.deepcopy(rec)
    raise ValueError(f"unknown sample variant {variant!r}")
