"""Fixtures for tests that run against real lab nodes (sshd in Linux namespaces).

Every test under tests/lab is marked ``lab``; ``lab`` tests are skipped unless this runs as
root with sshd and unshare installed. Labs made here live in fresh ``/tmp/drtool-lab-*`` dirs
(removed afterwards) and on their own loopback subnets (127.0.200.x and up), so they never
clash with an operator's ``.lab/`` on 127.0.0.x.
"""
from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import paramiko
import pytest

from drtool.lab.nodes import Lab

from .subnets import for_worker

HERE = Path(__file__).resolve().parent
SESSION_SUBNET = for_worker("127.0.200")
# make_lab cycles through these; every lab is torn down at the end of its test.
_FACTORY_SUBNETS = itertools.cycle(for_worker(f"127.0.{i}") for i in range(201, 255))


def lab_unavailable_reason() -> str | None:
    """Why lab tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "lab tests need root (namespaces, mounts)"
    for tool, package in (("sshd", "openssh-server"), ("unshare", "util-linux")):
        if not shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin"):
            return f"lab tests need {tool} (apt package {package})"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = lab_unavailable_reason()
    for item in items:
        if HERE == item.path.parent or HERE in item.path.parents:
            item.add_marker(pytest.mark.lab)
        if reason and item.get_closest_marker("lab"):
            item.add_marker(pytest.mark.skip(reason=reason))


class RunningLab(Lab):
    """A started lab plus client helpers for tests (strict host keys, the lab key)."""

    def ssh(self, name: str, timeout: float = 5.0) -> paramiko.SSHClient:
        """A connected paramiko client to node ``name``: lab key, LAB/known_hosts, RejectPolicy."""
        spec = self.node(name)
        client = paramiko.SSHClient()
        client.load_host_keys(str(self.known_hosts_path))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                spec.address, spec.ssh_port, username="lab", key_filename=str(self.key_path),
                look_for_keys=False, allow_agent=False, timeout=timeout,
                banner_timeout=timeout, auth_timeout=timeout,
            )
        except BaseException:
            client.close()
            raise
        return client

    def run(self, name: str, command: str, timeout: float = 10.0) -> tuple[int, str, str]:
        """Run ``command`` on node ``name``; (exit status, stdout, stderr)."""
        client = self.ssh(name)
        try:
            _, out, err = client.exec_command(command, timeout=timeout)
            stdout, stderr = out.read().decode(), err.read().decode()
            return out.channel.recv_exit_status(), stdout, stderr
        finally:
            client.close()


def _lab_dir() -> Path:
    # Not under pytest's basetemp: that is 0700, and the lab user inside a node must be able
    # to reach the lab's files (the simulated k3s, artifacts) as on a real machine.
    path = Path(tempfile.mkdtemp(prefix="drtool-lab-"))
    path.chmod(0o755)
    return path


def _start(n: int, subnet: str) -> RunningLab:
    lab = RunningLab(_lab_dir(), subnet=subnet)
    try:
        lab.up(n)
    except BaseException:
        _remove(lab)
        raise
    return lab


def _remove(lab: RunningLab) -> None:
    lab.down(purge=True)
    shutil.rmtree(lab.root)


@pytest.fixture(scope="session")
def lab_nodes() -> Iterator[RunningLab]:
    """A 3-node lab (node1..node3 on 127.0.200.11-13:2222) shared by the session.

    Tests must leave it as they found it; tests that break nodes use ``make_lab``.
    """
    reason = lab_unavailable_reason()
    if reason:
        pytest.skip(reason)
    lab = _start(3, SESSION_SUBNET)
    yield lab
    _remove(lab)


@pytest.fixture
def make_lab() -> Iterator[Callable[[int], RunningLab]]:
    """Factory: ``make_lab(n)`` starts a private n-node lab on its own subnet; all are torn down after the test."""
    made: list[RunningLab] = []

    def factory(n: int = 1) -> RunningLab:
        lab = _start(n, next(_FACTORY_SUBNETS))
        made.append(lab)
        return lab

    yield factory
    errors = []
    for lab in made:
        try:
            _remove(lab)
        except Exception as exc:  # tear down every lab even if one fails
            errors.append(exc)
    if errors:
        raise errors[0]
