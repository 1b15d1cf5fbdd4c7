"""Inventory validation: the shipped inventories load, and every bad one gives one line naming file and field."""
from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from drtool.errors import BadInput
from drtool.inventory import load_inventory, parse_inventory

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "inventory" / "lab.yaml"
BASE = yaml.safe_load(LAB.read_text())


def test_shipped_inventories_load():
    lab = load_inventory(LAB)
    assert [n.name for n in lab.servers] == ["node1"]
    node2 = lab.node("node2")
    assert node2.labels == {"hardware": "heavy"} and node2.taints == ("heavy=true:NoSchedule",)
    assert node2.protected_paths == ("/mnt/k8s-storage",)
    assert lab.resolve(node2.ssh_key) == (REPO / ".lab" / "keys" / "id_ed25519").resolve()
    home = load_inventory(REPO / "inventory" / "homelab.yaml")
    assert home.k3s.server_args == ("--disable", "traefik")
    assert home.flux.token_variable == "GITHUB_TOKEN"
    assert home.drill.enabled is False
    assert {(h.namespace, h.name, h.version) for h in home.expectations.helmreleases} >= {("logging", "loki", "6.21.0"), ("envoy-gateway-system", "eg", "v1.4.6")}


def test_inventory_is_frozen():
    inv = load_inventory(LAB)
    with pytest.raises(Exception):
        inv.cluster.name = "other"  # type: ignore[misc]


def _set(path, value):
    def mut(d):
        cur = d
        for key in path[:-1]:
            cur = cur[key]
        cur[path[-1]] = value
    return mut


def _del(path):
    def mut(d):
        cur = d
        for key in path[:-1]:
            cur = cur[key]
        del cur[path[-1]]
    return mut


# (case id, mutation, expected field path, expected words in the message)
BAD = [
    ("missing k3s version", _del(["k3s", "version"]), "k3s.version", "required"),
    ("unpinned k3s version", _set(["k3s", "version"], "latest"), "k3s.version", "pinned"),
    ("bad role", _set(["nodes", 1, "role"], "worker"), "nodes[1].role", "server or agent"),
    ("unknown node key", _set(["nodes", 1, "rol"], "agent"), "nodes[1].rol", "unknown key"),
    ("unknown top-level key", _set(["clsuter"], {}), "clsuter", "unknown key"),
    ("token as literal", _set(["k3s", "token"], "K10abcdef::server:secret"), "k3s.token", "literal"),
    ("token both sources", _set(["k3s", "token"], {"token_env": "A", "token_file": "x"}), "k3s.token", "exactly one"),
    ("token env bad name", _set(["k3s", "token"], {"token_env": "1BAD"}), "k3s.token", "environment variable"),
    ("token in server args", _set(["k3s", "server_args"], ["--token=abc"]), "k3s.server_args", "token"),
    ("taint without effect", _set(["nodes", 1, "taints"], ["heavy=true"]), "nodes[1].taints", "key=value:Effect"),
    ("taint bad effect", _set(["nodes", 1, "taints"], ["heavy=true:Sometimes"]), "nodes[1].taints", "Effect"),
    ("duplicate node names", _set(["nodes", 1, "name"], "node1"), "nodes[1].name", "duplicate"),
    ("no server", _set(["nodes", 0, "role"], "agent"), "nodes", "server"),
    ("empty nodes", _set(["nodes"], []), "nodes", "server"),
    ("bad label key", _set(["nodes", 1, "labels"], {"hard ware": "x"}), "nodes[1].labels", "label key"),
    ("bad label value", _set(["nodes", 1, "labels"], {"hardware": "x y"}), "nodes[1].labels", "invalid value"),
    ("bad port", _set(["nodes", 0, "port"], 70000), "nodes[0].port", "65535"),
    ("host with shell", _set(["nodes", 0, "host"], "node1; touch /tmp/pwned"), "nodes[0].host", "address"),
    ("bad node name", _set(["nodes", 0, "name"], "Node_1"), "nodes[0].name", "DNS"),
    ("airgap without binary", _del(["k3s", "install", "binary"]), "k3s.install", "airgap"),
    ("online with http url", _set(["k3s", "install"], {"method": "online", "script_url": "http://get.k3s.io"}), "k3s.install", "https"),
    ("github without owner", _del(["flux", "owner"]), "flux", "owner"),
    ("git without url", _set(["flux", "provider"], "git"), "flux", "url"),
    ("bad provider", _set(["flux", "provider"], "bitbucket"), "flux.provider", "github"),
    ("absolute flux path", _set(["flux", "path"], "/clusters/homelab"), "flux.path", "relative"),
    ("flux path escapes", _set(["flux", "path"], "../x"), "flux.path", "relative"),
    ("unpinned flux", _set(["flux", "version"], "latest"), "flux.version", "pinned"),
    ("bad duration", _set(["timeouts", "converge"], "soon"), "timeouts.converge", "duration"),
    ("negative duration", _set(["timeouts", "converge"], -5), "timeouts.converge", "positive"),
    ("bool duration", _set(["objective"], True), "objective", "duration"),
    ("unknown timeout", _set(["timeouts", "convergence"], 5), "timeouts.convergence", "unknown key"),
    ("bad endpoint", _set(["cluster", "api_endpoint"], "http://x:6443"), "cluster.api_endpoint", "https"),
    ("protected root", _set(["nodes", 1, "protected_paths"], ["/"]), "nodes[1].protected_paths", "specific"),
    ("protected relative", _set(["nodes", 1, "protected_paths"], ["mnt/data"]), "nodes[1].protected_paths", "absolute"),
    ("bad drill window", _set(["drill", "window"], "3am"), "drill.window", "HH:MM"),
    ("bad webhook type", _set(["drill", "notify"], [{"name": "x", "type": "email", "url": "http://127.0.0.1/"}]), "drill.notify[0].type", "json"),
    ("nodes not a list", _set(["nodes"], "node1"), "nodes", ""),
    ("missing cluster", _del(["cluster"]), "cluster", "required"),
]


@pytest.mark.parametrize("case,mutate,field,words", BAD, ids=[b[0] for b in BAD])
def test_bad_inventory_names_file_and_field(case, mutate, field, words):
    data = copy.deepcopy(BASE)
    mutate(data)
    with pytest.raises(BadInput) as err:
        parse_inventory(data, "inventory/bad.yaml")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"inventory/bad.yaml: {field}:"), msg
    assert words.lower() in msg.lower(), msg


def test_not_a_mapping_and_bad_yaml(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text("- a\n- b\n")
    with pytest.raises(BadInput, match="x.yaml: expected a mapping"):
        load_inventory(f)
    f.write_text("cluster: [unclosed\n")
    with pytest.raises(BadInput, match="invalid YAML"):
        load_inventory(f)
    with pytest.raises(BadInput, match="file not found"):
        load_inventory(tmp_path / "missing.yaml")


def _inv(*args, cwd=REPO):
    env = dict(os.environ)
    env.pop("GITHUB_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=60, stdin=subprocess.DEVNULL)


def test_cli_bad_inventory_exit_2_one_line_no_traceback(tmp_path):
    data = copy.deepcopy(BASE)
    data["nodes"][1]["role"] = "worker"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    for args in (["inventory.check", str(bad)], ["preflight", "-i", str(bad)], ["rebuild", "-i", str(bad), "--yes"]):
        res = _inv(*args)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert "Traceback" not in res.stderr + res.stdout
        lines = [l for l in res.stderr.splitlines() if l.strip()]
        assert lines == [f"error: {bad}: nodes[1].role: expected server or agent"], res.stderr


def test_cli_check_ok():
    res = _inv("inventory.check", "inventory/homelab.yaml")
    assert res.returncode == 0, res.stderr
    assert "cluster homelab" in res.stdout and "node2 (agent)" in res.stdout


def test_cli_rebuild_bad_phase_is_bad_input():
    res = _inv("rebuild", "-i", "inventory/lab.yaml", "--yes", "--from", "bootstrapp")
    assert res.returncode == 2
    assert "--from: unknown phase 'bootstrapp'" in res.stderr


def test_rebuild_without_terminal_or_yes_is_refused(tmp_path):
    res = _inv("rebuild", "-i", "inventory/lab.yaml")
    assert res.returncode == 7, res.stderr
    assert "pass --yes" in res.stderr
