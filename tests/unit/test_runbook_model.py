"""Runbook files: every malformed one is refused (exit 2) naming the file and the step; good ones load."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from invoke import Collection, Program

from drtool.errors import BadInput
from drtool.runbooks import runbook_files
from drtool.runbooks.journal import check_resume
from drtool.runbooks.model import load_runbook, parse_runbook
from drtool.runbooks.params import parse_param_args, resolve_params, substitute

REPO = Path(__file__).resolve().parents[2]

GOOD = {
    "name": "sample",
    "description": "A sample runbook.",
    "parameters": {"agent": {"description": "agent node"}, "greeting": {"default": 1}},
    "steps": [
        {"id": "kubeconfig", "title": "Kubeconfig", "phase": "kubeconfig"},
        {"id": "wipe", "title": "Wipe {{ agent }}", "remote": {"on": ["{{ agent }}"], "sudo": True, "command": "echo {{ agent }}"}},
        {"id": "look", "title": "Look", "local": {"command": "echo {{ greeting }}"}},
        {"id": "ready", "title": "Ready", "check": {"converge": {}}},
        {"id": "grep", "title": "Grep", "check": {"command": "uname", "on": "servers", "expect": "Linux"}},
        {"id": "ask", "title": "Ask", "manual": {"instruction": "Look at {{ cluster }}"}},
        {"id": "pause", "title": "Pause", "wait": {"seconds": "2s"}},
        {"id": "join", "title": "Join", "action": "join-agent", "args": {"on": ["{{ agent }}"]}, "retries": 2,
         "retry_delay": "1s", "timeout": "5m", "on_failure": "continue"},
    ],
}


def mutated(fn) -> dict:
    data = copy.deepcopy(GOOD)
    fn(data)
    return data


def step(i, **changes):
    def fn(data):
        data["steps"][i].update(changes)
    return fn


def drop(i, key):
    def fn(data):
        data["steps"][i].pop(key)
    return fn


def nested(i, kind, **changes):
    def fn(data):
        data["steps"][i][kind].update(changes)
    return fn


# (mutation, expected field prefix, expected words in the problem)
MALFORMED = [
    (step(0, phase="wipe_everything"), "steps[0] (id kubeconfig).phase", "unknown phase"),
    (step(1, id="Wipe Agent"), "steps[1] (id Wipe Agent).id", "slug"),
    (step(2, id="kubeconfig"), "steps[2] (id kubeconfig).id", "duplicate step id"),
    (step(2, sudo=True), "steps[2] (id look).sudo", "unknown key"),
    (nested(1, "remote", sudo="maybe"), "steps[1] (id wipe).remote.sudo", "boolean"),
    (nested(1, "remote", on="everyone"), "steps[1] (id wipe).remote.on", "servers, agents, all"),
    (nested(1, "remote", on=["Node_2"]), "steps[1] (id wipe).remote.on", "not a node name"),
    (nested(1, "remote", command=""), "steps[1] (id wipe).remote.command", "empty"),
    (nested(1, "remote", command="echo {{ nope }}"), "steps[1] (id wipe).remote.command", "unknown parameter"),
    (nested(1, "remote", command="echo {{ a-b }}"), "steps[1] (id wipe).remote.command", "not a parameter reference"),
    (drop(2, "local"), "steps[2] (id look)", "no action"),
    (step(2, wait={"seconds": 3}), "steps[2] (id look)", "more than one action"),
    (step(3, check={}), "steps[3] (id ready).check", "exactly one of converge or command"),
    (step(3, check={"converge": {}, "command": "true"}), "steps[3] (id ready).check", "exactly one"),
    (step(3, check={"converge": {"deadline": "soon"}}), "steps[3] (id ready).check.converge.deadline", "duration"),
    (step(3, check={"converge": {"helmreleases": ["loki"]}}), "steps[3] (id ready).check.converge.helmreleases", "namespace/name"),
    (nested(4, "check", expect="("), "steps[4] (id grep).check", "regular expression"),
    (step(5, manual={}), "steps[5] (id ask).manual.instruction", "required"),
    (step(6, wait={"seconds": 7200}), "steps[6] (id pause).wait.seconds", "at most 3600"),
    (step(6, wait={"seconds": -1}), "steps[6] (id pause).wait.seconds", "positive"),
    (step(7, action="reboot-everything"), "steps[7] (id join).action", "unknown action"),
    (step(7, args={"on": ["{{ agent }}"], "force": "yes"}), "steps[7] (id join)", "force: unknown argument"),
    (step(7, action="delete-node", args={}), "steps[7] (id join)", "node: required"),
    (step(7, retries=50), "steps[7] (id join).retries", "less than or equal to 20"),
    (step(7, on_failure="ignore"), "steps[7] (id join).on_failure", "expected stop or continue"),
    (step(7, timeout="forever"), "steps[7] (id join).timeout", "duration"),
    (step(0, args={"skip_backup": "yes"}), "steps[0] (id kubeconfig)", "args.skip_backup: expected true or false"),
    (step(0, args={"dry_run": True}), "steps[0] (id kubeconfig)", "not an option of a phase step"),
    (step(2, args={"x": 1}), "steps[2] (id look)", "args only apply"),
    (drop(1, "title"), "steps[1] (id wipe).title", "required"),
    (lambda d: d.update(steps=[]), "steps", "at least one step"),
    (lambda d: d.update(colour="red"), "colour", "unknown key"),
    (lambda d: d.pop("description"), "description", "required"),
    (lambda d: d.update(parameters={"bad-name": {}}), "parameters", "not a parameter name"),
    (lambda d: d.update(parameters={"cluster": {}}), "parameters", "built-in"),
]


def _cli(args: list[str]) -> int:
    from drtool.tasks import runbook

    program = Program(namespace=Collection.from_module(runbook), binary="inv")
    with pytest.raises(SystemExit) as exc:
        program.run(["inv", *args])
    return exc.value.code


@pytest.mark.parametrize("mutate,field,words", MALFORMED, ids=[f"{i:02d}-{m[1]}" for i, m in enumerate(MALFORMED)])
def test_malformed_runbook_exits_2_naming_file_and_step(tmp_path, capsys, mutate, field, words):
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(mutated(mutate), sort_keys=False))
    assert _cli(["show", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {path}: {field}"), err
    assert words in err, err


def test_at_least_twenty_malformed_cases():
    assert len(MALFORMED) >= 20


def test_invalid_yaml_names_the_line(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nsteps: [\n")
    assert _cli(["show", str(path)]) == 2
    assert f"{path}: line" in capsys.readouterr().err


def test_bare_on_key_is_not_a_boolean():
    book = parse_runbook(GOOD, "good.yaml")
    assert book.steps[1].remote.on == ("{{ agent }}",)
    text = yaml.safe_dump(GOOD).replace("'on':", "on:")
    assert "\n    on:" in text or " on:" in text
    assert parse_runbook(yaml.safe_load(text), "good.yaml").steps[1].remote.on == ("{{ agent }}",)


def test_shipped_runbooks_load_and_lint_clean():
    from drtool.runbooks.validate import lint_files

    files = runbook_files(REPO / "runbooks")
    assert {f.stem for f in files} >= {"full-rebuild", "flux-rebootstrap", "agent-replace", "restore-datastore"}
    problems = [p for p in lint_files(files) if p.severity == "error"]
    assert not problems, problems
    book = load_runbook(REPO / "runbooks" / "full-rebuild.yaml")
    from drtool.pipeline import PHASE_NAMES

    assert [s.phase for s in book.steps if s.kind == "phase"] == list(PHASE_NAMES)
    manual = [s.id for s in book.steps if s.kind == "manual"][0]
    assert book.index(manual) < book.index("teardown")


def test_parameters_are_shell_quoted_in_commands():
    book = parse_runbook(GOOD, "good.yaml")
    params = resolve_params(book, None, {"agent": "node2; rm -rf /"})
    assert substitute(book.steps[1].remote.command, params, shell=True) == "echo 'node2; rm -rf /'"
    assert substitute("{{ agent }}", params, shell=False) == "node2; rm -rf /"
    with pytest.raises(BadInput, match="needs --param agent=VALUE"):
        resolve_params(book, None, {})
    with pytest.raises(BadInput, match="unknown parameter 'agnet'"):
        resolve_params(book, None, {"agnet": "x"})
    assert parse_param_args(["a=b=c"]) == {"a": "b=c"}
    with pytest.raises(BadInput, match="NAME=VALUE"):
        parse_param_args(["novalue"])


def test_digest_ignores_prose_but_not_behaviour():
    a = parse_runbook(GOOD, "x.yaml")
    b = parse_runbook(mutated(step(1, title="Other words", doc="More docs")), "x.yaml")
    c = parse_runbook(mutated(nested(1, "remote", command="echo changed")), "x.yaml")
    assert a.steps[1].digest() == b.steps[1].digest()
    assert a.steps[1].digest() != c.steps[1].digest()


def test_resume_refuses_a_changed_step(tmp_path, monkeypatch):
    from drtool.run import Run
    from drtool.runbooks import journal

    monkeypatch.setenv("DRTOOL_RUNS_DIR", str(tmp_path))
    book = parse_runbook(GOOD, "x.yaml")
    run = Run.create("runbook", "inv.yaml", "lab")
    journal.start(run, book, {"agent": "node2"}, {s.id for s in book.steps})
    journal.update(run, "kubeconfig", status="ok")
    todo = check_resume(Run.load(run.record["run_id"]), book)
    assert [s.id for s in todo][0] == "wipe"
    changed = parse_runbook(mutated(nested(1, "remote", command="echo other")), "x.yaml")
    with pytest.raises(BadInput) as exc:
        check_resume(Run.load(run.record["run_id"]), changed)
    assert str(exc.value).startswith("x.yaml: steps[1] (id wipe): step changed since run")
    assert exc.value.exit_code == 2
