"""Which rebuild phases may run at the same time, and the milestones they wait on.

A rebuild's phases are listed in order (``drtool.pipeline.PHASES``), but not every phase needs
the one listed before it: the agents' artifacts can be uploaded while the server installs, and
the secrets and ``flux bootstrap`` need only the API, not the agents. ``AFTER`` says what each
phase needs; the pipeline starts a phase as soon as those have ended well. Facts it rests on:

- An agent can only join once the server's supervisor port (the API port, 6443) answers: the
  K3s agent validates its token against it, retrying every 2 s, then asks it for its
  configuration, and only then starts containerd, which imports ``agent/images``
  (k3s-io/k3s pkg/agent/run.go ``Run`` → ``createProxyAndValidateToken`` → ``run`` →
  ``config.Get`` → ``startCRI``). So ``join_agents`` prepares each agent (artifacts, K3s
  config files, kept images) alongside ``install_servers``, then waits for the milestone
  ``SERVER_API`` before running the install script: joining sooner gains nothing and leaves
  the agent in a retry loop.
- ``flux bootstrap`` needs Git and the Kubernetes API only (fluxcd/flux2
  pkg/bootstrap/bootstrap_plain_git.go: ReconcileComponents and ReconcileSyncConfig apply with
  the kubeconfig's REST client, ReportKustomizationHealth and ReportComponentsHealth poll through
  it); the Flux controllers are scheduled onto whatever node turns Ready.
  So ``restore_secrets`` and ``bootstrap`` follow ``kubeconfig`` while the agents still join.
- ``nodes_ready`` judges every inventory node: it waits for ``join_agents``, and ``converge``
  waits for ``nodes_ready`` and ``bootstrap`` (readiness is judged with every node in).

A phase that is not in ``AFTER`` (a test's or a runbook's own) is a barrier: it waits for
everything listed before it, and everything after it waits for it.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Iterable, Sequence

from drtool.errors import Blocked

#: What each phase needs to have ended well before it starts (phase names).
AFTER: dict[str, tuple[str, ...]] = {
    "preflight": (),
    "backup": ("preflight",),
    "teardown": ("backup",),
    "install_servers": ("teardown",),
    "join_agents": ("teardown",),          # its installs wait for SERVER_API inside the phase
    "kubeconfig": ("install_servers",),
    "restore_secrets": ("kubeconfig",),
    "bootstrap": ("restore_secrets",),
    "nodes_ready": ("join_agents", "kubeconfig"),
    "converge": ("nodes_ready", "bootstrap"),
}

SERVER_API = "server_api"
"""Milestone: the first server's API (and supervisor) answers /readyz."""

#: Milestones reached inside a phase, and the phase that reaches them.
MILESTONES: dict[str, str] = {SERVER_API: "install_servers"}

#: What a phase waits for inside itself, for the dry run's schedule line.
WAITS_INSIDE: dict[str, str] = {
    "join_agents": "each agent's install starts once the first server's API answers (install_servers)",
}


def dependencies(names: Sequence[str]) -> dict[str, set[str]]:
    """``{phase: phases of ``names`` it must wait for}`` for phases run in the order given.

    A need that is not in ``names`` (done in an earlier run, or sliced off by ``--from``) is
    replaced by what it needs in turn, so ``[preflight, install_servers]`` still installs only
    after preflight; needs are only ever earlier in the list."""
    out: dict[str, set[str]] = {}
    barriers: list[str] = []
    for i, name in enumerate(names):
        earlier = set(names[:i])
        if name not in AFTER:
            out[name] = earlier
            barriers.append(name)
            continue

        def resolve(phase: str, seen: frozenset[str]) -> set[str]:
            found: set[str] = set()
            for need in AFTER.get(phase, ()):
                if need in seen:
                    continue
                found |= {need} if need in earlier else resolve(need, seen | {need})
            return found

        out[name] = resolve(name, frozenset({name})) | set(barriers)
    return out


def alongside(names: Sequence[str]) -> dict[str, list[str]]:
    """``{phase: phases that may run at the same time}`` (neither needs the other)."""
    deps = dependencies(names)
    before: dict[str, set[str]] = {}
    for name in names:                      # transitive needs, in list order
        before[name] = set().union(*[{d} | before[d] for d in deps[name]]) if deps[name] else set()
    return {a: [b for b in names if b != a and b not in before[a] and a not in before[b]] for a in names}


def schedule_note(name: str, names: Sequence[str]) -> str | None:
    """One line for the dry run: what ``name`` starts after and runs alongside (None when plain)."""
    deps = dependencies(names)[name]
    along = alongside(names)[name]
    if not along and name not in WAITS_INSIDE:
        return None
    text = f"starts after {', '.join(d for d in names if d in deps) or 'nothing'}"
    if along:
        text += f"; runs alongside {', '.join(along)}"
    if name in WAITS_INSIDE and "install_servers" in names:
        text += f"; {WAITS_INSIDE[name]}"
    return text


class PhaseGates:
    """Milestones of one pipeline run that overlapped phases wait on (thread-safe).

    Only phases scheduled in this run count: waiting for a milestone whose phase is not part
    of it (done in an earlier run of a resumed one, or before ``--from``) returns at once."""

    def __init__(self, scheduled: Iterable[str]):
        self.scheduled = set(scheduled)
        self._cond = threading.Condition()
        self._reached: set[str] = set()
        self._ended: dict[str, str] = {}

    def needs_wait(self, milestone: str) -> bool:
        with self._cond:
            return MILESTONES.get(milestone, milestone) in self.scheduled and milestone not in self._reached

    def reach(self, milestone: str) -> None:
        with self._cond:
            self._reached.add(milestone)
            self._cond.notify_all()

    def phase_ended(self, phase: str, outcome: str) -> None:
        """A phase ended: a good end is its own milestone; any end releases waiters of its milestones."""
        with self._cond:
            self._ended[phase] = outcome
            if outcome in ("ok", "noop", "skipped"):
                self._reached.add(phase)
            self._cond.notify_all()

    def wait(self, milestone: str, check_stop: Callable[[], None], bound_s: float) -> None:
        """Block until ``milestone`` is reached; raise ``Blocked`` when its phase ended without it
        or after ``bound_s`` seconds; ``check_stop`` (raising on SIGINT/SIGTERM) is called meanwhile."""
        owner = MILESTONES.get(milestone, milestone)
        end = time.monotonic() + bound_s
        with self._cond:
            while True:
                if milestone in self._reached or owner not in self.scheduled:
                    return
                if owner in self._ended:
                    raise Blocked(f"not started: {owner} {self._ended[owner]} before {milestone.replace('_', ' ')}")
                left = end - time.monotonic()
                if left <= 0:
                    raise Blocked(f"not started: {owner} did not reach {milestone.replace('_', ' ')} "
                                  f"within {bound_s:g}s")
                self._cond.wait(min(0.2, left))
                check_stop()
