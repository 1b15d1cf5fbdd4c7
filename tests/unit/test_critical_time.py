"""The critical path that explains the recovery time, on a hand-made timeline (pure logic)."""
from __future__ import annotations

from drtool.kube import graph
from drtool.report.compare import compare, render_compare_md
from drtool.report.html import render_html
from drtool.report.markdown import render_markdown
from drtool.report.model import build_report, load_report

FS = "flux-system"


def _obj(kind, ns, name, spec=None, labels=None, owner=None):
    meta = {"name": name, "namespace": ns, "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1]}]
    return {"kind": kind, "metadata": meta, "spec": spec or {}}


SRC = {"kind": "GitRepository", "name": FS}
OBJECTS = [
    _obj("GitRepository", FS, FS),
    _obj("Kustomization", FS, FS, {"sourceRef": SRC}),
    _obj("Kustomization", FS, "infrastructure", {"sourceRef": SRC, "wait": True},
         {"kustomize.toolkit.fluxcd.io/name": FS, "kustomize.toolkit.fluxcd.io/namespace": FS}),
    _obj("Kustomization", FS, "apps", {"sourceRef": SRC, "dependsOn": [{"name": "infrastructure"}]},
         {"kustomize.toolkit.fluxcd.io/name": FS, "kustomize.toolkit.fluxcd.io/namespace": FS}),
    _obj("HelmRelease", "logging", "loki", {},
         {"kustomize.toolkit.fluxcd.io/name": "infrastructure", "kustomize.toolkit.fluxcd.io/namespace": FS}),
    _obj("Deployment", "logging", "loki", {},
         {"helm.toolkit.fluxcd.io/name": "loki", "helm.toolkit.fluxcd.io/namespace": "logging"}),
    _obj("Pod", "logging", "loki-5d8f-abcde", owner=("ReplicaSet", "loki-5d8f")),
]
# (first seen, ready, [(at, reason)]) in seconds; recovery starts at 1000 (teardown).
TIMELINE = {
    "GitRepository/flux-system/flux-system": (1080, 1082, []),
    "Kustomization/flux-system/flux-system": (1080, 1085, []),
    "Kustomization/flux-system/infrastructure": (1084, 1120, [(1084, "Progressing")]),
    "Kustomization/flux-system/apps": (1084, 1160, [(1084, "DependencyNotReady"), (1150, "Progressing"),
                                                     (1160, "ReconciliationSucceeded")]),
    "HelmRelease/logging/loki": (1086, 1118, [(1086, "Progressing")]),
    "Deployment/logging/loki": (1100, 1117, []),
    "Pod/logging/loki-5d8f-abcde": (1101, 1117, [(1101, "Pulling"), (1115, "ContainerCreating")]),
}
PHASES = [("teardown", 1000, 1010), ("install", 1010, 1050), ("join", 1050, 1060), ("bootstrap", 1060, 1080),
          ("converge", 1080, 1161)]


def _explain() -> list[dict]:
    first = {k: float(v[0]) for k, v in TIMELINE.items()}
    ready = {k: float(v[1]) for k, v in TIMELINE.items()}
    history = {k: [(float(t), r, "") for t, r in v[2]] for k, v in TIMELINE.items()}
    return graph.explain_path(graph.build_edges(OBJECTS), graph.creators(OBJECTS), first, ready, history)


def test_creators_follow_labels_and_owners():
    made_by = graph.creators(OBJECTS)
    assert made_by["Pod/logging/loki-5d8f-abcde"] == "Deployment/logging/loki"
    assert made_by["Deployment/logging/loki"] == "HelmRelease/logging/loki"
    assert made_by["HelmRelease/logging/loki"] == "Kustomization/flux-system/infrastructure"
    assert made_by["Kustomization/flux-system/infrastructure"] == "Kustomization/flux-system/flux-system"
    assert "Kustomization/flux-system/flux-system" not in made_by


def test_path_goes_back_through_creation_and_attributes_each_segment():
    segs = [(s["id"].split("/", 1)[1], s["start"], s["end"], s["cause"], s["via"]) for s in _explain()]
    assert segs == [
        ("flux-system/flux-system", 1080, 1082, "work", "ready"),        # GitRepository fetched
        ("flux-system/flux-system", 1082, 1084, "work", "created"),      # flux-system applied infrastructure
        ("flux-system/infrastructure", 1084, 1086, "work", "created"),   # ... which applied loki
        ("logging/loki", 1086, 1100, "work", "created"),                 # Helm install created the Deployment
        ("logging/loki", 1100, 1101, "work", "created"),                 # Deployment created the pod
        ("logging/loki-5d8f-abcde", 1101, 1115, "image_pull", "ready"),
        ("logging/loki-5d8f-abcde", 1115, 1117, "work", "ready"),
        ("logging/loki", 1117, 1118, "work", "ready"),                   # HelmRelease saw the release Ready
        ("flux-system/infrastructure", 1118, 1120, "work", "ready"),
        ("flux-system/apps", 1120, 1150, "flux_timer", ""),              # the 30 s dependency requeue
        ("flux-system/apps", 1150, 1160, "work", ""),
    ]
    kinds = [s["id"].split("/", 1)[0] for s in _explain()]
    assert kinds[:2] == ["GitRepository", "Kustomization"] and kinds[5] == "Pod"


def test_a_dependency_seen_ready_a_moment_after_still_gates_and_its_pull_is_charged():
    # Separate watches per kind: the HelmRelease's Ready arrives 0.2 s before its Deployment's and
    # 0.3 s before its pod's. The path still goes through the pod, and its pull is a pull.
    timeline = dict(TIMELINE)
    timeline["Deployment/logging/loki"] = (1100, 1118.2, [])
    timeline["Pod/logging/loki-5d8f-abcde"] = (1101, 1118.3, [(1101, "Pulling"), (1115, "ContainerCreating")])
    first = {k: float(v[0]) for k, v in timeline.items()}
    ready = {k: float(v[1]) for k, v in timeline.items()}
    history = {k: [(float(t), r, "") for t, r in v[2]] for k, v in timeline.items()}
    segs = graph.explain_path(graph.build_edges(OBJECTS), graph.creators(OBJECTS), first, ready, history)
    ids = [s["id"] for s in segs]
    assert "Pod/logging/loki-5d8f-abcde" in ids
    pull = next(s for s in segs if s["cause"] == "image_pull")
    assert (pull["start"], pull["end"]) == (1101, 1115)
    assert all(s["end"] <= 1160 and s["start"] <= s["end"] for s in segs)
    assert [s["start"] for s in segs] == sorted(s["start"] for s in segs)


def _record(explained: list[dict], suffix: str = "") -> dict:
    return {"schema": "drtool.run/v1", "run_id": "r" + suffix, "kind": "rebuild", "started_at": 995.0,
            "ended_at": 1170.0, "status": "succeeded",
            "phases": [{"name": n, "started_at": float(a), "ended_at": float(b), "outcome": "ok"} for n, a, b in PHASES],
            "converge": {"converged": True, "outcome": "converged", "started": 1080.0, "ended": 1161.0,
                         "objects": [], "explained_path": explained}}


def test_report_covers_the_whole_recovery_time_across_phases():
    report = build_report(_record(_explain()), now=2000)
    segments = report["critical_time"]
    assert [s["what"] for s in segments[:4]] == ["phase teardown", "phase install", "phase join", "phase bootstrap"]
    assert segments[0]["start_s"] == 0
    total = sum(s["duration_s"] for s in segments)
    assert abs(total - report["recovery_s"]) < 0.01 and report["recovery_s"] == 161
    assert report["critical_time_by_cause"] == {"work": 117.0, "image_pull": 14.0, "flux_timer": 30.0}
    assert segments[-1]["what"].startswith("after the last object") and segments[-1]["duration_s"] == 1

    md = render_markdown(load_report(report))
    assert "## Where the time went" in md and "flux_timer" not in md
    assert "Flux timers 30.0s" in md and "image pulls 14.0s" in md
    assert "`Kustomization/flux-system/apps`" in md and "waiting for a Flux timer" in md
    html = render_html(load_report(report))
    assert "Where the time went" in html and "waiting for a Flux timer" in html


def test_overlapped_phases_are_charged_once_along_the_phases_that_held_up_the_chain():
    # The agents join from the install on and finish during the bootstrap: the chain goes
    # teardown → install → kubeconfig → bootstrap, and the join is not charged at all.
    record = _record(_explain())
    record["phases"] = [{"name": n, "started_at": float(a), "ended_at": float(b), "outcome": "ok"} for n, a, b in (
        ("teardown", 1000, 1010), ("install_servers", 1010, 1040), ("join_agents", 1010.01, 1070),
        ("kubeconfig", 1040.01, 1041), ("bootstrap", 1041.01, 1080), ("nodes_ready", 1070.01, 1071),
        ("converge", 1080.01, 1161))]
    report = build_report(record, now=2000)
    phases = [s["what"] for s in report["critical_time"] if s["what"].startswith("phase ")]
    assert phases == ["phase teardown", "phase install_servers", "phase kubeconfig", "phase bootstrap"]
    assert abs(sum(s["duration_s"] for s in report["critical_time"]) - report["recovery_s"]) < 0.01
    assert {"phase": "bootstrap", "alongside": "join_agents", "seconds": 28.99} in report["overlaps"]
    assert "Overlapped phases: `join_agents` alongside `install_servers` 30.0s" in render_markdown(load_report(report))


def test_compare_shows_the_time_by_cause():
    base = build_report(_record(_explain(), "1"), now=2000)
    faster = [dict(s) for s in _explain() if s["cause"] != "flux_timer"]
    cur = build_report(_record(faster, "2"), now=2000)
    result = compare(base, cur)
    timers = next(c for c in result["critical_time"] if c["cause"] == "flux_timer")
    assert (timers["a_s"], timers["b_s"], timers["delta_s"]) == (30.0, 0.0, -30.0)
    assert "| Flux timers | 30.0s | 0.0s | -30.0s | -100% |" in render_compare_md(result)


def test_a_pull_stamped_in_the_second_before_the_pod_showed_up_is_still_a_pull():
    # Events carry whole seconds: the kubelet's Pulling (13.9 after truncation) precedes the pod's
    # first sighting (14.4, PodPending) on paper only. The pull runs until Successfully pulled.
    pulled = 'Successfully pulled image "x" in 12s (12s including waiting). Image size: 1 bytes.'
    history = {"Pod/logging/grafana-1": [(13.9, "Pulling", 'Pulling image "x"'), (14.4, "PodPending", ""),
                                         (25.9, "Pulled", pulled), (27.0, "PodRunning", "")]}
    segs = graph.explain_path({}, {}, {"Pod/logging/grafana-1": 14.4}, {"Pod/logging/grafana-1": 27.0}, history)
    assert [(s["start"], s["end"], s["cause"]) for s in segs] == [(14.4, 25.9, "image_pull"), (25.9, 27.0, "work")]
    # Several pulls one after another, their Events sharing seconds: one pull until the last ends.
    marks = [(9.9, "Pulling", "a"), (10.8, "PodPending", ""), (10.9, "Pulling", "b"), (10.901, "Pulled", pulled),
             (11.9, "Pulled", pulled), (12.5, "ContainerCreating", "")]
    segs = graph.explain_path({}, {}, {"Pod/l/loki-0": 10.8}, {"Pod/l/loki-0": 13.0}, {"Pod/l/loki-0": marks})
    assert [(s["start"], s["end"], s["cause"]) for s in segs] == [(10.8, 11.9, "image_pull"), (11.9, 13.0, "work")]
