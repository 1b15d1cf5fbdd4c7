"""Fixtures the unit tests share."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drtool.inventory import parse_inventory

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def inv(tmp_path, monkeypatch):
    """The lab inventory, its runs kept under the test's tmp dir (a module may define its own)."""
    monkeypatch.setenv("DRTOOL_RUNS_DIR", str(tmp_path / "runs"))
    data = yaml.safe_load((REPO / "inventory" / "lab.yaml").read_text())
    return parse_inventory(data, REPO / "inventory" / "lab.yaml")
