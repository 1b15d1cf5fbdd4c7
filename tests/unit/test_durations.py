"""One duration format in the inventory, runbooks and on the command line."""
from __future__ import annotations

import pytest
import yaml

from drtool.drills.schedule import parse_duration
from drtool.durations import parse_seconds
from drtool.errors import BadInput
from drtool.inventory import parse_inventory

from tests.unit.test_drill_inputs import ROOT

FORMS = [(90, 90.0), ("90", 90.0), ("90s", 90.0), ("1.5m", 90.0), ("1h30m", 5400.0), ("1h 30m", 5400.0),
         ("2h", 7200.0), ("500ms", 0.5), ("1m30s", 90.0), (".5h", 1800.0)]


@pytest.mark.parametrize("text,seconds", FORMS)
def test_the_format(text, seconds):
    assert parse_seconds(text) == seconds


@pytest.mark.parametrize("text", ["1h30", "h1", "1d", "5 minutes", "1h-30m", "", "-3s", "1e3s", True])
def test_not_durations(text):
    with pytest.raises(ValueError):
        parse_seconds(text)


@pytest.mark.parametrize("text,seconds", FORMS)
def test_the_inventory_reads_the_same_format(text, seconds):
    data = yaml.safe_load((ROOT / "inventory/lab.yaml").read_text())
    data["timeouts"] = {"converge": text}
    data["flux"]["timeout"] = text
    inv = parse_inventory(data, "inv.yaml")
    assert inv.timeouts.converge == seconds and inv.flux.timeout == seconds


@pytest.mark.parametrize("text,seconds", [f for f in FORMS if f[1] >= 1])
def test_the_schedule_reads_the_same_format(text, seconds):
    assert parse_duration(text) == int(seconds)


def test_runbooks_read_the_same_format(tmp_path):
    from drtool.runbooks.model import load_runbook

    path = tmp_path / "pause.yaml"
    path.write_text(yaml.safe_dump({"name": "pause", "description": "d", "steps": [
        {"id": "p", "title": "t", "wait": {"seconds": "1.5m"}, "timeout": "1h30m"}]}))
    step = load_runbook(path).steps[0]
    assert step.wait.seconds == 90.0 and step.timeout == 5400.0


def test_the_same_message_everywhere():
    data = yaml.safe_load((ROOT / "inventory/lab.yaml").read_text())
    data["timeouts"] = {"converge": "1h30"}
    with pytest.raises(BadInput) as inv_err:
        parse_inventory(data, "inv.yaml")
    with pytest.raises(BadInput) as sched_err:
        parse_duration("1h30", "randomized_delay_s")
    hint = "expected a duration such as 90, '90s', '1.5m' or '1h30m'"
    assert hint in str(inv_err.value) and hint in str(sched_err.value)
