"""The timed rebuild report (``drtool.report/v1``): what it holds and how it is computed.

``build_report`` turns a run record (``drtool.run/v1``, see ``record.py``) into the
``report.json`` document. It is a pure function of the record and the time it is asked,
so a report can be rebuilt from an old journal at any time and gives the same answer.
The renderers (Markdown, HTML) and ``compare`` read only the report, never the record:
report.json is the contract, documented field by field in docs/report-schema.md.

Recovery time, the number the verdict is about, runs from the start of the first
destructive phase (``teardown``: before it the old cluster still works) to the moment the
converge phase saw everything Ready. Post-deploy checks run after that and do not count
toward it, but a failing check fails the verdict.
"""
from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from drtool.report.record import PhaseRecord, RunRecord, WaitedObject, parse_record
from drtool.secret import redact

REPORT_SCHEMA = "drtool.report/v1"

#: Phases that destroy the running cluster; recovery time starts when the first one starts.
DESTRUCTIVE_PHASES: tuple[str, ...] = ("teardown",)

Verdict = Literal["pass", "fail", "over-objective", "incomplete"]
#: Run statuses of a pipeline that ran every phase. The pipeline records a run that rebuilt
#: the cluster but missed its objective as ``over-objective``; the verdict judges the objective.
COMPLETED_STATUSES = frozenset({"succeeded", "over-objective"})
ObjectOutcome = Literal["ready", "failed", "pending"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class StepTiming(_Frozen):
    step: str
    started_at: float | None
    ended_at: float | None
    offset_s: float | None
    """Seconds from run start to the step's start."""
    duration_s: float | None
    exit_code: int | None


class PhaseTiming(_Frozen):
    name: str
    outcome: str
    message: str
    started_at: float | None
    ended_at: float | None
    offset_s: float | None
    """Seconds from run start to the phase's start."""
    duration_s: float | None
    """None while the phase has not ended (interrupted runs)."""
    nodes: dict[str, list[StepTiming]] = Field(default_factory=dict)


class HistoryEntry(_Frozen):
    at: float
    t_s: float
    """Seconds since recovery start."""
    state: str
    reason: str
    message: str


class ObjectTiming(_Frozen):
    id: str
    kind: str
    namespace: str
    name: str
    outcome: ObjectOutcome
    state: str
    reason: str
    message: str
    first_seen_at: float | None
    ready_at: float | None
    first_seen_s: float | None
    """Seconds since recovery start when the object was first seen."""
    ready_s: float | None
    """Seconds since recovery start when it became Ready; None if it never did."""
    wait_s: float | None
    """Seconds from first seen to Ready: how slow the object itself was."""
    critical: bool
    """On the critical path."""
    history: list[HistoryEntry] = Field(default_factory=list)


class CriticalStep(_Frozen):
    id: str
    ready_at: float | None
    ready_s: float | None
    waits_on: str | None
    added_s: float | None
    """Seconds between the object it waits on becoming Ready and this one becoming Ready."""


class TimeSegment(_Frozen):
    """One part of the recovery time on the explained critical path."""

    what: str
    """An object id, or ``phase <name>`` for drtool's own phases before convergence."""
    cause: Literal["work", "image_pull", "flux_timer"]
    start_s: float
    """Seconds since recovery start."""
    duration_s: float
    reason: str = ""
    """The object's reason during the segment (e.g. ``DependencyNotReady``)."""
    via: str = ""
    """How the next segment depends on this one: ``ready`` (waited for it to be Ready) or
    ``created`` (it applied the next one); empty for the last and for phases."""


class FailureInfo(_Frozen):
    object: str
    reason: str
    message: str
    events: list[str]
    blocks: list[str]
    chain: str


class PostCheckResult(_Frozen):
    name: str
    ok: bool
    message: str
    duration_s: float | None


class ConvergeSummary(_Frozen):
    converged: bool
    outcome: str
    started_at: float | None
    ended_at: float | None
    duration_s: float | None
    objects_total: int
    objects_ready: int
    objects_failed: int
    nudges: int = 0
    """Reconcile requests accepted by the API (``converge.nudge``)."""


class NudgeInfo(_Frozen):
    id: str
    at: float | None
    t_s: float | None
    """Seconds since recovery start."""
    after: list[str]
    """The dependencies that had just become Ready (``bootstrap`` for a source)."""
    ok: bool
    error: str = ""


class ErrorInfo(_Frozen):
    phase: str | None
    type: str
    message: str
    exit_code: int | None


class PhaseOverlap(_Frozen):
    """Two phases that ran at the same time (``drtool.phases.overlap``)."""

    phase: str
    """The phase that started later."""
    alongside: str
    """The phase it ran alongside (started earlier)."""
    seconds: float
    """How long both ran: time a one-by-one run would have added."""


def phase_overlaps(phases: list[PhaseRecord]) -> list[PhaseOverlap]:
    """Every pair of ended phases whose run times intersect (by more than 10 ms), in start order."""
    done = sorted((p for p in phases if p.started_at is not None and p.ended_at is not None),
                  key=lambda p: p.started_at or 0.0)
    out = []
    for i, later in enumerate(done):
        for earlier in done[:i]:
            shared = min(earlier.ended_at or 0.0, later.ended_at or 0.0) - max(earlier.started_at or 0.0,
                                                                                later.started_at or 0.0)
            if shared > 0.01:
                out.append(PhaseOverlap(phase=later.name, alongside=earlier.name, seconds=round(shared, 3)))
    return out


class Report(_Frozen):
    """report.json; see docs/report-schema.md."""

    schema_: str = Field(REPORT_SCHEMA, alias="schema")
    generated_at: float
    run_id: str
    kind: str
    inventory: str
    cluster: str
    host: str
    trigger: str
    versions: dict[str, str | None]
    git_revision: str | None
    flags: dict[str, Any]
    status: str
    partial: bool
    stopped_at: str | None
    error: ErrorInfo | None
    started_at: float
    ended_at: float | None
    duration_s: float | None
    recovery_start_at: float
    recovery_start_phase: str | None
    """``teardown``, or None when recovery time is counted from the run's start."""
    recovery_end_at: float | None
    recovery_s: float | None
    objective_s: float | None
    objective_margin_s: float | None
    """objective_s - recovery_s: negative when over the objective."""
    verdict: Verdict
    verdict_reason: str
    phases: list[PhaseTiming]
    overlaps: list[PhaseOverlap] = Field(default_factory=list)
    """Phases that ran alongside each other, with the seconds they shared."""
    converge: ConvergeSummary | None
    objects: list[ObjectTiming]
    critical_path: list[CriticalStep]
    failures: list[FailureInfo]
    pending: list[str]
    post_checks: list[PostCheckResult]
    nudges: list[NudgeInfo] = Field(default_factory=list)
    critical_time: list[TimeSegment] = Field(default_factory=list)
    """The recovery time from start to end, along the chain that decided it (earliest first):
    drtool's phases until the first object of the chain appeared, then each object's wait."""
    critical_time_by_cause: dict[str, float] = Field(default_factory=dict)
    """Seconds of ``critical_time`` per cause (``work``, ``image_pull``, ``flux_timer``)."""
    """Reconcile requests the converge phase sent, in order."""
    gitops_check: dict[str, Any] | None = None
    """The preflight GitOps check: findings (with ``accepted``), accepted ids, notes; None when not run."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)


def load_report(report: dict[str, Any]) -> Report:
    """A report.json dict as a typed ``Report`` (what the renderers work from)."""
    return Report.model_validate(report)


FLUX_KINDS = frozenset({"Kustomization", "HelmRelease", "HelmRepository", "GitRepository", "OCIRepository",
                        "HelmChart", "Bucket"})


def select_objects(report: Report, limit: int) -> list[ObjectTiming]:
    """The objects a chart has room for, in first-seen order: all of them when they fit,
    else those on the critical path, then the ones not Ready, then Flux objects, then the
    slowest of the rest."""
    objs = [o for o in report.objects if o.first_seen_at is not None]
    if len(objs) <= limit:
        return objs
    rank = sorted(objs, key=lambda o: (not o.critical, o.outcome == "ready", o.kind not in FLUX_KINDS,
                                       -(o.wait_s or 0), o.id))
    keep = {o.id for o in rank[:limit]}
    return [o for o in objs if o.id in keep]


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _diff(end: float | None, start: float | None) -> float | None:
    return None if end is None or start is None else round(end - start, 3)


def recovery_start(rec: RunRecord) -> tuple[float, str | None]:
    """(epoch seconds, phase name) where recovery time starts: the first destructive phase
    that actually ran, else the run's own start (nothing was destroyed, or a dry run)."""
    for phase in rec.phases:
        if phase.name in DESTRUCTIVE_PHASES and phase.started_at is not None \
                and phase.outcome not in ("skipped", "pending", "noop"):
            return phase.started_at, phase.name
    return rec.started_at, None


class Recovery(_Frozen):
    """Where recovery time starts and ends, and whether it missed the objective."""

    start_at: float
    start_phase: str | None
    end_at: float | None
    """When everything was Ready (a drill: when its post-checks passed); None if never."""
    seconds: float | None
    over_objective: bool


def recovery(rec: RunRecord) -> Recovery:
    """The one recovery-time formula: the pipeline's exit code and the report's verdict both
    come from it, so they cannot disagree near the objective."""
    start_at, start_phase = recovery_start(rec)
    conv = rec.converge
    end_at = conv.ended if conv is not None and conv.converged else None
    # A drill has recovered only once its post-checks pass too.
    post = next((p for p in rec.phases if p.name == "post_checks"), None)
    if end_at is not None and post is not None and rec.kind == "drill":
        end_at = post.ended_at if post.outcome == "ok" else None
    seconds = _diff(end_at, start_at)
    over = rec.objective_s is not None and seconds is not None and seconds > rec.objective_s
    return Recovery(start_at=start_at, start_phase=start_phase, end_at=end_at, seconds=seconds, over_objective=over)


def where_stopped(rec: RunRecord) -> str | None:
    """The phase a run that did not finish stopped in (None for a finished run)."""
    if rec.status in COMPLETED_STATUSES:
        return None
    if rec.stopped_at:
        return rec.stopped_at
    if rec.error and rec.error.phase:
        return rec.error.phase
    for phase in rec.phases:
        if phase.outcome in ("failed", "interrupted"):
            return phase.name
    started = [p for p in rec.phases if p.started_at is not None]
    if started and started[-1].ended_at is None:
        return started[-1].name
    return started[-1].name if started else None


def decide_verdict(rec: RunRecord, rcv: Recovery, stopped_at: str | None) -> tuple[Verdict, str]:
    """The verdict and a one-sentence reason a person can act on.

    - ``incomplete``: the run did not get to judge recovery (still running, interrupted,
      a dry run, or stopped by ``--to`` before convergence);
    - ``fail``: a phase failed, the cluster did not converge, or a post-deploy check failed;
    - ``over-objective``: recovered, but slower than the objective;
    - ``pass``: recovered, within the objective (or no objective was set).
    """
    where = f" in {stopped_at}" if stopped_at else ""
    recovery_s = rcv.seconds
    if rec.status in ("running", "interrupted"):
        word = "still running" if rec.status == "running" else "interrupted"
        return "incomplete", f"run {word}{where}; recovery not measured"
    if rec.status == "failed":
        err = rec.error
        detail = f": {err.type + ': ' if err and err.type else ''}{err.message}" if err and err.message else ""
        return "fail", f"run failed{where}{detail}"
    if rec.status not in COMPLETED_STATUSES:
        return "incomplete", f"run status {rec.status!r}; recovery not measured"
    conv = rec.converge
    if conv is not None and not conv.converged:
        n = len(conv.failures) or len(conv.pending)
        return "fail", f"cluster did not converge ({conv.outcome or 'not ready'}; {n} object(s) not ready)"
    bad = [c.name for c in rec.post_checks if not c.ok]
    if bad:
        return "fail", "post-deploy check(s) failed: " + ", ".join(bad)
    if recovery_s is None:
        if rec.flags.get("dry_run"):
            return "incomplete", "dry run: nothing was changed, recovery not measured"
        return "incomplete", "the run ended before the cluster converged; recovery not measured"
    if rcv.over_objective:
        return "over-objective", f"recovered in {recovery_s:.0f}s, over the {rec.objective_s:.0f}s objective"
    if rec.objective_s is None:
        return "pass", f"recovered in {recovery_s:.0f}s (no objective set)"
    return "pass", f"recovered in {recovery_s:.0f}s, within the {rec.objective_s:.0f}s objective"


def _phase(p: PhaseRecord, t0: float) -> PhaseTiming:
    return PhaseTiming(
        name=p.name, outcome=p.outcome, message=p.message,
        started_at=_r(p.started_at), ended_at=_r(p.ended_at),
        offset_s=_diff(p.started_at, t0), duration_s=_diff(p.ended_at, p.started_at),
        nodes={node: [StepTiming(step=s.step, started_at=_r(s.started_at), ended_at=_r(s.ended_at),
                                 offset_s=_diff(s.started_at, t0), duration_s=_diff(s.ended_at, s.started_at),
                                 exit_code=s.exit_code) for s in steps]
               for node, steps in p.nodes.items()})


def _object(o: WaitedObject, t0: float, failed: set[str], critical: set[str]) -> ObjectTiming:
    if o.ready_at is not None:
        outcome: ObjectOutcome = "ready"
    elif o.id in failed or o.state.lower() == "failed":
        outcome = "failed"
    else:
        outcome = "pending"
    return ObjectTiming(
        id=o.id, kind=o.kind, namespace=o.namespace, name=o.name, outcome=outcome,
        state=o.state, reason=o.reason, message=o.message,
        first_seen_at=_r(o.first_seen), ready_at=_r(o.ready_at),
        first_seen_s=_diff(o.first_seen, t0), ready_s=_diff(o.ready_at, t0),
        wait_s=_diff(o.ready_at, o.first_seen), critical=o.id in critical,
        history=[HistoryEntry(at=_r(h.at), t_s=_diff(h.at, t0), state=h.state, reason=h.reason,
                              message=h.message) for h in o.history])


def _phase_chain(phases, start_at: float, first: float) -> list[PhaseRecord]:
    """The phases that held up ``first``, earliest first: the phase still running closest to it (the
    latest started among equals), then back through whichever phase ended last before each one
    started. Phases that ran alongside
    without holding anything up (an agent's join during the bootstrap) are left out, so
    overlapped phases are not charged twice; one by one, every phase is in the chain."""
    started = [p for p in phases if p.started_at is not None and p.started_at < first]
    if not started:
        return []
    chain = [max(started, key=lambda p: (min(first, p.ended_at if p.ended_at is not None else first),
                                         p.started_at or 0.0))]
    slack = 0.05   # a phase starts a few milliseconds after the one it waited for ended
    while (chain[-1].started_at or 0.0) > start_at:
        begin = chain[-1].started_at or 0.0
        before = [p for p in started if p not in chain and p.ended_at is not None and p.ended_at <= begin + slack]
        if not before:
            break
        chain.append(max(before, key=lambda p: (p.ended_at or 0.0, p.started_at or 0.0)))
    return sorted(chain, key=lambda p: p.started_at or 0.0)


def explain_recovery(rec: RunRecord, start_at: float, end_at: float | None) -> list[TimeSegment]:
    """The recovery time ``[start_at, end_at]`` as segments: the phases up to where the converge
    phase's explained path starts, the path itself, then the converge phase's last check.
    Empty when the run did not converge or recorded no explained path."""
    conv = rec.converge
    if end_at is None or conv is None or not conv.explained_path:
        return []
    path = [s for s in conv.explained_path if s.end > start_at]
    if not path:
        return []
    first = max(path[0].start, start_at)
    out: list[TimeSegment] = []

    def add(what: str, cause: Any, a: float, b: float, reason: str = "", via: str = "") -> None:
        if b - a > 0.0005:
            out.append(TimeSegment(what=what, cause=cause, start_s=round(a - start_at, 3),
                                   duration_s=round(b - a, 3), reason=reason, via=via))

    at = start_at
    for p in _phase_chain(rec.phases, start_at, first):
        a, b = max(p.started_at or 0.0, at), min(p.ended_at if p.ended_at is not None else first, first)
        if b <= a:
            continue
        add("between phases", "work", at, a)
        add(f"phase {p.name}", "work", a, b)
        at = b
    add("between phases", "work", at, first)
    for s in path:
        add(s.id, s.cause if s.cause in ("work", "image_pull", "flux_timer") else "work",
            max(s.start, start_at), min(s.end, end_at), s.reason, s.via)
    add("after the last object was Ready (final checks)", "work", min(path[-1].end, end_at), end_at)
    return out


def _by_cause(segments: list[TimeSegment]) -> dict[str, float]:
    totals = {"work": 0.0, "image_pull": 0.0, "flux_timer": 0.0}
    for s in segments:
        totals[s.cause] = round(totals[s.cause] + s.duration_s, 3)
    return totals


def _redact_tree(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_tree(v) for v in value]
    return value


def build_report(record: dict[str, Any], *, now: float | None = None) -> dict[str, Any]:
    """The ``report.json`` content (schema ``drtool.report/v1``) for a run record.

    Works for any stage of a run: a record of a run still going or interrupted gives
    ``partial: true`` and ``stopped_at``. ``now`` (epoch seconds, default the current
    time) is recorded as ``generated_at``. Every string is passed through the redactor.
    Raises ``BadInput`` if the record is not a ``drtool.run/v1`` record.
    """
    rec = parse_record(record)
    generated = time.time() if now is None else now
    rcv = recovery(rec)
    t_rec, start_phase, end_at, recovery_s = rcv.start_at, rcv.start_phase, rcv.end_at, rcv.seconds
    conv = rec.converge
    stopped = where_stopped(rec)
    verdict, reason = decide_verdict(rec, rcv, stopped)

    failed_ids = {f.object for f in conv.failures} if conv else set()
    path = conv.critical_path if conv else []
    objects = [_object(o, t_rec, failed_ids, {s.id for s in path}) for o in (conv.objects if conv else [])]
    objects.sort(key=lambda o: (o.first_seen_at if o.first_seen_at is not None else float("inf"), o.id))
    ready_by_id = {s.id: s.ready_at for s in path}
    # The first step is charged only its own wait (first seen to Ready): what came before it is
    # explained by ``critical_time`` (its creators, the phases), not by this object.
    seen_by_id = {o.id: o.first_seen for o in (conv.objects if conv else [])}
    critical = [CriticalStep(id=s.id, ready_at=_r(s.ready_at), ready_s=_diff(s.ready_at, t_rec),
                             waits_on=s.waits_on,
                             added_s=_diff(s.ready_at, ready_by_id.get(s.waits_on) if s.waits_on
                                           else seen_by_id.get(s.id) or t_rec))
                for s in path]

    explained = explain_recovery(rec, t_rec, end_at)
    report = Report(
        generated_at=round(generated, 3),
        run_id=rec.run_id, kind=rec.kind, inventory=rec.inventory, cluster=rec.cluster, host=rec.host,
        trigger=rec.trigger, versions=dict(rec.versions), git_revision=rec.git_revision, flags=dict(rec.flags),
        status=rec.status, partial=rec.status not in COMPLETED_STATUSES or rec.ended_at is None, stopped_at=stopped,
        error=ErrorInfo(**rec.error.model_dump()) if rec.error else None,
        started_at=_r(rec.started_at), ended_at=_r(rec.ended_at), duration_s=_diff(rec.ended_at, rec.started_at),
        recovery_start_at=_r(t_rec), recovery_start_phase=start_phase, recovery_end_at=_r(end_at),
        recovery_s=recovery_s, objective_s=rec.objective_s,
        objective_margin_s=_r(rec.objective_s - recovery_s) if rec.objective_s is not None and recovery_s is not None else None,
        verdict=verdict, verdict_reason=reason,
        phases=[_phase(p, rec.started_at) for p in rec.phases],
        overlaps=phase_overlaps(list(rec.phases)),
        converge=ConvergeSummary(
            converged=conv.converged, outcome=conv.outcome or ("converged" if conv.converged else ""),
            started_at=_r(conv.started), ended_at=_r(conv.ended), duration_s=_diff(conv.ended, conv.started),
            objects_total=len(objects), objects_ready=sum(o.outcome == "ready" for o in objects),
            objects_failed=sum(o.outcome == "failed" for o in objects),
            nudges=sum(1 for n in conv.nudges if n.ok)) if conv else None,
        objects=objects, critical_path=critical,
        failures=[FailureInfo(**f.model_dump()) for f in (conv.failures if conv else [])],
        pending=list(conv.pending) if conv else [],
        post_checks=[PostCheckResult(**c.model_dump()) for c in rec.post_checks],
        critical_time=explained,
        critical_time_by_cause=_by_cause(explained) if explained else {},
        nudges=[NudgeInfo(id=n.id, at=_r(n.at), t_s=_diff(n.at, t_rec), after=list(n.after), ok=n.ok, error=n.error)
                for n in (conv.nudges if conv else [])],
        gitops_check=rec.gitops_check.model_dump() if rec.gitops_check is not None else None,
    )
    return _redact_tree(report.model_dump(mode="json", by_alias=True))
