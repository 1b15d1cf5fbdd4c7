"""Load and validate a runbook file into frozen, typed objects.

A runbook is an ordered list of steps an operator follows during an incident
(``runbooks/*.yaml``). Each step has exactly one action: a rebuild ``phase``, a
``remote`` command on nodes, a ``local`` command, a ``check`` (convergence or a
command whose output must match), a ``manual`` instruction, a bounded ``wait``,
or one of a few named internal ``action``s for what a shell command cannot do
safely (see ``drtool.runbooks.actions``).

Everything is checked at load time, and every problem is one
``BadInput(file, field, problem)`` whose field names the step by index and id,
e.g. ``runbooks/x.yaml: steps[3] (id wipe).remote.sudo: ...``, so a typo is
found before anything runs, not halfway through an incident.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from drtool.errors import BadInput
from drtool.inputs import read_yaml, validation_error
from drtool.inventory import Seconds

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
TEMPLATE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
MAX_WAIT_S = 3600.0
MAX_RETRIES = 20
TARGET_GROUPS = ("servers", "agents", "all")
ACTION_KINDS = ("phase", "remote", "local", "check", "manual", "wait", "action")
# Options a phase step may set: the same switches `inv rebuild` has for these phases.
#: The drtool-internal actions (``action:``) and their (required, optional) arguments;
#: ``drtool.runbooks.actions.ACTIONS`` implements each. Declared here so the model checks
#: steps without importing the implementations (which import the model).
ACTION_ARGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "delete-node": (("node",), ()),
    "join-agent": ((), ("on",)),
    "restore-datastore": (("run",), ()),
    "install-server": ((), ("token_from_run",)),
    "restore-secrets": (("run",), ()),
    "restore-volumes": (("run",), ("on",)),
    "guard-volumes": (("on",), ("discard",)),
}
ACTION_NAMES = tuple(ACTION_ARGS)


def action_args_problem(action: str, args: Mapping[str, Any]) -> str | None:
    """A problem with an ``action:`` step's ``args``, or None."""
    required, optional = ACTION_ARGS[action]
    for key in args:
        if key not in required + optional:
            allowed = ", ".join(required + optional) or "none"
            return f"{key}: unknown argument of action {action} (arguments: {allowed})"
    for key in required:
        if key not in args:
            return f"{key}: required by action {action}"
    for key, value in args.items():
        ok = isinstance(value, str) and value.strip() or (
            key == "on" and isinstance(value, list) and value and all(isinstance(v, str) for v in value))
        if not ok:
            return f"{key}: expected a non-empty string"
    return None
PHASE_ARGS = {"skip_backup": bool, "keep_waiting": bool, "merge_kubeconfig": bool, "discard_volume_data": bool}


def _phase_names() -> tuple[str, ...]:
    from drtool.pipeline import PHASE_NAMES

    return PHASE_NAMES


def template_names(text: str) -> list[str]:
    """The parameter names a string refers to with ``{{ name }}``."""
    return [m.group(1) for m in TEMPLATE.finditer(text)]


def _check_templates(value: str) -> str:
    for name in template_names(value):
        if not PARAM_NAME.match(name):
            raise ValueError(f"{{{{ {name} }}}} is not a parameter reference (expected {{{{ name }}}})")
    if "{{" in TEMPLATE.sub("", value) or "}}" in TEMPLATE.sub("", value):
        raise ValueError("unbalanced '{{' or '}}'")
    return value


def _targets(value: Any) -> Any:
    """``servers``, ``agents``, ``all`` or a list of node names (``{{ param }}`` allowed)."""
    if isinstance(value, str):
        if value in TARGET_GROUPS:
            return value
        raise ValueError(f"expected one of {', '.join(TARGET_GROUPS)} or a list of node names")
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"expected one of {', '.join(TARGET_GROUPS)} or a non-empty list of node names")
    out = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise ValueError("node names must be non-empty strings")
        item = item.strip()
        if not TEMPLATE.fullmatch(item) and not NODE_NAME.match(item):
            raise ValueError(f"{item!r} is not a node name (or a {{{{ parameter }}}})")
        _check_templates(item)
        out.append(item)
    return tuple(out)


Targets = Annotated[str | tuple[str, ...], BeforeValidator(_targets)]
def _nonempty(v: str) -> str:
    if not v:
        raise ValueError("must not be empty")
    return v


Command = Annotated[str, BeforeValidator(lambda v: _check_templates(v) if isinstance(v, str) else v), AfterValidator(_nonempty)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


PARAM_TYPES = ("string", "node", "agent", "server", "run")
"""What a parameter's value must be: any text, a node of the inventory (any role, an agent, a
server), or the id of a run under ``runs/``. Checked before anything runs."""


class Parameter(_Model):
    default: str | None = None
    """Used when ``--param name=value`` is not given; no default makes the parameter required."""
    description: str = ""
    type: Literal["string", "node", "agent", "server", "run"] = "string"
    """Checked against the inventory (node types) or ``runs/`` (run) before any step runs."""

    @field_validator("default", mode="before")
    @classmethod
    def _scalar(cls, v: Any) -> Any:
        if isinstance(v, bool) or isinstance(v, (int, float)):
            return str(v).lower() if isinstance(v, bool) else str(v)
        if v is not None and not isinstance(v, str):
            raise ValueError("a default must be a string, number or boolean")
        return v


def _yaml_on_key(data: Any) -> Any:
    # YAML 1.1 reads a bare `on:` key as the boolean true (as in GitHub Actions files).
    if isinstance(data, dict) and True in data:
        data = {("on" if k is True else k): v for k, v in data.items()}
    return data


class Remote(_Model):
    command: Command
    """Shell text run on each target node; parameters are substituted shell-quoted."""
    on: Targets = "all"
    sudo: bool = False

    @model_validator(mode="before")
    @classmethod
    def _on_key(cls, data: Any) -> Any:
        return _yaml_on_key(data)



class Local(_Model):
    command: Command
    """Shell text run on the operator's machine (``KUBECONFIG`` points at the run's kubeconfig)."""



class ConvergeCheck(_Model):
    """Readiness through the convergence engine; empty means "everything ready"."""

    deadline: Seconds | None = None
    """Defaults to the inventory's ``timeouts.converge``."""
    kustomizations: tuple[str, ...] | None = None
    """Kustomizations that must exist and be Ready (default: the inventory's expectations)."""
    helmreleases: tuple[str, ...] | None = None
    """``namespace/name`` or ``namespace/name@version`` (default: the inventory's expectations)."""
    ignore_namespaces: tuple[str, ...] | None = None
    keep_waiting: bool | None = None

    @field_validator("helmreleases")
    @classmethod
    def _releases(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for item in v or ():
            if not re.match(r"^[a-z0-9-]+/[a-z0-9-]+(@\S+)?$", item):
                raise ValueError(f"{item!r}: expected namespace/name or namespace/name@version")
        return v


class Check(_Model):
    converge: ConvergeCheck | None = None
    command: Command | None = None
    on: Targets | None = None
    """Nodes to run ``command`` on; without it the command runs locally."""
    sudo: bool = False
    expect: str | None = None
    """A regular expression the command's output must match (default: exit status 0 is enough)."""

    @model_validator(mode="before")
    @classmethod
    def _converge_shorthand(cls, data: Any) -> Any:
        data = _yaml_on_key(data)
        # `check: {converge: {}}` and `check: {converge: null}` both mean "all ready".
        if isinstance(data, dict) and "converge" in data and data["converge"] is None:
            return {**data, "converge": {}}
        return data

    @model_validator(mode="after")
    def _one(self) -> "Check":
        if (self.converge is None) == (self.command is None):
            raise ValueError("a check needs exactly one of converge or command")
        if self.converge is not None and (self.on is not None or self.expect is not None or self.sudo):
            raise ValueError("on, sudo and expect belong to a command check, not a converge check")
        if self.expect is not None:
            try:
                re.compile(self.expect)
            except re.error as exc:
                raise ValueError(f"expect is not a valid regular expression: {exc}") from None
        return self


class Manual(_Model):
    instruction: Command



class Wait(_Model):
    seconds: Seconds

    @field_validator("seconds")
    @classmethod
    def _bounded(cls, v: float) -> float:
        if v > MAX_WAIT_S:
            raise ValueError(f"at most {MAX_WAIT_S:g} seconds")
        return v


class Step(_Model):
    id: str
    title: str
    doc: str = ""
    """Markdown shown before the step runs and in the rendered runbook."""
    phase: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    """Arguments of a ``phase`` or ``action`` step."""
    remote: Remote | None = None
    local: Local | None = None
    check: Check | None = None
    manual: Manual | None = None
    wait: Wait | None = None
    action: str | None = None
    timeout: Seconds | None = None
    retries: int = Field(default=0, ge=0, le=MAX_RETRIES)
    retry_delay: Seconds = 5.0
    on_failure: Literal["stop", "continue"] = "stop"

    @field_validator("args", mode="before")
    @classmethod
    def _args_on(cls, v: Any) -> Any:
        return _yaml_on_key(v)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not ID_PATTERN.match(v):
            raise ValueError("expected a slug: lowercase letters, digits and '-' (e.g. wipe-agent)")
        return v

    @field_validator("title")
    @classmethod
    def _title(cls, v: str) -> str:
        if not v:
            raise ValueError("the title is empty")
        return v

    @field_validator("phase")
    @classmethod
    def _phase(cls, v: str | None) -> str | None:
        if v is not None and v not in _phase_names():
            from drtool.suggest import did_you_mean

            raise ValueError(f"unknown phase {v!r}{did_you_mean(v, _phase_names())}; phases: {', '.join(_phase_names())}")
        return v

    @field_validator("action")
    @classmethod
    def _action(cls, v: str | None) -> str | None:
        if v is not None and v not in ACTION_NAMES:
            raise ValueError(f"unknown action {v!r}; actions: {', '.join(sorted(ACTION_NAMES))}")
        return v

    @field_validator("retry_delay")
    @classmethod
    def _delay(cls, v: float) -> float:
        if v > MAX_WAIT_S:
            raise ValueError(f"at most {MAX_WAIT_S:g} seconds")
        return v

    @model_validator(mode="after")
    def _exactly_one_action(self) -> "Step":
        present = [k for k in ACTION_KINDS if getattr(self, k) is not None]
        if not present:
            raise ValueError(f"no action: set exactly one of {', '.join(ACTION_KINDS)}")
        if len(present) > 1:
            raise ValueError(f"more than one action ({', '.join(present)}); a step does exactly one thing")
        if self.args and self.kind not in ("phase", "action"):
            raise ValueError("args only apply to phase and action steps")
        if self.kind == "phase":
            for key, value in self.args.items():
                if key not in PHASE_ARGS:
                    raise ValueError(f"args.{key}: not an option of a phase step (allowed: {', '.join(PHASE_ARGS)})")
                if not isinstance(value, PHASE_ARGS[key]):
                    raise ValueError(f"args.{key}: expected true or false")
        if self.action is not None:
            problem = action_args_problem(self.action, self.args)
            if problem:
                raise ValueError(f"args: {problem}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ACTION_KINDS if getattr(self, k) is not None)

    def digest(self) -> str:
        """SHA-256 of what the step does (its title and doc are prose and do not count)."""
        data = self.model_dump(mode="json", exclude={"title", "doc"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def templated_strings(self) -> list[tuple[str, str]]:
        """(field, text) of every string that may hold ``{{ param }}`` references."""
        out: list[tuple[str, str]] = [("title", self.title), ("doc", self.doc)]
        for kind in ("remote", "local", "check"):
            part = getattr(self, kind)
            if part is not None and getattr(part, "command", None):
                out.append((f"{kind}.command", part.command))
            on = getattr(part, "on", None) if part is not None else None
            if isinstance(on, tuple):
                out += [(f"{kind}.on", item) for item in on]
        if self.manual is not None:
            out.append(("manual.instruction", self.manual.instruction))
        out += [(f"args.{k}", v) for k, v in self.args.items() if isinstance(v, str)]
        out += [(f"args.{k}", x) for k, v in self.args.items() if isinstance(v, (list, tuple)) for x in v if isinstance(x, str)]
        return out


class Runbook(_Model):
    path: Path = Field(default=Path("<runbook>"), exclude=True)
    name: str
    description: str
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    steps: tuple[Step, ...]

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not ID_PATTERN.match(v):
            raise ValueError("expected a slug: lowercase letters, digits and '-'")
        return v

    @field_validator("description")
    @classmethod
    def _description(cls, v: str) -> str:
        if not v:
            raise ValueError("the description is empty")
        return v

    @field_validator("parameters", mode="before")
    @classmethod
    def _parameters(cls, v: Any) -> Any:
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise ValueError("expected a mapping of parameter name to {default, description}")
        for name in v:
            if not isinstance(name, str) or not PARAM_NAME.match(name):
                raise ValueError(f"{name!r} is not a parameter name (letters, digits, '_')")
            if name in BUILTIN_PARAMETERS:
                raise ValueError(f"{name!r} is a built-in parameter")
        return {k: ({} if p is None else p) for k, p in v.items()}

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: tuple[Step, ...]) -> tuple[Step, ...]:
        if not v:
            raise ValueError("a runbook needs at least one step")
        return v

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def index(self, step_id: str) -> int:
        return [s.id for s in self.steps].index(step_id)

    def where(self, i: int, field: str = "") -> str:
        """The field path of step ``i`` as errors show it: ``steps[3] (id wipe).remote``."""
        return f"steps[{i}] (id {self.steps[i].id})" + (f".{field}" if field else "")


# Always available in templates; filled from the inventory.
BUILTIN_PARAMETERS = {
    "cluster": "the inventory's cluster name",
    "server": "the first server node's name",
}


class _StepError(ValueError):
    def __init__(self, field: str, problem: str):
        super().__init__(problem)
        self.field, self.problem = field, problem


def _cross_checks(book: Runbook) -> None:
    """What one step cannot see on its own: duplicate ids and undeclared parameters."""
    seen: dict[str, int] = {}
    for i, step in enumerate(book.steps):
        if step.id in seen:
            raise _StepError(f"{book.where(i)}.id", f"duplicate step id (also steps[{seen[step.id]}])")
        seen[step.id] = i
        for field, text in step.templated_strings():
            for name in template_names(text):
                if name not in book.parameters and name not in BUILTIN_PARAMETERS:
                    declared = ", ".join([*book.parameters, *BUILTIN_PARAMETERS])
                    raise _StepError(book.where(i, field), f"unknown parameter {{{{ {name} }}}} (declared: {declared})")


def _loc(loc: tuple, data: Any) -> str:
    out = ""
    for j, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
            if loc[:j] == ("steps",) and isinstance(data, dict):
                steps = data.get("steps")
                if isinstance(steps, list) and part < len(steps) and isinstance(steps[part], dict) \
                        and isinstance(steps[part].get("id"), str):
                    out += f" (id {steps[part]['id']})"
        elif str(part).startswith("function-") or str(part) in ("str", "tuple[str, ...]", "str | tuple[str, ...]"):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def _bad_input(source: str, exc: ValidationError, data: Any) -> BadInput:
    return validation_error(source, exc, field=lambda loc: _loc(loc, data), model=Runbook)


def parse_runbook(data: Any, source: str | Path = "<runbook>") -> Runbook:
    """Validate already-loaded YAML data into a Runbook; raises BadInput naming the step and field."""
    source = str(source)
    if not isinstance(data, dict):
        raise BadInput(source, "", "expected a mapping at the top level (name, description, parameters, steps)")
    try:
        book = Runbook.model_validate({**data, "path": Path(source)})
    except ValidationError as exc:
        raise _bad_input(source, exc, data) from None
    try:
        _cross_checks(book)
    except _StepError as exc:
        raise BadInput(source, exc.field, exc.problem) from None
    return book


def load_runbook(path: str | Path) -> Runbook:
    """Read and validate a runbook file; every problem is a one-line BadInput."""
    return parse_runbook(read_yaml(path), path)
