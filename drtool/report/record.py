"""The run record (``drtool.run/v1``) as typed objects: how it is written and read back.

``drtool.run.Run`` builds the record from these models and passes it through them on every
write of ``runs/<run-id>/journal.json``, so a field of the wrong type fails where it is
written, not later in the report. The record is rewritten while the run goes on, so the
report must accept every stage of it: a run that died in preflight has one phase and no
converge result, an interrupted one has a phase that started and never ended. Parsing is
therefore tolerant about what is *missing* (everything optional has a default) and strict
only about what would make the report lie (a timestamp that is not a number). Keys these
models do not name are kept as they are (the converge result carries request counts, for
example) and never reach a report, which reads only the named fields.
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from drtool.errors import BadInput

RUN_SCHEMA = "drtool.run/v1"

# Journals written by older code may hold null for text fields: read them as "".
Text = Annotated[str, BeforeValidator(lambda v: "" if v is None else v)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")


class NodeStep(_Frozen):
    """One remote step on one node (``uninstall``, ``install``...)."""

    step: str
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None


class PhaseRecord(_Frozen):
    """One pipeline phase as the journal saw it; ``ended_at`` is None while it runs."""

    name: str
    started_at: float | None = None
    ended_at: float | None = None
    outcome: str = "pending"
    message: Text = ""
    nodes: dict[str, list[NodeStep]] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict)
    """What the phase's result said beyond its message (node names, counts)."""



class Transition(_Frozen):
    """A state change of one object, as the watcher saw it."""

    at: float
    state: Text = ""
    reason: Text = ""
    message: Text = ""



class WaitedObject(_Frozen):
    """One Flux object or workload the converge phase waited on."""

    id: str
    kind: Text = ""
    namespace: Text = ""
    name: Text = ""
    first_seen: float | None = None
    ready_at: float | None = None
    state: Text = ""
    reason: Text = ""
    message: Text = ""
    history: list[Transition] = Field(default_factory=list)



class PathStep(_Frozen):
    id: str
    ready_at: float | None = None
    waits_on: str | None = None


class FailureRecord(_Frozen):
    """Why the converge phase stopped waiting on one object."""

    object: str
    reason: Text = ""
    message: Text = ""
    events: list[str] = Field(default_factory=list)
    blocks: list[str] = Field(default_factory=list)
    chain: Text = ""

    @field_validator("events", mode="before")
    @classmethod
    def _events_as_lines(cls, v: Any) -> Any:
        # The converge engine gives "Reason: message (xN)" lines; accept Event-shaped dicts too.
        if not isinstance(v, list):
            return v
        lines = []
        for e in v:
            if isinstance(e, dict):
                text = f"{e.get('reason', '')}: {e.get('message', '')}".strip(": ")
                count = e.get("count")
                lines.append(text + (f" (x{count})" if isinstance(count, int) and count > 1 else ""))
            else:
                lines.append(str(e))
        return lines



class NudgeRecord(_Frozen):
    """One reconcile request the converge phase sent (``drtool.kube.nudge``)."""

    id: str
    at: float | None = None
    after: list[str] = Field(default_factory=list)
    ok: bool = False
    error: Text = ""


class ExplainedSegment(_Frozen):
    """One part of the converge phase's explained critical path (``drtool.kube.graph.explain_path``)."""

    id: str
    start: float
    end: float
    cause: Text = "work"
    reason: Text = ""
    via: Text = ""


class ConvergeRecord(_Frozen):
    """The converge phase's result (``drtool.converge.ConvergeResult.to_dict()``); epoch seconds."""

    converged: bool = False
    outcome: str = ""
    started: float | None = None
    ended: float | None = None
    objects: list[WaitedObject] = Field(default_factory=list)
    critical_path: list[PathStep] = Field(default_factory=list)
    failures: list[FailureRecord] = Field(default_factory=list)
    pending: list[str] = Field(default_factory=list)
    nudges: list[NudgeRecord] = Field(default_factory=list)
    explained_path: list[ExplainedSegment] = Field(default_factory=list)

    @field_validator("pending", mode="before")
    @classmethod
    def _pending_ids(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [str(p.get("id", p)) if isinstance(p, dict) else str(p) for p in v]
        return v


class RunError(_Frozen):
    phase: str | None = None
    type: str = ""
    message: str = ""
    exit_code: int | None = None


class PostCheck(_Frozen):
    name: str
    ok: bool
    message: str = ""
    duration_s: float | None = None


class GitopsFinding(_Frozen):
    """One finding of the GitOps check run in preflight."""

    id: str
    kind: str
    severity: str
    subject: Text = ""
    message: Text = ""
    fix: Text = ""
    kustomization: Text = ""
    file: Text = ""
    accepted: bool = False


class GitopsCheck(_Frozen):
    """The GitOps check's result as preflight recorded it (``skipped`` says why it did not run)."""

    skipped: Text = ""
    checkout: Text = ""
    live: bool = False
    notes: list[str] = Field(default_factory=list)
    accepted: list[str] = Field(default_factory=list)
    findings: list[GitopsFinding] = Field(default_factory=list)


class StepRecord(_Frozen):
    """One runbook step in a runbook run's journal."""

    id: str
    title: Text = ""
    kind: Text = ""
    sha256: Text = ""
    """Of the step's definition, so ``--resume`` refuses a changed runbook."""
    status: str = "pending"
    message: Text = ""
    started_at: float | None = None
    ended_at: float | None = None
    attempts: int = 0
    output: Text = ""


class RunbookSection(_Frozen):
    """The ``runbook`` section of a runbook run's journal."""

    name: str
    file: Text = ""
    description: Text = ""
    params: dict[str, str] = Field(default_factory=dict)
    steps: list[StepRecord] = Field(default_factory=list)


class RunRecord(_Frozen):
    """The whole run record; see docs/report-schema.md for the meaning of each field."""

    schema_: str = Field(RUN_SCHEMA, alias="schema")
    run_id: str
    kind: str = "rebuild"
    inventory: str = ""
    cluster: str = ""
    host: str = ""
    trigger: str = "manual"
    versions: dict[str, str | None] = Field(default_factory=dict)
    git_revision: str | None = None
    flags: dict[str, Any] = Field(default_factory=dict)
    started_at: float
    ended_at: float | None = None
    status: str = "running"
    stopped_at: str | None = None
    error: RunError | None = None
    objective_s: float | None = None
    phases: list[PhaseRecord] = Field(default_factory=list)
    converge: ConvergeRecord | None = None
    post_checks: list[PostCheck] = Field(default_factory=list)
    state: dict[str, Any] = Field(default_factory=dict)
    """What phases hand to later phases (where the token and kubeconfig are kept); never reported."""
    runbook: RunbookSection | None = None
    gitops_check: GitopsCheck | None = None

    @field_validator("post_checks", "phases", mode="before")
    @classmethod
    def _none_is_empty_list(cls, v: Any) -> Any:
        return [] if v is None else v


def parse_record(record: dict[str, Any], source: str = "run record") -> RunRecord:
    """Validate a run record dict. Raises ``BadInput`` naming the first bad field."""
    if not isinstance(record, dict):
        raise BadInput(source, "", "expected a JSON object")
    schema = record.get("schema", RUN_SCHEMA)
    if schema != RUN_SCHEMA:
        raise BadInput(source, "schema", f"expected {RUN_SCHEMA}, got {schema!r}")
    try:
        return RunRecord.model_validate(record)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        raise BadInput(source, loc, err["msg"]) from None
