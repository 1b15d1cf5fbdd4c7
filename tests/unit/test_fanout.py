"""Fan-out results: per node, one way to raise, and the raised error keeps the most specific type."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drtool.errors import (ConnectError, DrtoolError, ExitCode, HostKeyError, Interrupted, NodesFailed,
                           RemoteError, RetryableError)
from drtool.inventory import parse_inventory
from drtool.remote.fanout import NodeResults, fan_out

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def nodes():
    inv = parse_inventory(yaml.safe_load((REPO / "inventory" / "lab.yaml").read_text()), REPO / "inventory" / "lab.yaml")
    return inv.nodes


def test_every_node_maps_to_its_value_or_its_error(nodes):
    def fn(node):
        if node.name == "node2":
            raise RemoteError("node2", "false", 1)
        return node.name.upper()

    results = fan_out(nodes, fn)
    assert list(results) == ["node1", "node2"]
    assert results["node1"] == "NODE1"
    assert set(results.failed) == {"node2"} and isinstance(results.failed["node2"], RemoteError)
    assert results.succeeded == {"node1": "NODE1"}
    with pytest.raises(NodesFailed, match=r"^teardown failed: node2: `false` exited 1$") as info:
        results.raise_on_failure("teardown")
    assert info.value.exit_code == ExitCode.FAILED and set(info.value.errors) == {"node2"}


def test_no_failure_returns_the_values(nodes):
    assert fan_out(nodes, lambda n: n.role).raise_on_failure("x") == {"node1": "server", "node2": "agent"}
    assert fan_out([], lambda n: 1).raise_on_failure("x") == {}


def test_an_interrupt_on_one_node_is_an_interrupt():
    results = NodeResults({"node1": RemoteError("node1", "x", 1), "node2": Interrupted("interrupted during join_agents")})
    with pytest.raises(Interrupted) as info:
        results.raise_on_failure("agent join")
    assert info.value.exit_code == ExitCode.INTERRUPTED == 130
    assert isinstance(info.value, NodesFailed)
    assert str(info.value) == "agent join failed: node1: `x` exited 1; interrupted during join_agents"


def test_a_host_key_error_keeps_its_code_and_type():
    results = NodeResults({"node1": ConnectError("node1: refused"), "node2": HostKeyError("node2: host key CHANGED")})
    with pytest.raises(HostKeyError) as info:
        results.raise_on_failure("teardown")
    assert info.value.exit_code == ExitCode.REFUSED
    assert type(info.value).__name__ == "HostKeyError"  # what the report's error line shows


def test_common_type_is_kept_so_retryable_stays_retryable():
    both_retryable = NodeResults({"a": ConnectError("a: refused"), "b": ConnectError("b: timeout")})
    with pytest.raises(RetryableError):
        both_retryable.raise_on_failure("install")
    mixed = NodeResults({"a": ConnectError("a: refused"), "b": RemoteError("b", "x", 2)})
    with pytest.raises(NodesFailed) as info:
        mixed.raise_on_failure("install")
    assert not isinstance(info.value, RetryableError) and type(info.value) is NodesFailed


def test_a_bug_in_a_worker_propagates(nodes):
    def fn(node):
        raise ZeroDivisionError("bug")

    with pytest.raises(ZeroDivisionError):
        fan_out(nodes, fn)


def test_fan_out_errors_are_drtool_errors():
    err = NodesFailed.of("x", {"a": Interrupted("stop")})
    assert isinstance(err, DrtoolError) and err.errors["a"].args == ("stop",)
