"""What every phase receives: the inventory, the runner, the run and its options.

Phases talk to nodes only through ``ctx.runner`` and record per-node step times
through ``ctx.step``; long waits poll ``ctx.check_stop()`` so SIGINT/SIGTERM
stops the run at a safe point.
"""
from __future__ import annotations

import os
import secrets as pysecrets
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from drtool.errors import BadInput, Interrupted
from drtool.inventory import Inventory, Node
from drtool.remote.runner import Runner
from drtool.run import Run
from drtool.secret import Secret

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from drtool.phases.overlap import PhaseGates


_TOKEN_LOCK = threading.Lock()


@dataclass(frozen=True)
class Options:
    yes: bool = False
    dry_run: bool = False
    skip_backup: bool = False
    merge_kubeconfig: bool = False
    keep_waiting: bool = False
    quiet: bool = False
    accept_new_host_keys: bool = False
    trigger: str = "manual"
    discard_volume_data: bool = False
    """Wipe even when local-path volumes under the data dir hold data that was not archived."""
    accept: tuple[str, ...] = ()
    """GitOps-check finding ids the operator accepted: a blocker among them does not stop the run."""


class RunProgress:
    """Live progress lines (rich); silent with --quiet."""

    def __init__(self, quiet: bool = False):
        from rich.console import Console

        self.console = Console(quiet=quiet, highlight=False, soft_wrap=True)
        self.t0 = time.monotonic()
        self._lock = threading.Lock()

    def _stamp(self) -> str:
        return f"[dim]{time.monotonic() - self.t0:7.1f}s[/]"

    def print(self, text: str) -> None:
        with self._lock:
            self.console.print(f"{self._stamp()} {text}")

    def phase_start(self, name: str, alongside: tuple[str, ...] = ()) -> None:
        self.print(f"[bold]▶ {name}[/]" + (f" (alongside {', '.join(alongside)})" if alongside else ""))

    def phase_end(self, name: str, outcome: str, duration: float, message: str = "") -> None:
        colour = {"ok": "green", "noop": "green", "skipped": "yellow", "failed": "red", "interrupted": "red"}.get(outcome, "white")
        self.print(f"[{colour}]{'✔' if outcome in ('ok', 'noop') else '•' if outcome == 'skipped' else '✘'} {name}[/] {outcome} in {duration:.1f}s{(' — ' + message) if message else ''}")

    def step(self, node: str, step: str, duration: float, ok: bool = True, note: str = "") -> None:
        self.print(f"    {node:<12} {step:<18} {'[green]ok[/]' if ok else '[red]failed[/]'} {duration:5.1f}s {note}")


@dataclass
class Context:
    inv: Inventory
    runner: Runner
    run: Run
    options: Options
    progress: RunProgress
    stop: threading.Event = field(default_factory=threading.Event)
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    phase_name: str = ""
    api_factory: Callable[[Path], ApiClient] | None = None
    """Makes the Kubernetes ApiClient for a kubeconfig file instead of reading it: unit tests and
    ``--dry-run`` pass a ``drtool.kube.recording.RecordingApiClient``."""
    gates: "PhaseGates | None" = None
    """The milestones of the pipeline's overlapped phases (None: phases run one by one)."""

    def for_phase(self, name: str) -> "Context":
        """This context for one phase: same run, runner, stop event and gates, its own phase name
        (overlapped phases journal their steps under their own names)."""
        return replace(self, phase_name=name)

    # -- overlap ------------------------------------------------------------
    def reached(self, milestone: str) -> None:
        """Tell phases waiting on ``milestone`` (``drtool.phases.overlap``) that it is reached."""
        if self.gates is not None:
            self.gates.reach(milestone)

    def wait_for(self, milestone: str, node: Node | str = "local") -> None:
        """Wait (bounded by the phase's deadline, stoppable) until another phase of this run
        reaches ``milestone``; the wait is a step of ``node`` in the journal. Returns at once
        when phases run one by one or the milestone's phase is not part of this run."""
        if self.gates is None or not self.gates.needs_wait(milestone):
            return
        from drtool.phases.overlap import MILESTONES

        owner = MILESTONES.get(milestone, milestone)
        # The phase reaching it is bounded by its own deadline (its install, then its wait for
        # the API): twice that is a bound that never cuts a wait that can still end well.
        bound = 2 * self.deadline(owner) if hasattr(self.inv.timeouts, owner) else 600.0
        with self.step(node, f"wait {milestone.replace('_', ' ')}"):
            self.gates.wait(milestone, self.check_stop, bound)

    # -- stopping -----------------------------------------------------------
    def check_stop(self) -> None:
        """Raise Interrupted at a safe point when SIGINT/SIGTERM arrived."""
        if self.stop.is_set():
            raise Interrupted(f"interrupted during {self.phase_name or 'the run'}")

    def sleep(self, seconds: float) -> None:
        """A sleep that wakes up (and stops) on SIGINT/SIGTERM."""
        if self.stop.wait(seconds):
            self.check_stop()

    # -- timing -------------------------------------------------------------
    @contextmanager
    def step(self, node: Node | str, step: str) -> Iterator[None]:
        """Time a per-node step and record it in the journal."""
        name = node if isinstance(node, str) else node.name
        start = time.time()
        code: int | None = 0
        try:
            yield
        except BaseException:
            code = None
            raise
        finally:
            end = time.time()
            self.run.node_step(self.phase_name, name, step, start, end, code)
            self.progress.step(name, step, end - start, ok=code == 0)

    # -- values shared across phases ---------------------------------------
    @property
    def state(self) -> dict:
        return self.run.state

    def cluster_token(self) -> Secret:
        """The K3s token: from the inventory's secret source, or generated once per run (0600)."""
        source = self.inv.k3s.token
        if source is not None and source.token_env:
            value = self.environ.get(source.token_env, "")
            if not value:
                raise BadInput(str(self.inv.path), "k3s.token.token_env", f"{source.token_env} is not set")
            return Secret(value.strip(), "k3s-token")
        if source is not None and source.token_file:
            path = self.inv.resolve(source.token_file)
            assert path is not None  # token_file is set
            try:
                return Secret(path.read_text().strip(), "k3s-token")
            except OSError as exc:
                raise BadInput(str(self.inv.path), "k3s.token.token_file", f"cannot read {path}: {exc.strerror}") from None
        path = self.run.backup_dir / "k3s-token.new"
        with _TOKEN_LOCK:   # overlapped phases (install, join) may both ask first
            if not path.exists():
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(pysecrets.token_hex(32) + "\n")
                self.state["generated_token"] = str(path)
        return Secret(path.read_text().strip(), "k3s-token")

    @property
    def kubeconfig_path(self) -> Path:
        return self.run.dir / "kubeconfig"

    def ensure_kubeconfig(self) -> Path:
        """The run's kubeconfig, fetched from the first server when this run has none yet
        (a run sliced with ``--from bootstrap`` starts after the kubeconfig phase)."""
        if not self.kubeconfig_path.exists():
            self.fetch_kubeconfig()
        return self.kubeconfig_path

    def fetch_kubeconfig(self) -> dict:
        """Fetch k3s.yaml from the first server, point it at the API endpoint, name its context,
        write it 0600 into the run dir; returns the kubeconfig."""
        from drtool.files import atomic_write
        from drtool.kubeconfig import dump, rewrite
        from drtool.remote import k3s

        server = self.inv.servers[0]
        with self.step(server, "fetch kubeconfig"):
            text = self.runner.read(server, k3s.KUBECONFIG, step="kubeconfig")
        cfg = rewrite(text, self.inv.cluster.api_endpoint, self.inv.cluster.context_name)
        atomic_write(self.kubeconfig_path, dump(cfg), mode=0o600)
        self.state["kubeconfig"] = str(self.kubeconfig_path)
        return cfg

    def api_client(self, kubeconfig: Path | None = None) -> ApiClient:
        """A kubernetes ApiClient: for ``kubeconfig`` (its current context) when given, else for the
        rebuilt cluster (the run's kubeconfig, fetched first when this run has none yet)."""
        from drtool.kube.client import api_client_from_kubeconfig

        path = kubeconfig if kubeconfig is not None else self.ensure_kubeconfig()
        if self.api_factory is not None:
            return self.api_factory(path)
        return api_client_from_kubeconfig(str(path), context=None if kubeconfig is not None
                                          else self.inv.cluster.context_name)

    def deadline(self, phase: str) -> float:
        return float(getattr(self.inv.timeouts, phase))
