"""drtool's own exception tree and its exit codes.

Only the task layer turns an error into a one-line message and an exit code
(see ``drtool.tasks._cli``); everything below raises these types, wrapping
library errors with ``raise ... from`` so the cause stays in the debug log.
"""
from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes; listed in the README."""

    OK = 0
    FAILED = 1             # a phase or step failed (remote command, API, bootstrap...)
    BAD_INPUT = 2          # inventory, runbook, scenario or CLI arguments are invalid
    PREFLIGHT = 3          # preflight found a failing check; nothing was changed
    NOT_CONVERGED = 4      # the cluster did not become ready (fail fast or deadline)
    OVER_OBJECTIVE = 5     # rebuilt, but slower than the recovery-time objective
    LOCKED = 6             # another run holds the cluster lock
    REFUSED = 7            # refused: no confirmation, drills disabled, host key unknown
    INTERRUPTED = 130      # SIGINT/SIGTERM; a partial report was written


class DrtoolError(Exception):
    """Base of every error drtool raises on purpose. ``exit_code`` picks the process status."""

    exit_code: ExitCode = ExitCode.FAILED


class BadInput(DrtoolError):
    """Invalid user input. The message names the file and the field path."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, source: str, field: str, problem: str, more: tuple[tuple[str, str], ...] = ()):
        self.source, self.field, self.problem = str(source), field, problem
        self.more = tuple(more)
        """Further ``(field, problem)`` pairs found in the same file: every one is reported at once."""
        lines = []
        for f, p in ((field, problem), *self.more):
            where = f"{self.source}: {f}" if f else self.source
            lines.append(f"{where}: {p}")
        super().__init__("\n".join(lines))

    @property
    def problems(self) -> tuple[tuple[str, str], ...]:
        """Every ``(field, problem)``, the first one first."""
        return ((self.field, self.problem), *self.more)


class Refused(DrtoolError):
    exit_code = ExitCode.REFUSED


class LockHeld(DrtoolError):
    exit_code = ExitCode.LOCKED


class PreflightFailed(DrtoolError):
    exit_code = ExitCode.PREFLIGHT


class NotConverged(DrtoolError):
    exit_code = ExitCode.NOT_CONVERGED


class OverObjective(DrtoolError):
    exit_code = ExitCode.OVER_OBJECTIVE


class Interrupted(DrtoolError):
    exit_code = ExitCode.INTERRUPTED


class RetryableError(DrtoolError):
    """A failure worth retrying (connection refused, 503, transient bootstrap error)."""


class PermanentError(DrtoolError):
    """A failure that retrying will not fix (bad token, missing repo, 4xx)."""


class RemoteError(DrtoolError):
    """A remote command failed: shows node, redacted command, exit code and output tail."""

    def __init__(self, node: str, command: str, exit_code: int | None, tail: str = "", reason: str = ""):
        self.node, self.command, self.returncode, self.tail = node, command, exit_code, tail
        head = f"{node}: `{command}` " + (f"exited {exit_code}" if exit_code is not None else reason or "failed")
        super().__init__(head + (f"\n{tail}" if tail else ""))


class ConnectError(RetryableError):
    """SSH could not connect (refused, timeout, auth)."""


class ConnectionLost(ConnectError):
    """The SSH connection dropped while a command ran: its outcome on the node is unknown."""


class HostKeyError(DrtoolError):
    """The node's SSH host key is unknown or changed; never retried."""

    exit_code = ExitCode.REFUSED
