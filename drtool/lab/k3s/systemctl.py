"""The node-local ``systemctl`` (and ``journalctl``) stand-in.

Lab nodes have no systemd, but the K3s install and uninstall scripts drive services with
``systemctl``. This program is put in each node's ``/usr/local/bin`` (sudo's secure_path
finds it before the real one) and keeps the little state systemd would:

- unit files in ``/etc/systemd/system``; ``enable`` links them into
  ``multi-user.target.wants`` as systemd does;
- a started unit runs detached (its own session), output appended to
  ``/var/log/<unit>.log``, pid and start time in ``/run/lab-systemd/<unit>.pid``;
- ``Type=notify`` units are waited for: the program sends ``READY=1`` to
  ``$NOTIFY_SOCKET`` like K3s does, and a program that exits first fails the start;
- a unit whose process died without ``stop`` shows as ``failed``.

Every wait is bounded: start by the unit's ``TimeoutStartSec`` (capped by
``LAB_SYSTEMCTL_START_TIMEOUT``), stop by ``TimeoutStopSec`` then SIGKILL.
"""
from __future__ import annotations

import datetime as _dt
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from drtool.lab.k3s.rootfs import HOSTNAME_ENV, LOG_DIR, ROOT_ENV, SYSTEMD_DIR, UNIT_STATE_DIR, RootFS
from drtool.lab.k3s.units import Unit, UnitError, parse_env_file, parse_unit, unit_name

WANTS = f"{SYSTEMD_DIR}/multi-user.target.wants"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
START_CAP_ENV = "LAB_SYSTEMCTL_START_TIMEOUT"
DEFAULT_START_CAP = 120.0
POLL = 0.05


class Systemd:
    """The state of one node's services, under ``fs``."""

    def __init__(self, fs: RootFS, out=sys.stdout, err=sys.stderr):
        self.fs, self.out, self.err = fs, out, err

    # ------------------------------------------------------------------ paths & state

    def unit_file(self, name: str) -> Path:
        return self.fs.path(f"{SYSTEMD_DIR}/{name}")

    def state_file(self, name: str, suffix: str) -> Path:
        return self.fs.path(f"{UNIT_STATE_DIR}/{name}.{suffix}")

    def log_file(self, name: str) -> Path:
        return self.fs.path(f"{LOG_DIR}/{name.removesuffix('.service')}.log")

    def load(self, name: str) -> Unit | None:
        path = self.unit_file(name)
        if not path.is_file():
            return None
        return parse_unit(name, path.read_text(encoding="utf-8"))

    def main_pid(self, name: str) -> int | None:
        """The running main process, or None (checks the start time so a reused pid is not ours)."""
        try:
            pid_text, start = self.state_file(name, "pid").read_text().split()
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        stat = _proc_stat(pid)
        if stat is None or stat[0] == "Z" or stat[1] != start:
            return None
        return pid

    def active_state(self, name: str) -> str:
        if self.main_pid(name):
            return "active"
        if self.state_file(name, "pid").exists() or self.state_file(name, "failed").exists():
            return "failed"
        return "inactive"

    def enabled(self, name: str) -> bool:
        return self.fs.path(f"{WANTS}/{name}").is_symlink() or self.fs.path(f"{WANTS}/{name}").exists()

    # ------------------------------------------------------------------ verbs

    def start(self, name: str) -> int:
        unit = self.load(name)
        if unit is None:
            print(f"Failed to start {name}: Unit {name} not found.", file=self.err)
            return 5
        if self.main_pid(name):
            return 0
        self.state_file(name, "failed").unlink(missing_ok=True)
        state_dir = self.fs.path(UNIT_STATE_DIR)
        state_dir.mkdir(parents=True, exist_ok=True)
        env = self._environment(unit)
        notify = None
        if unit.type == "notify":
            # An abstract socket: no path length limit, nothing left behind. Lab nodes share
            # the host's network namespace, hence the random name.
            address = f"lab-systemd-{name}-{os.urandom(8).hex()}"
            notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            notify.bind("\0" + address)
            env["NOTIFY_SOCKET"] = "@" + address
        argv = list(unit.exec_start)
        host_program = self.fs.path(argv[0])
        if host_program.exists():
            argv[0] = str(host_program)
        log_path = self.log_file(name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(log_path, "ab") as log:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        env=env, cwd="/", start_new_session=True, close_fds=True)
        except OSError as exc:
            if notify:
                notify.close()
            self.state_file(name, "failed").write_text(f"exec {exc.strerror}\n")
            print(f"Job for {name} failed because the control process exited with error code.", file=self.err)
            return 1
        stat = _proc_stat(proc.pid)
        self.state_file(name, "pid").write_text(f"{proc.pid} {stat[1] if stat else '0'}\n")
        if notify is None:
            return 0
        try:
            return self._wait_ready(unit, proc, notify)
        finally:
            notify.close()

    def _wait_ready(self, unit: Unit, proc: subprocess.Popen, notify: socket.socket) -> int:
        cap = float(os.environ.get(START_CAP_ENV, DEFAULT_START_CAP))
        limit = min(unit.timeout_start, cap) if unit.timeout_start else cap
        deadline = time.monotonic() + limit
        notify.settimeout(POLL)
        while time.monotonic() < deadline:
            try:
                message = notify.recv(4096).decode(errors="replace")
            except socket.timeout:
                message = ""
            if "READY=1" in message.split("\n"):
                return 0
            code = proc.poll()
            if code is not None:
                self.state_file(unit.name, "failed").write_text(f"exit-code {code}\n")
                print(f"Job for {unit.name} failed because the control process exited with error code.\n"
                      f'See "systemctl status {unit.name}" and "journalctl -xeu {unit.name}" for details.',
                      file=self.err)
                return 1
        print(f"Job for {unit.name} failed because a timeout was exceeded.\n"
              f'See "systemctl status {unit.name}" and "journalctl -xeu {unit.name}" for details.', file=self.err)
        return 1

    def _environment(self, unit: Unit) -> dict[str, str]:
        # systemd starts services with a clean environment, not the caller's.
        env = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8", "INVOCATION_ID": os.urandom(16).hex()}
        # The lab's own knobs (relocated root, test timings) do pass through.
        for key, value in os.environ.items():
            if key in (ROOT_ENV, HOSTNAME_ENV) or key.startswith("LAB_K3S_"):
                env[key] = value
        if self.fs.relocated:
            # Tests: the relocated node's bin dir comes first, as /usr/local/bin does on a node.
            env["PATH"] = f"{self.fs.path('/usr/local/bin')}:{DEFAULT_PATH}"
        for path, optional in unit.environment_files:
            host = self.fs.path(path)
            try:
                env.update(parse_env_file(host.read_text(encoding="utf-8")))
            except OSError:
                if not optional:
                    raise UnitError(f"Failed to load environment files: {path}")
        env.update(dict(unit.environment))
        return env

    def stop(self, name: str, quiet_missing: bool = False) -> int:
        unit = self.load(name)
        if unit is None and not self.state_file(name, "pid").exists():
            if not quiet_missing:
                print(f"Failed to stop {name}: Unit {name} not loaded.", file=self.err)
            return 5
        pid = self.main_pid(name)
        if pid:
            _terminate(pid, unit.timeout_stop if unit and unit.timeout_stop else 10.0)
        self.state_file(name, "pid").unlink(missing_ok=True)
        self.state_file(name, "failed").unlink(missing_ok=True)
        return 0

    def kill(self, name: str, sig: int) -> int:
        pid = self.main_pid(name)
        if pid is None:
            if self.load(name) is None:
                print(f"Failed to kill unit {name}: Unit {name} not loaded.", file=self.err)
                return 5
            return 0
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        return 0

    def enable(self, name: str) -> int:
        if self.load(name) is None:
            print(f"Failed to enable unit: Unit file {name} does not exist.", file=self.err)
            return 1
        link = self.fs.path(f"{WANTS}/{name}")
        if not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)
            link.symlink_to(f"{SYSTEMD_DIR}/{name}")
            print(f"Created symlink {WANTS}/{name} → {SYSTEMD_DIR}/{name}.", file=self.err)
        return 0

    def disable(self, name: str) -> int:
        link = self.fs.path(f"{WANTS}/{name}")
        if link.is_symlink() or link.exists():
            link.unlink()
            print(f"Removed \"{WANTS}/{name}\".", file=self.err)
        elif self.load(name) is None:
            print(f"Failed to disable unit: Unit file {name} does not exist.", file=self.err)
            return 1
        return 0

    def status(self, name: str, lines: int = 10) -> int:
        unit = self.load(name)
        state = self.active_state(name)
        if unit is None and state == "inactive":
            print(f"Unit {name} could not be found.", file=self.err)
            return 4
        desc = unit.description if unit else name
        loaded = (f"loaded ({SYSTEMD_DIR}/{name}; {'enabled' if self.enabled(name) else 'disabled'}; "
                  "preset: enabled)") if unit else "not-found (Reason: Unit not found.)"
        dot = {"active": "●", "failed": "×"}.get(state, "○")
        print(f"{dot} {name} - {desc}", file=self.out)
        print(f"     Loaded: {loaded}", file=self.out)
        pid = self.main_pid(name)
        if state == "active" and pid:
            since = _dt.datetime.fromtimestamp(self.state_file(name, "pid").stat().st_mtime)
            print(f"     Active: active (running) since {since:%a %Y-%m-%d %H:%M:%S}", file=self.out)
            print(f"   Main PID: {pid} ({name.removesuffix('.service')})", file=self.out)
        elif state == "failed":
            print("     Active: failed (Result: exit-code)", file=self.out)
        else:
            print("     Active: inactive (dead)", file=self.out)
        tail = self.journal(name, lines)
        if tail:
            print("", file=self.out)
            for line in tail:
                print(line, file=self.out)
        return 0 if state == "active" else 3

    def journal(self, name: str, lines: int) -> list[str]:
        try:
            text = self.log_file(name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:] if lines else text.splitlines()

    def list_unit_files(self, pattern: str = "") -> int:
        import fnmatch
        directory = self.fs.path(SYSTEMD_DIR)
        names = sorted(p.name for p in directory.glob("*.service")) if directory.is_dir() else []
        if pattern:
            names = [n for n in names if fnmatch.fnmatch(n, pattern) or fnmatch.fnmatch(n, f"{pattern}.service")]
        print(f"{'UNIT FILE':<40}STATE", file=self.out)
        for n in names:
            print(f"{n:<40}{'enabled' if self.enabled(n) else 'disabled'}", file=self.out)
        print(f"\n{len(names)} unit files listed.", file=self.out)
        return 0


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks) from /proc/<pid>/stat, or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], fields[19]


def _terminate(pid: int, grace: float) -> None:
    """SIGTERM the unit's process group, then SIGKILL what is left after ``grace`` seconds."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        stat = _proc_stat(pid)
        if stat is None or stat[0] == "Z":
            return
        time.sleep(POLL)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


_SIGNALS = {name: getattr(signal, name) for name in dir(signal) if name.startswith("SIG") and "_" not in name}


def systemctl_main(argv: list[str]) -> int:
    """``systemctl VERB [UNIT...]``: exit codes as systemctl's (0 ok, 1 failed, 3 not active, 5 not loaded)."""
    sd = Systemd(RootFS.from_env())
    quiet = False
    sig = signal.SIGTERM
    words: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg in ("-q", "--quiet"):
            quiet = True
        elif arg.startswith("--signal=") or arg in ("-s", "--signal"):
            value = arg.partition("=")[2] if "=" in arg else next(it, "TERM")
            sig = _SIGNALS.get(value if value.startswith("SIG") else f"SIG{value}", signal.SIGTERM)
        elif arg.startswith("-"):
            continue                      # --no-pager, --no-block, --now, -l, --full ...: no effect here
        else:
            words.append(arg)
    if not words:
        words = ["list-units"]
    verb, names = words[0], [unit_name(w) for w in words[1:]]
    now = "--now" in argv
    if quiet:
        sd.out = open(os.devnull, "w")
        sd.err = sd.out
    rc = 0
    if verb == "daemon-reload":
        return 0
    if verb in ("list-unit-files", "list-units"):
        return sd.list_unit_files(words[1] if len(words) > 1 else "")
    if not names:
        print("Too few arguments.", file=sys.stderr)
        return 1
    for name in names:
        try:
            if verb == "start":
                rc = max(rc, sd.start(name))
            elif verb == "stop":
                rc = max(rc, sd.stop(name))
            elif verb in ("restart", "try-restart", "reload-or-restart"):
                if verb == "try-restart" and sd.active_state(name) != "active":
                    continue
                sd.stop(name, quiet_missing=True)
                rc = max(rc, sd.start(name))
            elif verb == "enable":
                rc = max(rc, sd.enable(name))
                if now and rc == 0:
                    rc = max(rc, sd.start(name))
            elif verb == "disable":
                rc = max(rc, sd.disable(name))
                if now:
                    sd.stop(name, quiet_missing=True)
            elif verb == "is-active":
                state = sd.active_state(name)
                print(state, file=sd.out)
                rc = max(rc, 0 if state == "active" else 3)
            elif verb == "is-failed":
                state = sd.active_state(name)
                print(state, file=sd.out)
                rc = max(rc, 0 if state == "failed" else 1)
            elif verb == "is-enabled":
                if sd.load(name) is None:
                    print(f"Failed to get unit file state for {name}: No such file or directory", file=sd.err)
                    rc = max(rc, 1)
                else:
                    enabled = sd.enabled(name)
                    print("enabled" if enabled else "disabled", file=sd.out)
                    rc = max(rc, 0 if enabled else 1)
            elif verb == "status":
                rc = max(rc, sd.status(name))
            elif verb == "kill":
                rc = max(rc, sd.kill(name, sig))
            elif verb == "reset-failed":
                sd.state_file(name, "failed").unlink(missing_ok=True)
                if not sd.main_pid(name):
                    sd.state_file(name, "pid").unlink(missing_ok=True)
            elif verb == "show":
                print(f"ActiveState={sd.active_state(name)}", file=sd.out)
                print(f"MainPID={sd.main_pid(name) or 0}", file=sd.out)
                print(f"LoadState={'loaded' if sd.load(name) else 'not-found'}", file=sd.out)
            else:
                print(f"Unknown command verb {verb}.", file=sys.stderr)
                return 1
        except UnitError as exc:
            print(str(exc), file=sys.stderr)
            rc = max(rc, 1)
    return rc


def journalctl_main(argv: list[str]) -> int:
    """``journalctl -u UNIT [-n N]``: the tail of the unit's log file."""
    sd = Systemd(RootFS.from_env())
    units: list[str] = []
    lines = 0
    it = iter(argv)
    for arg in it:
        if arg in ("-u", "--unit"):
            units.append(unit_name(next(it, "")))
        elif arg.startswith("--unit="):
            units.append(unit_name(arg.partition("=")[2]))
        elif arg.startswith("-u") and len(arg) > 2:
            units.append(unit_name(arg[2:]))
        elif arg.startswith("-") and not arg.startswith("--") and arg.endswith("u"):
            units.append(unit_name(next(it, "")))       # combined short flags: -xeu k3s
        elif arg in ("-n", "--lines"):
            value = next(it, "10")
            lines = int(value) if value.isdigit() else 10
        elif arg.startswith("--lines="):
            value = arg.partition("=")[2]
            lines = int(value) if value.isdigit() else 10
        elif arg.startswith("-n") and arg[2:].isdigit():
            lines = int(arg[2:])
    if not units:
        print("-- No entries --")
        return 0
    for name in units:
        for line in sd.journal(name, lines):
            print(line)
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    prog = os.path.basename(prog or sys.argv[0])
    if prog.startswith("journalctl"):
        return journalctl_main(argv)
    return systemctl_main(argv)


if __name__ == "__main__":
    sys.exit(main())
