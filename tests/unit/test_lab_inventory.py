"""The inventory `inv lab.up` writes: this lab's nodes and the repository it serves."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drtool.errors import BadInput
from drtool.inventory import load_inventory
from drtool.lab.lab_inventory import build_inventory, nodes_from_inventory, parse_names, write_inventory
from drtool.lab.nodes import LabNodeSpec as NodeSpec
from drtool.lab.setup import describe_gitops

FIXTURE = {"default": "/lab/gitops/homelab-gitops", "path": "clusters/homelab", "branch": "main", "owner": "lab",
           "repository": "homelab-gitops", "source": None}


def _specs(tmp_path, *names):
    return [NodeSpec(n, f"127.0.80.{11 + i}", 2222, tmp_path / n) for i, n in enumerate(names)]


def test_fixture_inventory_is_the_template_with_this_labs_files(tmp_path):
    data = build_inventory(tmp_path, _specs(tmp_path, "node1", "node2"), FIXTURE)
    template = yaml.safe_load((Path(__file__).resolve().parents[2] / "inventory" / "lab.yaml").read_text())
    assert data["expectations"] == template["expectations"] and data["flux"]["path"] == "clusters/homelab"
    assert [(n["name"], n["host"], n["role"]) for n in data["nodes"]] == [
        ("node1", "127.0.80.11", "server"), ("node2", "127.0.80.12", "agent")]
    assert data["nodes"][1]["taints"] == ["heavy=true:NoSchedule"]
    assert data["cluster"]["api_endpoint"] == "https://127.0.80.11:6443"
    assert data["k3s"]["install"]["script"] == str(tmp_path / "artifacts" / "install.sh")


def test_own_repo_gets_its_path_and_kustomizations(tmp_path):
    repo = tmp_path / "repo"
    (repo / "clusters" / "prod" / "apps").mkdir(parents=True)
    (repo / "clusters" / "prod" / "infra.yaml").write_text(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: infra, namespace: flux-system}\n"
        "spec: {path: ./infra}\n---\n"
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\n")
    (repo / "clusters" / "prod" / "apps" / "apps.yaml").write_text(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1beta2\nkind: Kustomization\nmetadata: {name: apps, namespace: team}\n")
    gitops = dict(FIXTURE, default=str(repo), path="clusters/prod", source="/home/op/repo")
    data = build_inventory(tmp_path, _specs(tmp_path, "cp-1", "worker-1"), gitops)
    assert data["flux"]["path"] == "clusters/prod"
    assert data["expectations"] == {"kustomizations": ["flux-system", "team/apps", "infra"]}
    assert "taints" not in data["nodes"][1] and data["nodes"][1]["protected_paths"] == ["/mnt/k8s-storage"]


def test_written_inventory_loads(tmp_path):
    for d in ("keys", "secrets", "artifacts", "bin"):
        (tmp_path / d).mkdir()
    dest = write_inventory(tmp_path, _specs(tmp_path, "node-1", "node-2"), FIXTURE,
                           nodes_from_inventory_plans(tmp_path))
    inv = load_inventory(dest)
    assert [n.name for n in inv.nodes] == ["node-1", "node-2"]
    assert inv.nodes[1].labels == {"zone": "b"}


def nodes_from_inventory_plans(tmp_path):
    f = tmp_path / "operator.yaml"
    f.write_text("nodes:\n- {name: node-1, role: server, host: 10.0.0.1}\n"
                 "- {name: node-2, role: agent, host: 10.0.0.2, labels: {zone: b}, taints: ['gpu=true:NoSchedule']}\n")
    plans = nodes_from_inventory(f)
    assert [(p.name, p.role, p.taints) for p in plans] == [("node-1", "server", ()),
                                                           ("node-2", "agent", ("gpu=true:NoSchedule",))]
    return plans


@pytest.mark.parametrize("text,field", [
    ("nodes: []\n", "nodes: expected a non-empty list"),
    ("nodes:\n- {name: Node_1, role: server}\n", "nodes[0].name"),
    ("nodes:\n- {name: a, role: master}\n", "nodes[0].role: expected server or agent"),
    ("nodes:\n- {name: a, role: agent}\n- {name: b, role: server}\n", "nodes[0].role"),
])
def test_bad_operator_inventory(tmp_path, text, field):
    f = tmp_path / "inv.yaml"
    f.write_text(text)
    with pytest.raises(BadInput) as e:
        nodes_from_inventory(f)
    assert str(e.value).startswith(str(f)) and field in str(e.value)


def test_names():
    assert [(p.name, p.role) for p in parse_names("cp-1, worker-1")] == [("cp-1", "server"), ("worker-1", "agent")]
    with pytest.raises(BadInput, match="--names: 'Bad': a node name"):
        parse_names("Bad")


def test_describe_gitops():
    assert describe_gitops(FIXTURE) == ("gitops: the lab fixture (path clusters/homelab) served as "
                                        "https://github.com/lab/homelab-gitops")
    own = describe_gitops(dict(FIXTURE, source="/home/op/repo", path="clusters/prod"))
    assert own.startswith("gitops: /home/op/repo (path clusters/prod") and "back to the fixture" in own


def test_k3s_listens_on_its_lab_nodes_address_whatever_the_node_name(monkeypatch):
    from drtool.lab.k3s.labconfig import LabConfig, LabNode
    lab = LabConfig(nodes=(LabNode("node1", "127.0.80.11"), LabNode("node2", "127.0.80.12")))
    monkeypatch.setenv("DRTOOL_LAB_HOSTNAME", "node2")          # what node-init sets on the lab node
    assert lab.own_address("node-2") == "127.0.80.12"            # an operator's own --node-name
    monkeypatch.setenv("DRTOOL_LAB_HOSTNAME", "build-host")      # outside a lab node
    assert lab.own_address("node1") == "127.0.80.11" and lab.own_address("node-1") == ""


def test_lab_status_says_which_repository_the_lab_serves(tmp_path, monkeypatch, capsys):
    import json

    from invoke import Context

    from drtool.lab.nodes import Lab
    from drtool.tasks import lab as lab_tasks

    root = tmp_path / "lab"
    root.mkdir()
    node = {"name": "cp-1", "address": "127.0.80.11", "ssh_port": 2222, "dir": str(root / "nodes" / "cp-1")}
    (root / "lab.json").write_text(json.dumps({"nodes": [node], "gitops": dict(
        FIXTURE, source="/home/op/repo", path="clusters/prod")}))
    (root / "inventory.yaml").write_text("{}\n")
    monkeypatch.setattr(lab_tasks, "_lab", lambda: Lab(root, subnet="127.0.80"))
    lab_tasks.status.body(Context())
    out = capsys.readouterr().out
    assert "cp-1" in out and "stopped" in out
    assert "gitops: /home/op/repo (path clusters/prod" in out and "back to the fixture" in out
    assert f"inventory: {root / 'inventory.yaml'}" in out


@pytest.mark.parametrize("kwargs,message", [
    ({"chart_crds": "BAD"}, "charts: expected a list of charts"),
    ({"path": "clusters/x"}, "--path: --path needs --gitops"),
    ({"names": "a,b", "inventory": "x.yaml"}, "--names: give --names or --inventory, not both"),
    ({"names": "Upper"}, "--names: 'Upper': a node name"),
])
def test_lab_up_refuses_bad_input_before_touching_anything(tmp_path, kwargs, message):
    from drtool.lab.nodes import Lab
    from drtool.lab.setup import lab_up

    if kwargs.get("chart_crds") == "BAD":
        bad = tmp_path / "charts.yaml"
        bad.write_text("charts: 3\n")
        kwargs = {"chart_crds": str(bad)}
    root = tmp_path / "lab"
    with pytest.raises(BadInput, match=message.replace("(", r"\(")):
        lab_up(Lab(root, subnet="127.0.80"), **kwargs)
    assert not root.exists()
