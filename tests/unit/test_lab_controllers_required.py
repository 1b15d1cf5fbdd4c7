"""A lab K3s server whose Flux controllers cannot be imported must not start without them."""
from __future__ import annotations

import asyncio
import sys

import pytest

from drtool.lab.k3s import server


def test_a_controllers_import_error_stops_the_server_start(monkeypatch):
    monkeypatch.setitem(sys.modules, "drtool.lab.controllers", None)  # what a broken import looks like
    with pytest.raises(ImportError):
        asyncio.run(server._start_controllers(store=None, lab=None))  # type: ignore[arg-type]
