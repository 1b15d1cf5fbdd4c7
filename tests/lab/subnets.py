"""Loopback subnets for lab tests, kept apart per pytest-xdist worker.

Tests name subnets like ``127.0.110``; worker ``gwN`` gets ``127.N.110`` instead
(all of 127.0.0.0/8 is loopback), so parallel workers never share an address.
``DRTOOL_TEST_OCTET_BASE`` shifts that second octet, so two test runs on one machine (two
checkouts) can run side by side: run A with the default 0, run B with e.g. 20.
"""
from __future__ import annotations

import os


def worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    return index + int(os.environ.get("DRTOOL_TEST_OCTET_BASE", "0"))


def for_worker(subnet: str) -> str:
    """``127.0.X`` → ``127.<worker>.X``."""
    first, second, third = subnet.split(".")
    return f"{first}.{worker_index()}.{third}" if first == "127" else subnet
