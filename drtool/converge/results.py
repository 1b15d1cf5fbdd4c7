"""What one wait produced: per-object reports, failures, the result and the live progress view."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from drtool.errors import NotConverged
from drtool.secret import redact

# --- results -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ObjectReport:
    id: str
    kind: str
    namespace: str
    name: str
    first_seen: float | None
    """None for an expected object that never appeared."""
    ready_at: float | None
    state: str
    reason: str
    message: str
    history: tuple[dict, ...]


@dataclass(frozen=True)
class Failure:
    """Why the engine stopped waiting on one object."""

    object: str
    reason: str
    message: str
    events: tuple[str, ...] = ()
    blocks: tuple[str, ...] = ()
    """Ids of the objects waiting on this one, nearest first."""
    chain: str = ""
    """E.g. ``workloads waits on infrastructure which waits on HelmRelease logging/loki``."""

    def describe(self) -> str:
        text = f"{self.object}: {self.reason}: {self.message}"
        return text + (f" ({self.chain})" if self.chain else "")


@dataclass(frozen=True)
class ConvergeResult:
    """The outcome of one wait; times are epoch seconds (wall clock)."""

    converged: bool
    outcome: str
    """``converged``, ``failed`` (fail fast), ``stuck`` (nothing can move any more) or ``deadline``."""
    started: float
    ended: float
    objects: tuple[ObjectReport, ...]
    critical_path: tuple[dict, ...]
    failures: tuple[Failure, ...]
    pending: tuple[str, ...]
    api_requests: dict[str, int]
    stuck_s: float = 0.0
    """For ``stuck``: how long nothing had changed."""
    nudges: tuple[dict, ...] = ()
    explained_path: tuple[dict, ...] = ()
    """``drtool.kube.graph.explain_path`` to the last object Ready (converged runs only):
    ``{"id", "start", "end", "cause", "reason", "via"}`` segments, earliest first."""
    """Reconcile requests sent: ``{"id", "at", "after", "ok"}`` (``after``: the dependencies that
    had just become Ready, or ``bootstrap`` for a source)."""

    @property
    def elapsed_s(self) -> float:
        return self.ended - self.started

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (the report's ``converge`` section)."""
        d = asdict(self)
        d["elapsed_s"] = round(self.elapsed_s, 3)
        d["failures"] = [{**f, "events": list(f["events"]), "blocks": list(f["blocks"])} for f in d["failures"]]
        d["objects"] = [{**o, "history": list(o["history"])} for o in d["objects"]]
        d["critical_path"] = list(d["critical_path"])
        d["pending"] = list(d["pending"])
        d["nudges"] = [{**n, "after": list(n["after"])} for n in d["nudges"]]
        d["explained_path"] = list(d["explained_path"])
        d["nudge_count"] = sum(1 for n in self.nudges if n.get("ok"))
        return d

    def pending_described(self, limit: int = 10) -> list[str]:
        """The first ``limit`` pending ids, each with its reason and message when it has one."""
        why = {o.id: o for o in self.objects}
        out = []
        for pid in self.pending[:limit]:
            o = why.get(pid)
            detail = ": ".join(x for x in (o.reason, o.message[:200]) if x) if o is not None else ""
            out.append(f"{pid} ({detail})" if detail else pid)
        return out

    def summary(self) -> str:
        """One line for the CLI."""
        if self.converged:
            return f"converged in {self.elapsed_s:.1f}s ({len(self.objects)} objects)"
        problems = "; ".join(f.describe() for f in self.failures[:3])
        if self.outcome == "failed":
            return "not converged: " + problems
        if self.outcome == "stuck":
            return (f"not converged: nothing changed for {self.stuck_s:.0f}s and every pending object waits on a "
                    f"kind the API does not serve, which no pending object can install: {problems}")
        more = f" (+{len(self.pending) - 5} more)" if len(self.pending) > 5 else ""
        text = f"not converged after {self.elapsed_s:.0f}s; pending: " + ", ".join(self.pending_described(5)) + more
        return text + (f"; problems: {problems}" if problems else "")

    def raise_for_status(self) -> "ConvergeResult":
        """Return self when converged, else raise ``NotConverged`` with the summary."""
        if not self.converged:
            raise NotConverged(redact(self.summary()))
        return self


@dataclass(frozen=True)
class Progress:
    """A live view for the caller to render."""

    elapsed_s: float
    counts: dict[str, tuple[int, int]]
    """Per kind: (done, counted)."""
    pending: tuple[str, ...]
    """Up to 20 pending ids."""
    problems: tuple[str, ...]
    api_requests: dict[str, int] = field(default_factory=dict)

