"""k3s-ansible import, the cluster lock, the run journal and phase selection."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from drtool.errors import BadInput, LockHeld
from drtool.inventory import parse_inventory
from drtool.inventory_import import convert_ansible
from drtool.lock import ClusterLock
from drtool.pipeline import PHASE_NAMES, select_phases
from drtool.report.model import recovery
from drtool.report.record import parse_record

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = """
k3s_cluster:
  children:
    server:
      hosts:
        192.168.1.10:
    agent:
      hosts:
        node2:
          ansible_host: 192.168.1.11
  vars:
    ansible_port: 22
    ansible_user: debian
    k3s_version: v1.30.2+k3s1
    token: "changeme!"
    api_endpoint: "{{ hostvars[groups['server'][0]]['ansible_host'] | default(groups['server'][0]) }}"
    extra_server_args: "--disable traefik"
    extra_agent_args: ""
"""


def test_convert_ansible_never_copies_token():
    data, notes = convert_ansible(yaml.safe_load(ANSIBLE), "inventory.yml", {"192.168.1.10": "node1"})
    inv = parse_inventory(data, "converted.yaml")
    assert [(n.name, n.host, n.role) for n in inv.nodes] == [("node1", "192.168.1.10", "server"), ("node2", "192.168.1.11", "agent")]
    assert inv.k3s.server_args == ("--disable", "traefik")
    assert inv.k3s.token.token_env == "K3S_TOKEN"
    assert inv.cluster.api_endpoint == "https://192.168.1.10:6443"
    assert "changeme!" not in yaml.safe_dump(data)
    assert any("token was NOT copied" in n for n in notes)


def test_convert_ansible_errors_name_field():
    with pytest.raises(BadInput, match="k3s_cluster.vars.k3s_version"):
        convert_ansible({"k3s_cluster": {"children": {"server": {"hosts": {"a": None}}}, "vars": {}}}, "i.yml")
    with pytest.raises(BadInput, match="server.hosts"):
        convert_ansible({"k3s_cluster": {"children": {}, "vars": {"k3s_version": "v1.30.2+k3s1"}}}, "i.yml")


def test_import_task_writes_valid_inventory(tmp_path):
    src = tmp_path / "inventory.yml"
    src.write_text(ANSIBLE)
    out = tmp_path / "drtool.yaml"
    res = subprocess.run([sys.executable, "-m", "invoke", "inventory.import-ansible", str(src), "--output", str(out),
                          "--node-name", "192.168.1.10=node1"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "token was NOT copied" in res.stderr
    check = subprocess.run([sys.executable, "-m", "invoke", "inventory.check", str(out)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr


def test_lock_refuses_second_holder_and_reports_stale(tmp_path):
    a = ClusterLock(tmp_path, "lab").acquire("run-a")
    with pytest.raises(LockHeld, match="run-a"):
        ClusterLock(tmp_path, "lab").acquire("run-b")
    a.release()
    # A lock file left by a process that died: taken over, and reported as stale.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    (tmp_path / ".locks" / "lab.lock").write_text(json.dumps({"pid": int(dead), "run_id": "run-dead"}))
    c = ClusterLock(tmp_path, "lab").acquire("run-c")
    assert c.stale and c.stale["run_id"] == "run-dead"
    c.release()


def test_lock_held_by_other_process(tmp_path):
    code = f"from drtool.lock import ClusterLock; import time; held = ClusterLock(__import__('pathlib').Path({str(tmp_path)!r}), 'lab').acquire('other'); print('locked', flush=True); time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(LockHeld, match=f"pid {proc.pid}"):
            ClusterLock(tmp_path, "lab").acquire("mine")
    finally:
        proc.kill()
        proc.wait(10)
    ClusterLock(tmp_path, "lab").acquire("after").release()


def test_select_phases_and_recovery():
    assert [p.NAME for p in select_phases("bootstrap", None)] == ["bootstrap", "converge"]
    assert [p.NAME for p in select_phases(None, "backup")] == ["preflight", "backup"]
    assert PHASE_NAMES[0] == "preflight" and PHASE_NAMES[-1] == "converge"
    with pytest.raises(BadInput, match="--from"):
        select_phases("converge", "teardown")
    record = {"run_id": "r", "started_at": 99.0, "objective_s": 20.0,
              "phases": [{"name": "preflight", "started_at": 100.0, "ended_at": 101.0},
                         {"name": "teardown", "started_at": 105.0, "ended_at": 110.0, "outcome": "ok"},
                         {"name": "converge", "started_at": 110.0, "ended_at": 130.0}],
              "converge": {"converged": True, "ended": 129.5}}
    # From the start of the wipe to the moment the converge phase saw everything Ready.
    rcv = recovery(parse_record(record))
    assert (rcv.seconds, rcv.start_phase, rcv.over_objective) == (24.5, "teardown", True)
