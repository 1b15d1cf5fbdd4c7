"""Lab nodes: one real OpenSSH sshd per node, each in its own mount, UTS and PID namespace.

A node is ``unshare ... -- /bin/sh LAB/nodes/<name>/init.sh`` started in its own session.
The init script (built by ``drtool.lab.node_init``) gives the node its hostname and its own
``/etc``, ``/var/lib``, ``/root``, ``/home``, ``/usr/local/bin``, ``/mnt``, ``/run`` and ``/tmp``,
then execs sshd, which becomes PID 1 of the node. Nodes share the host's network namespace and
listen on their own loopback address (node i on ``<subnet>.(10+i):2222``).

Why it is run this way (each point was measured):
- the ``unshare`` parent ignores SIGTERM, so a node is stopped by signalling its process group;
- ``--kill-child`` plus the PID namespace end every process of the node, even sessions that
  called setsid, when sshd (PID 1) or the ``unshare`` parent goes;
- all mounts live in the node's mount namespace, so they vanish with it and the host never
  sees one; the lab user exists only in the node's ``/etc`` overlay, never on the host.

Host keys are generated per lab and written to ``LAB/known_hosts`` once, when the node gets
its key, so drtool's strict host-key checking is exercised; ``rotate_host_key`` replaces a key
without touching known_hosts (a reimaged node), ``trust_host_key`` updates the entry.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drtool.errors import DrtoolError, Refused
from drtool.lab import node_init

DEFAULT_SUBNET = "127.0.0"
DEFAULT_SSH_PORT = 2222
DEFAULT_NODE_COUNT = 2
MAX_NODES = 200  # node i listens on <subnet>.(10+i); 210 keeps clear of .255
START_TIMEOUT = 5.0
STOP_TIMEOUT = 3.0
_POLL = 0.005
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_TCP_LISTEN = "0A"


class LabError(DrtoolError):
    """The lab could not do what was asked (a node did not start or stop, a mount was left...)."""


# ---------------------------------------------------------------------------
# Typed data


@dataclass(frozen=True)
class LabNodeSpec:
    """One lab node as lab.json lists it."""

    name: str
    """Hostname inside the node, and the name in lab.json and ssh_config."""
    address: str
    """Loopback address sshd (and later the node's K3s) listens on."""
    ssh_port: int
    """sshd's port on ``address``."""
    dir: Path
    """Host directory with the node's upper dirs, ``bin``, ``mnt``, logs and pid file."""

    @property
    def port(self) -> int:
        """Alias of ``ssh_port``."""
        return self.ssh_port

    def to_json(self) -> dict:
        return {"name": self.name, "address": self.address, "ssh_port": self.ssh_port, "dir": str(self.dir)}

    @classmethod
    def from_json(cls, raw: Mapping) -> LabNodeSpec:
        return cls(str(raw["name"]), str(raw["address"]), int(raw["ssh_port"]), Path(raw["dir"]))


@dataclass(frozen=True)
class NodeStatus:
    """What ``Lab.status`` sees for one node."""

    name: str
    address: str
    ssh_port: int
    running: bool
    """The node's ``unshare`` process is alive."""
    listening: bool
    """Something listens on ``address:ssh_port`` (sshd accepts connections)."""
    pid: int | None
    """Host pid of the ``unshare`` process (also the node's process group id)."""
    sshd_pid: int | None
    """Host pid of the node's sshd listener (PID 1 inside the node)."""


@dataclass(frozen=True)
class LabState:
    """What ``Lab.up`` leaves running, and where a client finds keys and host keys."""

    root: Path
    nodes: tuple[LabNodeSpec, ...]
    key_path: Path
    """Private key of the lab user (``LAB/keys/id_ed25519``)."""
    known_hosts_path: Path
    ssh_config_path: Path
    started: tuple[str, ...] = ()
    """Nodes this call started (the others were already running)."""
    start_seconds: float = 0.0
    """Wall time from the first node's start to the last sshd listening."""


# ---------------------------------------------------------------------------
# Process helpers (host pids)

# Nodes this process started: reaping them here keeps zombies from looking alive.
_CHILDREN: dict[int, subprocess.Popen] = {}
_CHILDREN_LOCK = threading.Lock()


def _proc_stat(pid: int) -> tuple[str, str, int] | None:
    """(comm, state, ppid) of a pid, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may contain spaces and parentheses: it ends at the last ')'.
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    rest = raw[raw.rindex(")") + 2 :].split()
    return comm, rest[0], int(rest[1])


def _alive(pid: int) -> bool:
    with _CHILDREN_LOCK:
        child = _CHILDREN.get(pid)
        if child is not None and child.poll() is not None:
            del _CHILDREN[pid]
            return False
    stat = _proc_stat(pid)
    return stat is not None and stat[1] not in ("Z", "X")


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except (FileNotFoundError, ProcessLookupError):
        return []


def _process_table() -> dict[int, tuple[str, int]]:
    """pid -> (comm, ppid) for every live process on the host."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat is not None and stat[1] != "Z":
                table[int(entry)] = (stat[0], stat[2])
    return table


def _descendants(pid: int, table: Mapping[int, tuple[str, int]]) -> list[int]:
    children: dict[int, list[int]] = {}
    for p, (_, ppid) in table.items():
        children.setdefault(ppid, []).append(p)
    out, todo = [], list(children.get(pid, ()))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def listening_sockets(proc_net_tcp: str) -> set[tuple[str, int]]:
    """Parse ``/proc/net/tcp`` text into the set of (IPv4 address, port) in LISTEN state."""
    out = set()
    for line in proc_net_tcp.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 4 or parts[3] != _TCP_LISTEN:
            continue
        addr_hex, port_hex = parts[1].split(":")
        # The kernel prints the address as a host-order u32; this host is little-endian Linux.
        address = socket.inet_ntoa(struct.pack("<I", int(addr_hex, 16)))
        out.add((address, int(port_hex, 16)))
    return out


def _listening() -> set[tuple[str, int]]:
    # Reading the socket table, rather than connecting, leaves no half-open sessions in sshd's log.
    return listening_sockets(Path("/proc/net/tcp").read_text())


# ---------------------------------------------------------------------------
# Keys


def _write_private(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _write_text(path: Path, text: str, mode: int = 0o644) -> None:
    _write_private(path, text.encode(), mode)


def generate_ed25519(private_path: Path, comment: str) -> str:
    """Write an OpenSSH ed25519 key pair (``private_path`` 0600, ``.pub`` 0644); return the public line."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    line = f"{public.decode()} {comment}\n"
    private_path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(private_path, private, 0o600)
    _write_text(private_path.with_name(private_path.name + ".pub"), line)
    return line


# ---------------------------------------------------------------------------
# The lab


def _default_repo() -> Path:
    return Path(__file__).resolve().parents[2]


class Lab:
    """The lab's nodes under one lab directory.

    ``Lab(root)`` only reads and writes files; ``up`` starts nodes. Several ``Lab`` objects
    (or processes) may look at the same directory: the state is lab.json plus pid files,
    and changes take a file lock.
    """

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        repo: Path | str | None = None,
        python: Path | str | None = None,
        subnet: str = DEFAULT_SUBNET,
        ssh_port: int = DEFAULT_SSH_PORT,
    ):
        self.repo = Path(repo).resolve() if repo else _default_repo()
        self.root = Path(root).resolve() if root else self.repo / ".lab"
        venv_python = self.repo / ".venv" / "bin" / "python"
        self.python = Path(python) if python else (venv_python if venv_python.exists() else Path(sys.executable))
        if not re.fullmatch(r"127\.\d{1,3}\.\d{1,3}", subnet):
            raise ValueError(f"subnet {subnet!r}: the lab only uses loopback, e.g. 127.0.0")
        self.subnet = subnet
        self.ssh_port = ssh_port

    # -- paths ---------------------------------------------------------------

    @property
    def lab_json_path(self) -> Path:
        return self.root / "lab.json"

    @property
    def key_path(self) -> Path:
        """The lab user's private key."""
        return self.root / "keys" / "id_ed25519"

    @property
    def known_hosts_path(self) -> Path:
        return self.root / "known_hosts"

    @property
    def ssh_config_path(self) -> Path:
        """An ssh_config with one Host alias per node (``ssh -F <this> node1``)."""
        return self.root / "ssh_config"

    def host_key_path(self, name: str) -> Path:
        return self.root / "hostkeys" / name / "ssh_host_ed25519_key"

    def node_dir(self, name: str) -> Path:
        return self.root / "nodes" / name

    @property
    def nodes(self) -> tuple[LabNodeSpec, ...]:
        """Nodes lab.json lists (running or not)."""
        return tuple(LabNodeSpec.from_json(n) for n in self._read_lab_json().get("nodes", ()))

    def node(self, name: str) -> LabNodeSpec:
        """The node called ``name``; LabError if the lab has none."""
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise LabError(f"{self.root}: the lab has no node {name!r}")

    # -- lab.json --------------------------------------------------------------

    def _read_lab_json(self) -> dict:
        try:
            return json.loads(self.lab_json_path.read_text())
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError as exc:
            raise LabError(f"{self.lab_json_path}: not valid JSON ({exc})") from exc

    def _write_lab_json(self, nodes: Iterable[LabNodeSpec]) -> None:
        # Merge: lab.up's other parts own keys such as "gitops" and "scenario".
        data = self._read_lab_json()
        data.update(
            root=str(self.root),
            repo=str(self.repo),
            python=str(self.python),
            nodes=[n.to_json() for n in nodes],
        )
        _write_text(self.lab_json_path, json.dumps(data, indent=2) + "\n")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".nodes.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # -- prerequisites ---------------------------------------------------------

    @staticmethod
    def _tool(name: str, package: str) -> str:
        found = shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
        if not found:
            raise Refused(f"the lab needs `{name}`: install the apt package {package}")
        return found

    def check_prerequisites(self) -> dict[str, str]:
        """Raise Refused unless the lab can run here; return the tools' paths."""
        if os.geteuid() != 0:
            raise Refused("the lab needs root (it creates mount, UTS and PID namespaces): run it as root")
        return {
            "sshd": self._tool("sshd", "openssh-server"),
            "unshare": self._tool("unshare", "util-linux"),
            "mount": self._tool("mount", "mount"),
            "useradd": self._tool("useradd", "passwd"),
            "sudo": self._tool("sudo", "sudo"),
        }

    # -- planning --------------------------------------------------------------

    def _plan(self, existing: Sequence[LabNodeSpec], n: int | None, names: Sequence[str] | None) -> list[str]:
        if names:
            wanted = list(dict.fromkeys(names))
        elif n is not None:
            if not 1 <= n <= MAX_NODES:
                raise LabError(f"the lab runs 1 to {MAX_NODES} nodes, not {n}")
            wanted = [f"node{i}" for i in range(1, n + 1)]
        else:
            wanted = [s.name for s in existing] or [f"node{i}" for i in range(1, DEFAULT_NODE_COUNT + 1)]
        for name in wanted:
            if not _NAME.match(name):
                raise LabError(f"{name!r}: a node name must be a lowercase hostname label")
        return wanted

    def _specs(self, existing: Sequence[LabNodeSpec], wanted: Sequence[str]) -> list[LabNodeSpec]:
        """Existing specs keep their address; new ones get node i's address, or the next free one."""
        specs = {s.name: s for s in existing}
        used = {int(s.address.rsplit(".", 1)[1]) - 10 for s in existing}
        for name in wanted:
            if name in specs:
                continue
            m = re.fullmatch(r"node(\d+)", name)
            index = int(m.group(1)) if m and int(m.group(1)) not in used else None
            if index is None:
                index = next(i for i in range(1, MAX_NODES + 2) if i not in used)
            if not 1 <= index <= MAX_NODES:
                raise LabError(f"{name}: no loopback address left (at most {MAX_NODES} nodes)")
            used.add(index)
            specs[name] = LabNodeSpec(name, f"{self.subnet}.{10 + index}", self.ssh_port, self.node_dir(name))
        return sorted(specs.values(), key=lambda s: tuple(int(x) for x in s.address.split(".")))

    # -- files -------------------------------------------------------------------

    def _ensure_user_key(self) -> None:
        if not self.key_path.exists() or not self.key_path.with_name("id_ed25519.pub").exists():
            generate_ed25519(self.key_path, "lab@drtool-lab")

    def _known_hosts_entries(self) -> list[str]:
        try:
            return self.known_hosts_path.read_text().splitlines(keepends=True)
        except FileNotFoundError:
            return []

    def _set_known_host(self, spec: LabNodeSpec, replace: bool) -> None:
        """Add the node's host key to known_hosts; an existing entry is kept unless ``replace``."""
        host = f"[{spec.address}]:{spec.ssh_port}"
        lines = self._known_hosts_entries()
        mine = [ln for ln in lines if ln.split(" ", 1)[0] == host]
        if mine and not replace:
            return
        public = self.host_key_path(spec.name).with_name("ssh_host_ed25519_key.pub").read_text()
        kept = [ln for ln in lines if ln.split(" ", 1)[0] != host]
        entry = node_init.known_hosts_line(spec.address, spec.ssh_port, public)
        _write_text(self.known_hosts_path, "".join(kept) + entry)

    def _ensure_host_key(self, spec: LabNodeSpec) -> None:
        path = self.host_key_path(spec.name)
        if not path.exists():
            generate_ed25519(path, f"root@{spec.name}")
        self._set_known_host(spec, replace=False)

    def _write_ssh_config(self, specs: Sequence[LabNodeSpec]) -> None:
        text = "# Lab nodes (generated by drtool.lab.nodes): ssh -F <this file> node1\n\n" + "".join(
            node_init.ssh_config_block(s.name, s.address, s.ssh_port, str(self.key_path), str(self.known_hosts_path))
            for s in specs
        )
        _write_text(self.ssh_config_path, text)

    def _keep_visible(self) -> tuple[str, ...]:
        # The node must see, live, the lab dir (sshd config, keys, artifacts, lab.json), the repo
        # (the venv) and the Python install the venv points at, wherever they live.
        candidates = [str(self.root), str(self.repo), str(Path(os.path.realpath(self.python)).parents[1])]
        return node_init.paths_to_keep([os.path.realpath(c) for c in candidates])

    def _prepare_node(self, spec: LabNodeSpec, sshd: str, extra_bin: Mapping[str, str]) -> Path:
        d = spec.dir
        for _, upper in node_init.OVERLAYS:
            (d / f"{upper}-upper").mkdir(parents=True, exist_ok=True)
            (d / "work" / upper).mkdir(parents=True, exist_ok=True)
        for sub in ("bin", "mnt"):
            (d / sub).mkdir(exist_ok=True)
        machine_id = d / "etc-upper" / "machine-id"
        if not machine_id.exists():
            _write_text(machine_id, uuid.uuid4().hex + "\n", 0o444)
        for prog, text in extra_bin.items():
            if "/" in prog or prog in ("", ".", ".."):
                raise LabError(f"extra_bin: {prog!r} is not a program name")
            _write_text(d / "bin" / prog, text, 0o755)
        config = d / "sshd_config"
        _write_text(
            config,
            node_init.sshd_config(spec.address, spec.ssh_port, str(self.host_key_path(spec.name))),
        )
        init = d / "init.sh"
        paths = node_init.InitPaths(
            str(d), str(config), sshd, self.key_path.with_name("id_ed25519.pub").read_text(), self._keep_visible()
        )
        _write_text(init, node_init.init_script(spec.name, spec.address, paths), 0o755)
        return init

    # -- process control -----------------------------------------------------------

    def _pid(self, spec: LabNodeSpec) -> int | None:
        """The node's live ``unshare`` pid from its pid file, checked against its command line."""
        try:
            pid = int((spec.dir / "pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if _alive(pid) and str(spec.dir / "init.sh") in _cmdline(pid):
            return pid
        return None

    @staticmethod
    def _sshd_pid(pid: int) -> int | None:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            return None
        return int(children[0]) if children else None

    def _spawn(self, spec: LabNodeSpec, init: Path, unshare: str) -> subprocess.Popen:
        log = open(spec.dir / "sshd.log", "ab")
        try:
            log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')} starting {spec.name}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                [unshare, "--mount", "--uts", "--pid", "--fork", "--kill-child", "--mount-proc",
                 "--propagation", "private", "--", "/bin/sh", str(init)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/",
                # A clean environment: nothing of the caller's (tokens included) reaches the node.
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
                start_new_session=True,
            )
        finally:
            log.close()
        with _CHILDREN_LOCK:
            _CHILDREN[proc.pid] = proc
        _write_text(spec.dir / "pid", f"{proc.pid}\n")
        return proc

    def _log_tail(self, spec: LabNodeSpec, lines: int = 8) -> str:
        try:
            return "\n".join((spec.dir / "sshd.log").read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def _wait_listening(self, specs: Sequence[LabNodeSpec], pids: Mapping[str, int], timeout: float) -> None:
        pending = {s.name: s for s in specs}
        deadline = time.monotonic() + timeout
        while pending:
            up = _listening()
            for name, spec in list(pending.items()):
                if (spec.address, spec.ssh_port) in up:
                    del pending[name]
                elif not _alive(pids[name]):
                    raise LabError(f"lab node {name} exited while starting:\n{self._log_tail(spec)}")
            if not pending:
                return
            if time.monotonic() > deadline:
                names = ", ".join(sorted(pending))
                first = next(iter(pending.values()))
                raise LabError(
                    f"lab nodes did not listen within {timeout:g}s: {names}\n{self._log_tail(first)}"
                )
            time.sleep(_POLL)

    def _stop_pids(self, pids: Mapping[str, int], timeout: float = STOP_TIMEOUT) -> None:
        """Signal each node's process group, then make sure none of its processes is left.

        SIGTERM reaches sshd (the ``unshare`` parent ignores it); sshd is the node's PID 1, so
        its exit ends every process inside, sessions that left the group included. SIGKILL
        follows if that takes longer than ``timeout``.
        """
        if not pids:
            return
        table = _process_table()
        inside = {name: [pid, *_descendants(pid, table)] for name, pid in pids.items()}

        def left() -> list[str]:
            return sorted(name for name, ps in inside.items() if any(_alive(p) for p in ps))

        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids.values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, sig)
            deadline = time.monotonic() + timeout
            while left() and time.monotonic() < deadline:
                time.sleep(_POLL)
            if not left():
                return
        raise LabError(f"lab nodes still have processes after SIGKILL: {', '.join(left())}")

    # -- public API ----------------------------------------------------------------------

    def up(
        self,
        n: int | None = None,
        names: Sequence[str] | None = None,
        *,
        extra_bin: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> LabState:
        """Start the lab's nodes (``node1..nodeN``, or ``names``); running nodes are left running.

        With neither ``n`` nor ``names``, the nodes lab.json lists (or two) are started.
        ``extra_bin`` maps a program name to its text, written 0755 into every started or
        running node's ``/usr/local/bin``. Returns once every wanted sshd listens, or raises
        LabError naming the nodes that did not (with their log tail) after ``timeout`` seconds
        (default: 5 s plus 0.1 s per node started, for a busy machine).
        """
        tools = self.check_prerequisites()
        with self._locked():
            existing = self.nodes
            wanted = self._plan(existing, n, names)
            specs = self._specs(existing, wanted)
            by_name = {s.name: s for s in specs}
            self._ensure_user_key()
            inits = {}
            for name in wanted:
                self._ensure_host_key(by_name[name])
                inits[name] = self._prepare_node(by_name[name], tools["sshd"], extra_bin or {})
            self._write_lab_json(specs)
            self._write_ssh_config(specs)

            pids = {name: self._pid(by_name[name]) for name in wanted}
            to_start = [name for name in wanted if pids[name] is None]
            # Readiness is judged by the socket table, so a port someone else holds must be caught here.
            listening = _listening()
            busy = [by_name[name] for name in to_start if (by_name[name].address, by_name[name].ssh_port) in listening]
            if busy:
                where = ", ".join(f"{s.name} ({s.address}:{s.ssh_port})" for s in busy)
                raise LabError(f"already in use, another lab or sshd on this subnet? {where}")
            if timeout is None:
                timeout = START_TIMEOUT + 0.1 * len(to_start)
            t0 = time.monotonic()
            for name in to_start:
                pids[name] = self._spawn(by_name[name], inits[name], tools["unshare"]).pid
            try:
                self._wait_listening([by_name[w] for w in wanted], pids, timeout)
            except LabError:
                self._stop_pids({name: pids[name] for name in to_start})
                raise
            elapsed = time.monotonic() - t0
        return LabState(
            root=self.root, nodes=tuple(specs), key_path=self.key_path,
            known_hosts_path=self.known_hosts_path, ssh_config_path=self.ssh_config_path,
            started=tuple(to_start), start_seconds=elapsed,
        )

    def state(self) -> LabState:
        """The lab as lab.json describes it (nothing is started)."""
        return LabState(self.root, self.nodes, self.key_path, self.known_hosts_path, self.ssh_config_path)

    def down(self, purge: bool = False) -> None:
        """Stop every node; check no node process and no mount under the lab dir is left.

        ``purge`` also removes the nodes' files (their /etc, /var/lib, /mnt... data), host keys,
        known_hosts, ssh_config and the node list in lab.json; other lab files are left alone.
        """
        if not self.root.exists():
            return
        with self._locked():
            specs = list(self.nodes)
            if (self.root / "nodes").is_dir():
                listed = {s.name for s in specs}
                specs += [
                    LabNodeSpec(d.name, "", 0, d) for d in sorted((self.root / "nodes").iterdir())
                    if d.is_dir() and d.name not in listed
                ]
            pids = {s.name: p for s in specs if (p := self._pid(s)) is not None}
            self._stop_pids(pids)
            mounts = self.host_mounts()
            if mounts:
                raise LabError(f"mounts left under {self.root} on the host: {', '.join(mounts)}")
            if purge:
                for path in (self.root / "nodes", self.root / "hostkeys"):
                    if path.exists():
                        shutil.rmtree(path)
                for path in (self.known_hosts_path, self.ssh_config_path):
                    path.unlink(missing_ok=True)
                data = self._read_lab_json()
                if data:
                    data.pop("nodes", None)
                    _write_text(self.lab_json_path, json.dumps(data, indent=2) + "\n")

    def host_mounts(self) -> list[str]:
        """Mount points under the lab dir in the host's (this process's) mount table; normally none."""
        prefix = str(self.root).rstrip("/") + "/"
        found = []
        for line in Path("/proc/self/mounts").read_text().splitlines():
            point = line.split()[1].replace("\\040", " ")
            if point == str(self.root) or point.startswith(prefix):
                found.append(point)
        return found

    def status(self) -> list[NodeStatus]:
        """One entry per node lab.json lists: is it running, does its sshd listen, its pids."""
        up = _listening()
        out = []
        for spec in self.nodes:
            pid = self._pid(spec)
            out.append(NodeStatus(
                spec.name, spec.address, spec.ssh_port, running=pid is not None,
                listening=(spec.address, spec.ssh_port) in up,
                pid=pid, sshd_pid=self._sshd_pid(pid) if pid else None,
            ))
        return out

    def node_pids(self, name: str) -> list[int]:
        """Host pids of every process of a running node: ``unshare``, sshd, sessions, commands."""
        pid = self._pid(self.node(name))
        return [pid, *_descendants(pid, _process_table())] if pid else []

    def stop_node(self, name: str) -> None:
        """Stop one node (every process in it); its port then refuses. Files are kept."""
        spec = self.node(name)
        with self._locked():
            pid = self._pid(spec)
            if pid is not None:
                self._stop_pids({name: pid})

    def start_node(self, name: str, timeout: float | None = None) -> None:
        """Start one node lab.json lists (no-op when running); returns once its sshd listens."""
        self.node(name)
        self.up(names=[name], timeout=timeout)

    def restart_node(self, name: str) -> None:
        """Stop then start a node, as a reboot would."""
        self.stop_node(name)
        self.start_node(name)

    def rotate_host_key(self, name: str) -> None:
        """Give the node a new host key (a reimaged node) and restart it if it runs.

        known_hosts is NOT updated: a strict client now sees a changed key.
        """
        spec = self.node(name)
        running = self._pid(spec) is not None
        generate_ed25519(self.host_key_path(name), f"root@{name}")
        if running:
            self.restart_node(name)

    def trust_host_key(self, name: str) -> None:
        """Write the node's current host key into known_hosts (replacing the old entry)."""
        with self._locked():
            self._set_known_host(self.node(name), replace=True)

    def node_root(self, name: str) -> Path:
        """Host path of the node's ``/`` as the node sees it (``/proc/<sshd pid>/root``); node must run."""
        spec = self.node(name)
        pid = self._pid(spec)
        sshd = self._sshd_pid(pid) if pid else None
        if sshd is None:
            raise LabError(f"lab node {name} is not running: start it to see its files")
        return Path(f"/proc/{sshd}/root")

    def set_sudo_password_required(self, name: str, required: bool) -> None:
        """Make ``sudo`` on the node ask for a password (a fault) or not; survives restarts."""
        spec = self.node(name)
        text = node_init.sudoers_rule(password_required=required)
        if self._pid(spec) is not None:
            # Through the node's own view: its /etc is an overlay the host must not write under.
            target = self.node_root(name) / node_init.SUDOERS_DROPIN.lstrip("/")
        else:
            target = spec.dir / "etc-upper" / "sudoers.d" / "lab"
            target.parent.mkdir(parents=True, exist_ok=True)
        _write_text(target, text, 0o440)

    def drop_ssh_sessions(self, name: str) -> int:
        """Kill the node's sshd session processes (not the listener): open connections drop.

        Returns how many processes were killed. Commands those sessions ran are left to notice
        their lost connection, as after a network cut.
        """
        spec = self.node(name)
        pid = self._pid(spec)
        listener = self._sshd_pid(pid) if pid else None
        if listener is None:
            raise LabError(f"lab node {name} is not running")
        table = _process_table()
        victims = [p for p in _descendants(listener, table) if table[p][0] == "sshd"]
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        return len(victims)
