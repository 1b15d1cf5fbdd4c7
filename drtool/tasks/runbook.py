"""`inv runbook.*`: list, show, run, render and validate step-by-step runbooks."""
from __future__ import annotations

from invoke import Exit

from drtool.tasks._cli import guarded, inventory_task, load, prune_runs, read_only, task

RUN_HELP = {
    "inventory": "inventory file (YAML)",
    "step": "ask before each step (run/skip/quit) and after a failure (retry/skip/quit)",
    "from": "first step to run (by id)",
    "only": "run only these steps (comma-separated ids)",
    "dry_run": "print every step with its resolved commands and target nodes (secrets masked); change nothing",
    "yes": "do not ask; manual steps then fail unless approved with --approve",
    "approve": "pre-approve a manual step by id (repeatable; for --yes runs)",
    "resume": "continue run RUN_ID at its first unfinished step",
    "param": "runbook parameter NAME=VALUE (repeatable)",
    "keep_waiting": "convergence checks do not fail fast; they wait until their deadline",
    "quiet": "print only errors and the final line",
    "accept_new_host_keys": "record unknown SSH host keys instead of refusing",
    "json": "with --dry-run: print the plan as JSON",
}


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(x.strip() for x in (value or "").split(",") if x.strip())


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


@task(name="list", help={"json": "print the runbooks as JSON"})
@guarded
@read_only()
def list_(c, json=False):
    """List the runbooks in runbooks/ with their descriptions."""
    import json as jsonlib
    import shutil
    import textwrap

    from drtool.errors import BadInput
    from drtool.runbooks import runbook_files, runbooks_dir
    from drtool.runbooks.model import load_runbook

    files = runbook_files()
    entries = []
    for path in files:
        try:
            book = load_runbook(path)
        except BadInput as exc:
            entries.append({"name": path.stem, "path": str(path), "valid": False, "error": str(exc)})
            continue
        entries.append({"name": book.name, "path": str(path), "valid": True, "description": book.description.strip(),
                        "steps": len(book.steps),
                        "parameters": {k: {"default": v.default, "description": v.description}
                                       for k, v in book.parameters.items()}})
    if json:
        print(jsonlib.dumps({"schema": "drtool.runbook-list/v1", "dir": str(runbooks_dir()), "runbooks": entries},
                            indent=2))
        return
    if not files:
        print(f"no runbooks in {runbooks_dir()}")
        return
    # One line per runbook cut to the terminal, parameters on their own line: readable at 80 columns.
    width = shutil.get_terminal_size((80, 24)).columns
    for e in entries:
        if not e["valid"]:
            print(_fit(f"{e['name']:<18} INVALID: {e['error']}", width))
            continue
        head = f"{e['name']:<18} {e['steps']:>2} steps  "
        params = " ".join(f"{k}={v['default'] if v['default'] is not None else '…'}" for k, v in e["parameters"].items())
        text = " ".join(e["description"].split()) + (f" [params: {params}]" if params else "")
        print(textwrap.fill(text, width=max(width, len(head) + 20), initial_indent=head,
                            subsequent_indent=" " * len(head)))


@task(help={"name": "runbook name or file"})
@guarded
@read_only()
def show(c, name):
    """Show a runbook's steps (id, kind, title)."""
    import shutil
    import textwrap

    from drtool.runbooks import find
    from drtool.runbooks.plan import policy_text

    book = find(name)
    width = max(shutil.get_terminal_size((80, 24)).columns, 60)
    print(textwrap.fill(f"{book.name}: {' '.join(book.description.split())}", width=width))
    for pname, p in book.parameters.items():
        print(textwrap.fill(f"param {pname} ({p.type}" + (f", default {p.default})" if p.default is not None else ", required)")
                            + (f": {p.description}" if p.description else ""), width=width, initial_indent="  ",
                            subsequent_indent="    "))
    # One step per paragraph wrapped to the terminal (80 columns stay readable): number, id,
    # kind and what it runs, then the title and the retry policy.
    for i, step in enumerate(book.steps, 1):
        what = step.phase or step.action or ""
        policy = policy_text(step)
        head = f"  {i:>2}. {step.id} ({step.kind}{' ' + what if what and what != step.id else ''}): "
        text = step.title + (f" ({policy})" if policy else "")
        print(textwrap.fill(head + text, width=width, subsequent_indent=" " * 6, break_on_hyphens=False))


@inventory_task("name", help=RUN_HELP, iterable=["param", "approve"])
@guarded
def run(c, name, inventory=None, step=False, from_=None, only=None, dry_run=False, yes=False, approve=None,
        resume=None, param=None, keep_waiting=False, quiet=False, accept_new_host_keys=False, json=False):
    """Run a runbook step by step against the inventory's cluster (journaled, resumable)."""
    from drtool.runbooks import find
    from drtool.runbooks.executor import RunbookExecutor, RunOptions
    from drtool.runbooks.params import parse_param_args
    from drtool.secret import redact

    book = find(name)
    inv = load(inventory, c)
    options = RunOptions(params=parse_param_args(param), step_mode=step, start=from_, only=_split(only), yes=yes,
                         approve=tuple(approve or ()), resume=resume, quiet=quiet, keep_waiting=keep_waiting,
                         accept_new_host_keys=accept_new_host_keys)
    if json and not dry_run:
        from drtool.tasks._cli import bad_arg

        raise bad_arg("--json", "only with --dry-run (a run writes runbook-report.json in its run directory)")
    executor = RunbookExecutor(inv, book, options)
    if dry_run and json:
        import json as jsonlib

        plan = [{"index": book.index(s.id) + 1, "id": s.id, "kind": s.kind, "title": redact(title),
                 "commands": [{"target": target, "command": redact(what)} for target, what in lines]}
                for s, title, lines in executor.plan()]
        print(jsonlib.dumps({"schema": "drtool.runbook-plan/v1", "runbook": book.name, "cluster": inv.cluster.name,
                             "dry_run": True, "steps": plan}, indent=2))
        return
    if dry_run:
        print(f"Plan for runbook {book.name} on cluster {inv.cluster.name} (dry run: nothing is changed)")
        for s, title, lines in executor.plan():
            print(f"\n== {book.index(s.id) + 1}. {s.id} ({s.kind}): {redact(title)}")
            for target, what in lines:
                print(f"  [{target}] {redact(what)}")
        return
    try:
        executor.run()
    finally:
        ctx = getattr(executor, "ctx", None)
        if ctx is not None:
            prune_runs(inv, ctx.run.record["run_id"], quiet)


@task(help={"name": "runbook name or file", "output": "write to FILE instead of the terminal",
            "inventory": "resolve commands per node against this inventory", "param": "NAME=VALUE (repeatable)"},
      iterable=["param"])
@guarded
@read_only("output")
def render(c, name, output=None, inventory=None, param=None):
    """Write a runbook as Markdown: purpose, parameters, each step's doc and exact commands."""
    from pathlib import Path

    from drtool.run import atomic_write
    from drtool.runbooks import find
    from drtool.runbooks.params import parse_param_args
    from drtool.runbooks.render import render_markdown

    book = find(name)
    inv = load(inventory, c) if inventory else None
    text = render_markdown(book, inv, parse_param_args(param))
    if output:
        atomic_write(Path(output), text)
        print(f"wrote {output}")
    else:
        print(text, end="")


@task(help={"inventory": "also check node names against this inventory",
            "name": "only this runbook (name or file); default: every file in runbooks/",
            "strict": "warnings fail too",
            "param": "check a parameter value NAME=VALUE against its type, as runbook.run would (repeatable)"},
      iterable=["param"])
@guarded
@read_only()
def validate(c, name=None, inventory=None, strict=False, param=None):
    """Lint runbooks: schema, unknown phases/actions/nodes, duplicate ids, unused parameters, order."""
    from pathlib import Path

    from drtool.errors import ExitCode
    from drtool.runbooks import runbook_files, runbooks_dir
    from drtool.runbooks.params import parse_param_args
    from drtool.runbooks.validate import lint_files

    inv = load(inventory, c) if inventory else None
    if name:
        from drtool.runbooks import find

        path = Path(name) if name.endswith((".yaml", ".yml")) else find(name).path
        files = [path]
    else:
        files = runbook_files()
    if not files:
        raise Exit(f"error: no runbooks in {runbooks_dir()}", code=int(ExitCode.BAD_INPUT))
    problems = lint_files(files, inv, parse_param_args(param))
    for p in problems:
        print(p)
    errors = [p for p in problems if p.severity == "error" or strict]
    print(f"{len(files)} runbook(s): {sum(p.severity == 'error' for p in problems)} error(s), "
          f"{sum(p.severity == 'warning' for p in problems)} warning(s)")
    if errors:
        raise Exit(code=int(ExitCode.BAD_INPUT))
