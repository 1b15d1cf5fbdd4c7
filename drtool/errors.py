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
    INTERNAL = 70          # a bug in drtool (sysexits EX_SOFTWARE); the traceback is in the debug log
    INTERRUPTED = 130      # SIGINT/SIGTERM; a partial report was written
    BROKEN_PIPE = 141      # the reader of stdout went away (`| head`); 128 + SIGPIPE, as a shell reports it


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


class Blocked(Interrupted):
    """An overlapped phase stopped because a phase it waits on ended without what it needs; the
    run reports that phase's error, and a resume redoes both."""


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


class NodesFailed(DrtoolError):
    """One or more nodes of a fan-out failed; ``errors`` maps each failed node to its error.

    Raised through ``NodesFailed.of``, which gives the instance the most specific type the
    node errors share (``Interrupted``, ``HostKeyError``...), so callers and exit codes treat
    a failure on many nodes like the same failure on one.
    """

    def __init__(self, message: str, errors: dict[str, DrtoolError]):
        Exception.__init__(self, message)
        self.errors = dict(errors)

    @classmethod
    def of(cls, what: str, errors: dict[str, DrtoolError]) -> "NodesFailed":
        """``{what} failed: <node error>; <node error>`` typed after the dominant node error."""
        message = f"{what} failed: " + "; ".join(_first_line(e) for e in errors.values())
        return _typed(_dominant_type(list(errors.values())))(message, errors)


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text.strip() else type(exc).__name__


# An interrupt stops the whole run (exit 130, resumable) and a host-key problem needs the
# operator, whichever node saw it: they outrank every other node's error.
_OUTRANKING: tuple[type[DrtoolError], ...] = (Interrupted, HostKeyError)


def _dominant_type(errors: list[DrtoolError]) -> type[DrtoolError]:
    for kind in _OUTRANKING:
        for exc in errors:
            if isinstance(exc, kind):
                return type(exc) if not isinstance(exc, NodesFailed) else _base_of(type(exc))
    special = [e for e in errors if e.exit_code != ExitCode.FAILED]
    if special:
        return _base_of(type(special[0]))
    # Otherwise the most derived class every error is an instance of (all retryable → retryable).
    types = [_base_of(type(e)) for e in errors]
    for candidate in types[0].__mro__:
        if isinstance(candidate, type) and issubclass(candidate, DrtoolError) and \
                all(issubclass(t, candidate) for t in types):
            return candidate
    return DrtoolError


def _base_of(kind: type[DrtoolError]) -> type[DrtoolError]:
    """The drtool error class behind a composed ``NodesFailed`` class."""
    return getattr(kind, "_node_error", kind)


_TYPED: dict[type[DrtoolError], type[NodesFailed]] = {}


def _typed(kind: type[DrtoolError]) -> type[NodesFailed]:
    if kind in (DrtoolError, NodesFailed):
        return NodesFailed
    typed = _TYPED.get(kind)
    if typed is None:
        # Named after the node error, so a report says "HostKeyError: teardown failed: ...".
        typed = type(kind.__name__, (NodesFailed, kind),
                     {"exit_code": kind.exit_code, "_node_error": kind, "__module__": __name__})
        _TYPED[kind] = typed
    return typed
