"""A runner that records commands instead of running them, and answers from a script.

Like invoke's ``MockContext``: the phases run unchanged against it, so a dry run shows what
the phases really send (not a hand-written description that can drift), and unit tests
drive every phase, the pipeline and the runbook executor without SSH or root. Nothing is
ever connected to: ``connection()`` refuses.

A ``Reply`` matches commands by a regular expression (searched in the command as sent,
``sudo -n -- sh -c ...`` wrapping included) and optionally by node; the first match that
has answers left wins. A command no reply matches succeeds with empty output.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from drtool.errors import DrtoolError, RemoteError
from drtool.inventory import Inventory, Node
from drtool.remote.runner import CommandLog, Result, Runner, q
from drtool.secret import Secret, redact


@dataclass
class Reply:
    """What a scripted command answers."""

    match: str
    """A regular expression searched in the command."""
    node: str | None = None
    """Only on this node (``local`` for local commands); any node when None."""
    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""
    raises: DrtoolError | None = None
    """Raised instead of answering (a dropped connection, an interrupt...)."""
    times: int | None = None
    """How many commands it answers; unlimited when None."""


@dataclass(frozen=True)
class Recorded:
    """One command a phase sent, as it would be shown (secrets masked)."""

    node: str
    command: str
    step: str | None = None
    stdin: bool = False
    """Something (a token) went on stdin; its value is never recorded."""
    api: str = ""
    """``read`` or ``write`` for a Kubernetes API request a dry run noted here (``node`` is then
    the API server); empty for a command."""

    def describe(self) -> str:
        return self.command + ("   # stdin: ***" if self.stdin else "")


class RecordingRunner(Runner):
    """A ``Runner`` that records and answers from ``replies``; see the module docstring."""

    def __init__(self, inventory: Inventory, replies: Sequence[Reply] = (), command_log: CommandLog | None = None,
                 *, sequential: bool = False):
        super().__init__(inventory, command_log)
        self.replies = list(replies)
        self.recorded: list[Recorded] = []
        self.sequential = sequential
        """``fan_out`` takes one node after the other, in the order given: a dry run's plan then
        lists each node's commands together, the same way every time."""

    def fan_out(self, nodes, fn, max_workers: int = 32):
        return super().fan_out(nodes, fn, 1 if self.sequential else max_workers)

    # -- never connects ---------------------------------------------------------
    def connection(self, node: Node):
        """Never connects; a reply matching ``connect`` (for that node) can make it fail."""
        for reply in self.replies:
            if reply.raises is not None and reply.node in (None, node.name) and reply.times != 0 \
                    and re.fullmatch(reply.match, "connect"):
                if reply.times is not None:
                    reply.times -= 1
                raise reply.raises
        return None

    def close(self) -> None:
        pass

    # -- commands ------------------------------------------------------------------
    def _answer(self, node: str, full: str, shown: str, step: str | None, stdin: bool) -> Reply | None:
        self.recorded.append(Recorded(node, shown, step, stdin))
        self.log.write(node=node, step=step, command=shown, exit_code=0, recorded=True)
        for reply in self.replies:
            if reply.node not in (None, node) or reply.times == 0 or not re.search(reply.match, full):
                continue
            if reply.times is not None:
                reply.times -= 1
            if reply.raises is not None:
                raise reply.raises
            return reply
        return None

    def run(self, node: Node, command: str, *, sudo: bool = False, timeout: float | None = None,
            stdin: str | Secret | None = None, check: bool = True, step: str | None = None,
            idempotent: bool = False, redact_output: bool = True) -> Result:
        full = self.wrap(node, command, sudo)
        shown = redact(full)
        reply = self._answer(node.name, full, shown, step, stdin is not None)
        result = Result(node.name, shown, reply.exit_code if reply else 0, reply.stdout if reply else "",
                        reply.stderr if reply else "", 0.0)
        if check and result.exit_code != 0:
            raise RemoteError(node.name, shown, result.exit_code, result.tail())
        return result

    def put_many(self, node: Node, items: list[tuple[Path | str | bytes, str, str]], *, sudo: bool = True,
                 step: str | None = None) -> None:
        for local, remote, mode in items:
            label = "<bytes>" if isinstance(local, bytes) else str(local)
            self._answer(node.name, f"upload {label} -> {remote}", f"upload {label} -> {remote} (mode {mode})",
                         step, False)

    def local(self, command: str | Sequence[str], *, env: Mapping[str, str] | None = None,
              timeout: float | None = None, step: str | None = None, check: bool = True,
              cwd: Path | str | None = None) -> Result:
        full = command if isinstance(command, str) else " ".join(q(a) for a in command)
        # A variable holding a registered secret (flux's token) is shown by name: what the
        # command gets besides its arguments, never its value.
        secret_vars = sorted(k for k, v in (env or {}).items() if v and redact(v) != v)
        shown = "".join(f"{k}=*** " for k in secret_vars) + redact(full)
        reply = self._answer("local", full, shown, step, False)
        result = Result("local", shown, reply.exit_code if reply else 0, reply.stdout if reply else "",
                        reply.stderr if reply else "", 0.0)
        if check and result.exit_code != 0:
            raise RemoteError("local", shown, result.exit_code, result.tail())
        return result

    def http_status(self, url: str, *, timeout: float, step: str | None = None) -> tuple[int | None, str]:
        """Records ``GET url`` (node ``local``); a reply's stdout is the status (200 when no reply
        matches), a non-zero exit code means no answer, its stderr saying why."""
        shown = redact(f"GET {url}")
        reply = self._answer("local", f"GET {url}", shown, step, False)
        if reply is not None and reply.exit_code != 0:
            return None, reply.stderr or "no answer"
        text = reply.stdout.strip() if reply is not None else ""
        return (int(text) if text.isdigit() else 200), ""

    def write_local(self, path: Path, text: str, *, mode: int = 0o600, step: str | None = None) -> None:
        self._answer("local", f"write {path}", f"write {path} (mode {mode:04o})", step, False)

    def commands(self, node: str | None = None) -> list[str]:
        """The recorded commands (on one node, or all), in order."""
        return [r.command for r in self.recorded if node is None or r.node == node]
