"""Scenario files: validation errors name file and field; critical paths are exact."""
from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest

from drtool.errors import BadInput, ExitCode
from drtool.lab.gitops_repo import fixture_dir
from drtool.lab.scenarios import (builtin_scenario_path, builtin_scenarios, critical_path, load_scenario,
                                  parse_scenario)
from drtool.lab.scenarios.__main__ import main as scenarios_cli


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_every_shipped_scenario_loads() -> None:
    names = builtin_scenarios()
    for expected in ("homelab", "stalled-helmrelease", "crashloop", "unschedulable", "imagepull", "api-outage",
                     "watch-expiry", "helm-flaky", "bootstrap-flaky", "slow-phase"):
        assert expected in names
    for name in names:
        assert load_scenario(builtin_scenario_path(name)).name == name


def test_scenario_lookups() -> None:
    sc = load_scenario(builtin_scenario_path("stalled-helmrelease"))
    assert sc.faults("HelmRelease", "logging", "loki").retries_exceeded
    assert not sc.faults("HelmRelease", "logging", "grafana").retries_exceeded
    assert sc.delay("HelmRelease", "logging", "loki", 9.0) == 9.0
    assert load_scenario(builtin_scenario_path("unschedulable")).node_ready_delay("node2") is None
    assert load_scenario(builtin_scenario_path("slow-phase")).node_ready_delay("node2") == 3


BAD = [
    ("nmae: x\n", "nmae", "unknown key"),
    ("description: no name\n", "name", "Field required"),
    ("name: x\ndefaults: {pod: -1}\n", "defaults.pod", "greater than or equal to 0"),
    ("name: x\ndefaults: {pods: 1}\n", "defaults.pods", "unknown key"),
    ("name: x\nnodes: {node1: {ready_delay: slow}}\n", "nodes.node1.ready_delay", "valid number"),
    ("name: x\nobjects: {loki: {delay: 1}}\n", "objects", "Kind/namespace/name"),
    ("name: x\nobjects: {HelmRelease/logging/loki: {fail_times: -2}}\n",
     "objects.HelmRelease/logging/loki.fail_times", "greater than or equal to 0"),
    ("name: x\nobjects: {Deployment/llm/llama-cpp: {crashloop: maybe}}\n",
     "objects.Deployment/llm/llama-cpp.crashloop", "boolean"),
    ("name: x\nobjects: {HelmRelease/logging/loki: {workload_kind: DaemonSet}}\n",
     "objects.HelmRelease/logging/loki.workload_kind", "'Deployment' or 'StatefulSet'"),
    ("name: x\nobjects: {Deployment/a/b: {crashloop: true, image_pull_error: true}}\n",
     "objects.Deployment/a/b", "exclude each other"),
    ("name: x\napi: {http_503: {start: 1}}\n", "api.http_503.duration", "Field required"),
    ("name: x\napi: {refuse: 3}\n", "api.refuse", "unknown key"),
    ("name: x\nnodes: {node1: {}}\nssh_drop: {node: node9, during: join}\n", "ssh_drop.node", "not one of nodes"),
    ("name: x\nflux: {bootstrap_fail_times: two}\n", "flux.bootstrap_fail_times", "valid integer"),
    ("- just\n- a list\n", "", "expected a mapping"),
    ("name: [unclosed\n", "line", "invalid YAML"),
]


@pytest.mark.parametrize(("text", "field", "problem"), BAD, ids=[b[1] or b[2] for b in BAD])
def test_bad_scenarios_name_file_and_field(tmp_path: Path, text: str, field: str, problem: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(BadInput) as err:
        load_scenario(path)
    assert err.value.source == str(path)
    assert err.value.field.startswith(field)
    assert problem in err.value.problem
    assert str(err.value).startswith(f"{path}: ")


def test_missing_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="file not found"):
        load_scenario(tmp_path / "nope.yaml")


def test_homelab_critical_path_follows_the_dependency_chain() -> None:
    # node1 Ready 0.3 → Flux controllers 0.5 → GitRepository 0.6 → flux-system applied 0.8
    # → infrastructure applied 1.0 → HelmRepositories 1.1 → loki installed 1.4, pod on node2 1.7
    # → grafana (dependsOn loki) 2.0, pod 2.3 → infrastructure's health poll (every 5 s × time_scale
    # 0.05 = 0.25 s from 1.0) sees it at 2.5 → workloads, first looked at 0.8, re-checks its dependency
    # every 30 s × 0.05 = 1.5 s: at 3.8 → applied 4.0 → pods 4.3 → its health poll sees them at 4.5.
    sc = load_scenario(builtin_scenario_path("homelab"))
    assert critical_path(sc, fixture_dir(), "clusters/homelab") == pytest.approx(4.5)


def test_critical_path_reacts_to_delays_and_unschedulable_nodes() -> None:
    slow = load_scenario(builtin_scenario_path("slow-phase"))
    assert critical_path(slow, fixture_dir()) == pytest.approx(6.0)
    never = load_scenario(builtin_scenario_path("unschedulable"))
    assert math.isinf(critical_path(never, fixture_dir()))


def test_critical_path_of_a_small_repo(tmp_path: Path) -> None:
    (tmp_path / "clusters").mkdir()
    (tmp_path / "apps").mkdir()
    (tmp_path / "clusters" / "ks.yaml").write_text(textwrap.dedent("""\
        apiVersion: kustomize.toolkit.fluxcd.io/v1
        kind: Kustomization
        metadata: {name: base, namespace: flux-system}
        spec: {path: ./apps, sourceRef: {kind: GitRepository, name: flux-system}}
        ---
        apiVersion: kustomize.toolkit.fluxcd.io/v1
        kind: Kustomization
        metadata: {name: after, namespace: flux-system}
        spec: {path: ./apps, dependsOn: [{name: base}], sourceRef: {kind: GitRepository, name: flux-system}}
        """))
    (tmp_path / "apps" / "web.yaml").write_text(textwrap.dedent("""\
        apiVersion: apps/v1
        kind: StatefulSet
        metadata: {name: web, namespace: default}
        spec: {replicas: 2, template: {spec: {containers: [{name: web, image: web}]}}}
        """))
    sc = parse_scenario({"name": "t", "defaults": {"git_repository": 1, "kustomization": 1, "pod": 1,
                                                  "flux_controllers": 1, "node_ready": 0}})
    # controllers 1, git 2, flux-system 3, base applied (Ready) 4 → web (2 ordered pods) 6; after, first
    # looked at 3, sees base Ready at its next dependency requeue 3 + 1.5 → applied 5.5.
    assert critical_path(sc, tmp_path, "clusters") == pytest.approx(6.0)


def test_cli_prints_critical_path_and_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert scenarios_cli(["critical-path", str(builtin_scenario_path("homelab"))]) == ExitCode.OK
    assert capsys.readouterr().out.strip() == "4.500"
    bad = _write(tmp_path, "name: x\nbogus: 1\n")
    assert scenarios_cli(["validate", str(bad)]) == ExitCode.BAD_INPUT
    assert f"{bad}: bogus: unknown key" in capsys.readouterr().err
