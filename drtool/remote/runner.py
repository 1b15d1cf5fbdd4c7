"""The one place where remote commands run.

Every command drtool sends to a node goes through ``Runner``: it connects with
Fabric (honouring ``~/.ssh/config`` aliases, keys and ProxyJump), verifies host
keys strictly against known_hosts, runs privileged commands with ``sudo -n``
(never prompting), bounds every command in time, logs node/duration/exit code
with secrets redacted, and raises drtool's own errors. Secrets never travel in
argv: they go on the command's stdin.
"""
from __future__ import annotations

import io
import json
import logging
import shlex
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

from drtool.errors import (
    BadInput,
    ConnectError,
    ConnectionLost,
    HostKeyError,
    PermanentError,
    RemoteError,
    RetryableError,
)
from drtool.inventory import Inventory, Node
from drtool.remote.fanout import NodeResults, fan_out
from drtool.secret import Secret, redact

log = logging.getLogger("drtool.remote")
T = TypeVar("T")

TAIL_LINES = 15


def q(value: object) -> str:
    """Shell-quote a value for a POSIX shell. Every inventory value reaching a shell goes through this."""
    return shlex.quote(str(value))


@dataclass(frozen=True)
class Result:
    node: str
    command: str
    """The command as logged (secrets redacted)."""
    exit_code: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def tail(self, lines: int = TAIL_LINES) -> str:
        text = (self.stdout + ("\n" if self.stdout and self.stderr else "") + self.stderr).rstrip()
        return "\n".join(text.splitlines()[-lines:])


class LocalCommandTimedOut(RetryableError):
    """A local command (flux CLI, git, a runbook's local step) ran past its bound; ``output`` is
    what it printed until then (redacted), which often says how far it got."""

    def __init__(self, message: str, output: str = ""):
        super().__init__(message)
        self.output = output


class CommandLog:
    """Appends one JSON line per command (node, command, duration, exit code) to a file."""

    def __init__(self, path: Path | None):
        self.path = path
        self._lock = threading.Lock()

    def write(self, **entry: object) -> None:
        entry = {"at": round(time.time(), 3), **entry}
        line = redact(json.dumps(entry, default=str))
        log.debug(line)
        if self.path is None:
            return
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


class _AcceptNewPolicy:
    """Records an unknown host key in the known_hosts file (like StrictHostKeyChecking=accept-new)."""

    def __init__(self, known_hosts: Path):
        self.known_hosts = known_hosts

    def missing_host_key(self, client, hostname, key):  # paramiko's policy interface
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.known_hosts.parent.mkdir(parents=True, exist_ok=True)
        with open(self.known_hosts, "a", encoding="utf-8") as fh:
            fh.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        log.warning("recorded new host key for %s in %s", hostname, self.known_hosts)


def known_hosts_name(host: str, port: int | None) -> str:
    """The name a host's key is filed under in known_hosts: ``host``, or ``[host]:port`` for a
    port other than 22 (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"; paramiko's SSHClient.connect
    looks keys up the same way), which is what ``ssh-keygen -R`` must be given."""
    host = host.strip("[]").rsplit("]:", 1)[0] if host.startswith("[") else host
    return host if port in (None, 22) else f"[{host}]:{port}"


def _needs_passphrase(key: Path) -> bool:
    """Whether a private key file is encrypted: PEM keys say so in their header; OpenSSH keys
    name their cipher right after the ``openssh-key-v1`` magic (openssh PROTOCOL.key)."""
    import base64
    import binascii

    try:
        text = key.read_text(errors="replace")
    except OSError:
        return False
    if "ENCRYPTED" in "\n".join(text.splitlines()[:3]):
        return True
    if "BEGIN OPENSSH PRIVATE KEY" not in text:
        return False
    body = "".join(line for line in text.splitlines() if line and not line.startswith("-----"))
    try:
        data = base64.b64decode(body)
    except (binascii.Error, ValueError):
        return False
    magic = b"openssh-key-v1\0"
    if not data.startswith(magic) or len(data) < len(magic) + 4:
        return False
    n = int.from_bytes(data[len(magic):len(magic) + 4], "big")
    return data[len(magic) + 4:len(magic) + 4 + n] != b"none"


class Runner:
    """Runs commands on the inventory's nodes over SSH.

    One SSH connection per node, reused by every command (paramiko multiplexes
    channels over it); ``fan_out`` runs a function per node in parallel.
    """

    def __init__(
        self,
        inventory: Inventory,
        command_log: CommandLog | None = None,
        accept_new_host_keys: bool = False,
    ):
        self.inventory = inventory
        self.log = command_log or CommandLog(None)
        self.accept_new_host_keys = accept_new_host_keys
        self._conns: dict[str, Any] = {}  # fabric Connections, imported lazily
        self._locks: dict[str, threading.Lock] = {n.name: threading.Lock() for n in inventory.nodes}

    # -- connections --------------------------------------------------------
    @property
    def known_hosts(self) -> Path:
        return self.inventory.resolve(self.inventory.ssh.known_hosts) or Path.home() / ".ssh" / "known_hosts"

    def _config(self):
        from fabric import Config

        ssh_config = self.inventory.resolve(self.inventory.ssh.config)
        if ssh_config is not None:
            return Config(runtime_ssh_path=str(ssh_config))
        return Config()

    def connection(self, node: Node):
        """An open Fabric connection to the node (cached), host key verified."""
        with self._locks[node.name]:
            conn = self._conns.get(node.name)
            if conn is not None and conn.is_connected:
                return conn
            conn = self._connect(node)
            self._conns[node.name] = conn
            return conn

    def _connect(self, node: Node):
        import paramiko
        from fabric import Connection

        timeout = self.inventory.timeouts.ssh_connect
        kwargs: dict[str, object] = {"banner_timeout": timeout, "auth_timeout": timeout}
        key = self.inventory.resolve(node.ssh_key)
        if key is not None:
            if not key.is_file():
                index = self.inventory.nodes.index(node)
                raise BadInput(str(self.inventory.path), f"nodes[{index}].ssh_key", f"{key}: file not found")
            kwargs["key_filename"] = [str(key)]
            # Only this key, but the agent stays on: a passphrase-protected key is used through the
            # agent it was loaded into (paramiko tries key_filename, then the agent's keys).
            kwargs["look_for_keys"] = False
        conn = Connection(
            node.address, user=node.user, port=node.port, config=self._config(),
            connect_timeout=timeout, connect_kwargs=kwargs,
        )
        client = conn.client
        # Fabric defaults to AutoAddPolicy; drtool verifies host keys strictly instead.
        client.get_host_keys().clear()
        if self.known_hosts.exists():
            client.load_host_keys(str(self.known_hosts))
        client.set_missing_host_key_policy(
            _AcceptNewPolicy(self.known_hosts) if self.accept_new_host_keys else paramiko.RejectPolicy()
        )
        where = f"{node.name} ({node.address}{':' + str(node.port) if node.port else ''})"
        try:
            conn.open()
        except paramiko.BadHostKeyException as exc:
            raise HostKeyError(
                f"{where}: the SSH host key CHANGED (a reimaged node, or someone in the middle). "
                f"If the node was reinstalled, remove the old entry with "
                f"`ssh-keygen -R {q(known_hosts_name(exc.hostname, conn.port))} -f {q(self.known_hosts)}` "
                f"and rerun with --accept-new-host-keys."
            ) from None
        except paramiko.SSHException as exc:
            if "not found in known_hosts" in str(exc):
                raise HostKeyError(
                    f"{where}: host key unknown (not in {self.known_hosts}); verify it and rerun with "
                    f"--accept-new-host-keys to record it"
                ) from None
            if isinstance(exc, paramiko.AuthenticationException):
                hint = ""
                if key is not None and _needs_passphrase(key):
                    hint = f"; {key} is passphrase-protected: load it into ssh-agent (ssh-add {q(key)})"
                raise ConnectError(f"{where}: SSH authentication failed for user {node.user or '(default)'}{hint}") from None
            raise ConnectError(f"{where}: SSH failed: {exc}") from None
        except (socket.timeout, TimeoutError):
            raise ConnectError(f"{where}: SSH connect timed out after {timeout:g}s") from None
        except OSError as exc:
            raise ConnectError(f"{where}: SSH connect failed: {exc.strerror or exc}") from None
        return conn

    def close(self) -> None:
        for conn in self._conns.values():
            try:
                conn.close()
            except Exception:  # closing a dead connection must never mask the real error
                pass
        self._conns.clear()

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands -----------------------------------------------------------
    def wrap(self, node: Node, command: str, sudo: bool) -> str:
        """The full command line: ``sudo -n`` when needed, so sudo never prompts."""
        if sudo and node.sudo:
            return f"sudo -n -- sh -c {q(command)}"
        return command

    def run(
        self,
        node: Node,
        command: str,
        *,
        sudo: bool = False,
        timeout: float | None = None,
        stdin: str | Secret | None = None,
        check: bool = True,
        step: str | None = None,
        idempotent: bool = False,
        redact_output: bool = True,
    ) -> Result:
        """Run ``command`` on ``node``; raise RemoteError on non-zero exit when ``check``.

        ``stdin`` (for secrets) is fed to the command and never logged. When the connection
        drops mid-command, ``ConnectionLost`` is raised, unless the command is ``idempotent``
        (running it twice does no harm): then it runs once more on a fresh connection.
        Output is redacted unless ``redact_output`` is False (only ``read_secret`` does that).
        """
        full = self.wrap(node, command, sudo)
        shown = redact(full)
        try:
            return self._run_once(node, full, shown, sudo=sudo, timeout=timeout, stdin=stdin, check=check, step=step,
                                  redact_output=redact_output)
        except ConnectionLost as exc:
            if not idempotent:
                raise
            # One retry only: a node that keeps dropping us is a fault to report, not to hide.
            log.warning("%s; running it again on a new connection", exc)
            self.log.write(node=node.name, step=step, command=shown, retry="connection lost, running again")
            return self._run_once(node, full, shown, sudo=sudo, timeout=timeout, stdin=stdin, check=check, step=step,
                                  redact_output=redact_output)

    def _run_once(self, node: Node, full: str, shown: str, *, sudo: bool, timeout: float | None,
                  stdin: str | Secret | None, check: bool, step: str | None, redact_output: bool = True) -> Result:
        from invoke.exceptions import CommandTimedOut

        timeout = timeout or self.inventory.timeouts.command
        conn = self.connection(node)
        data = stdin.reveal() if isinstance(stdin, Secret) else stdin
        start = time.monotonic()
        try:
            res = conn.run(
                full, hide=True, warn=True, timeout=timeout, pty=False,
                in_stream=io.StringIO(data) if data is not None else False,
            )
            code, out, err = res.exited, res.stdout, res.stderr
        except CommandTimedOut as exc:
            duration = time.monotonic() - start
            self.log.write(node=node.name, step=step, command=shown, duration=round(duration, 3), exit_code=None, error="timeout")
            tail = redact((exc.result.stdout + exc.result.stderr).strip())
            raise RemoteError(node.name, shown, None, "\n".join(tail.splitlines()[-TAIL_LINES:]),
                              reason=f"timed out after {timeout:g}s") from None
        except (OSError, EOFError) as exc:
            raise self._lost(node, shown, step, start, str(exc)) from None
        except Exception as exc:
            # paramiko raises SSHException subclasses when the transport drops mid-command.
            import paramiko

            if isinstance(exc, paramiko.SSHException):
                raise self._lost(node, shown, step, start, str(exc)) from None
            raise
        if code == -1:
            # paramiko's "no exit status": the session ended (sshd killed, link cut) before
            # the command did, so its outcome is unknown; never read it as a plain failure.
            raise self._lost(node, shown, step, start, "the session closed without an exit status")
        duration = time.monotonic() - start
        clean = redact if redact_output else (lambda text: text)
        result = Result(node.name, shown, code, clean(out), redact(err), duration)
        self.log.write(node=node.name, step=step, command=shown, duration=round(duration, 3), exit_code=code)
        if check and code != 0:
            if sudo and code == 1 and "a password is required" in err:
                raise RemoteError(node.name, shown, code, "sudo asks for a password; drtool needs NOPASSWD sudo (or set sudo: false and connect as root)")
            raise RemoteError(node.name, shown, code, result.tail())
        return result

    def _lost(self, node: Node, shown: str, step: str | None, start: float, why: str) -> ConnectionLost:
        """Forget the dead connection, log the loss, and build the error to raise."""
        self._conns.pop(node.name, None)
        self.log.write(node=node.name, step=step, command=shown, duration=round(time.monotonic() - start, 3),
                       exit_code=None, error="connection lost")
        return ConnectionLost(f"{node.name}: connection lost while running `{shown}`: {why}")

    def put(self, node: Node, local: Path | str | bytes, remote: str, *, mode: str = "0644", sudo: bool = True, step: str | None = None) -> None:
        """Upload a file (or bytes) to ``remote`` with ``mode``."""
        self.put_many(node, [(local, remote, mode)], sudo=sudo, step=step)

    def put_many(self, node: Node, items: list[tuple[Path | str | bytes, str, str]], *, sudo: bool = True,
                 step: str | None = None) -> None:
        """Upload files: each ``(local path or bytes, remote path, mode)`` goes over SFTP to a
        private temp file, then one command installs them all in place (one round trip per node,
        whatever the number of files)."""
        import uuid

        conn = self.connection(node)
        sftp = conn.sftp()
        moves, temps = [], []
        for local, remote, mode in items:
            label = "<bytes>" if isinstance(local, bytes) else str(local)
            tmp = f"/tmp/.drtool-{uuid.uuid4().hex}"
            start = time.monotonic()
            try:
                if isinstance(local, bytes):
                    with sftp.open(tmp, "wb") as fh:
                        sftp.chmod(tmp, 0o600)
                        fh.write(local)
                else:
                    sftp.put(str(local), tmp)
                    sftp.chmod(tmp, 0o600)
            except OSError as exc:
                raise RemoteError(node.name, f"sftp put {label} {remote}", None, reason=str(exc)) from None
            self.log.write(node=node.name, step=step, command=f"sftp put {label} -> {tmp}",
                           duration=round(time.monotonic() - start, 3), exit_code=0)
            parent = remote.rsplit("/", 1)[0] or "/"
            moves.append(f"mkdir -p {q(parent)} && install -m {q(mode)} {q(tmp)} {q(remote)}")
            temps.append(q(tmp))
        self.run(node, f"rc=0; {{ {' && '.join(moves)}; }} || rc=$?; rm -f {' '.join(temps)}; exit $rc", sudo=sudo, step=step)

    def read(self, node: Node, remote: str, *, sudo: bool = True, step: str | None = None) -> str:
        """The text of a remote file (read with sudo when needed). Not logged."""
        res = self.run(node, f"cat {q(remote)}", sudo=sudo, step=step)
        return res.stdout

    def read_secret(self, node: Node, remote: str, *, label: str = "secret", step: str | None = None) -> Secret | None:
        """A remote secret file (read with sudo) as a Secret, or None when it does not exist.

        Its output is not redacted (a token already known would otherwise come back as ``***``);
        the value is registered with the redactor before anything else sees it.
        """
        res = self.run(node, f"cat {q(remote)}", sudo=True, check=False, step=step, redact_output=False)
        value = res.stdout.strip()
        return Secret(value, label) if res.ok and value else None

    def local(self, command: str | Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float | None = None,
              step: str | None = None, check: bool = True, cwd: Path | str | None = None) -> Result:
        """Run a command on this machine (a shell line, or an argv run without a shell), in ``cwd``
        when given: timed, logged as node ``local`` with secrets redacted, bounded by ``timeout``. Raises
        ``LocalCommandTimedOut`` past it, ``PermanentError`` when it cannot start, and
        ``RemoteError`` (node ``local``) on a non-zero exit when ``check``."""
        import subprocess

        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
        shown = redact(command if isinstance(command, str) else " ".join(q(a) for a in command))
        timeout = timeout or self.inventory.timeouts.command
        start = time.monotonic()
        try:
            proc = subprocess.run(argv, env=dict(env) if env is not None else None, capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL, check=False, cwd=cwd)
        except subprocess.TimeoutExpired as exc:
            self.log.write(node="local", step=step, command=shown, duration=round(time.monotonic() - start, 3),
                           exit_code=None, error=f"timeout after {timeout:g}s")
            partial = "".join(b.decode(errors="replace") if isinstance(b, bytes) else (b or "")
                              for b in (exc.stdout, exc.stderr))
            raise LocalCommandTimedOut(f"local: `{shown}` timed out after {timeout:g}s", redact(partial)) from None
        except OSError as exc:
            raise PermanentError(f"local: cannot run {argv[0]}: {exc.strerror}") from None
        duration = time.monotonic() - start
        self.log.write(node="local", step=step, command=shown, duration=round(duration, 3), exit_code=proc.returncode)
        result = Result("local", shown, proc.returncode, redact(proc.stdout or ""), redact(proc.stderr or ""), duration)
        if check and proc.returncode != 0:
            raise RemoteError("local", shown, proc.returncode, result.tail())
        return result

    def http_status(self, url: str, *, timeout: float, step: str | None = None) -> tuple[int | None, str]:
        """GET ``url`` from this machine: (HTTP status, "") or (None, why it got none). Logged as
        node ``local``; a dry run records it instead. Redirects are followed (urllib's default)."""
        import urllib.error
        import urllib.request

        start = time.monotonic()
        status: int | None
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=timeout) as resp:
                status, why = resp.status, ""
        except urllib.error.HTTPError as exc:
            status, why = exc.code, ""
        except (urllib.error.URLError, OSError, ValueError) as exc:
            status, why = None, redact(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}")
        self.log.write(node="local", step=step, command=redact(f"GET {url}"), duration=round(time.monotonic() - start, 3),
                       http_status=status, **({"error": why} if why else {}))
        return status, why

    def write_local(self, path: Path, text: str, *, mode: int = 0o600, step: str | None = None) -> None:
        """Write a file on this machine outside the run directory (the operator's kubeconfig):
        an effect, so it goes through the runner and a dry run records it instead."""
        from drtool.files import atomic_write

        atomic_write(path, text, mode=mode)
        self.log.write(node="local", step=step, command=f"write {path} (mode {mode:04o})", exit_code=0)

    def fan_out(self, nodes: Iterable[Node], fn: Callable[[Node], T], max_workers: int = 32) -> NodeResults[T]:
        """Run ``fn(node)`` for every node in parallel (see ``drtool.remote.fanout``)."""
        return fan_out(nodes, fn, max_workers)
