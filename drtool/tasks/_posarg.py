"""An optional positional argument for Invoke tasks: ``inv rebuild inventory/home.yaml``.

Invoke 2.2 treats every positional argument as required (pyinvoke/invoke#159, open):
its parser (``invoke/parser/parser.py``, ``ParseMachine.complete_context``) fails with
"did not receive required positional arguments" when one is left out, and a task with no
positional argument fails on a bare path with "No idea what ...". A task made with
``@task(klass=OptionalPositionalTask, positional=[...])`` has its positional arguments that
carry a default in the signature made optional: given, they are filled from the first free
word; left out, the task gets ``""`` and falls back to its default (``$DRTOOL_INVENTORY``,
Invoke's config). A word naming another task is still read as that task.

The parser is Invoke's own, with this one change installed once: the machine it builds is
a subclass that knows about these arguments; every other argument parses as before.
"""
from __future__ import annotations

import inspect

from invoke.parser import parser as _parser
from invoke.parser.argument import Argument

from drtool.tasks._task import Task  # keeps -h for help


class OptionalPositional(Argument):
    """A positional argument that may be left out."""


# Flags that give up data: spelled out in full, never reachable by a one-letter typo.
LONG_ONLY = {"discard_volume_data"}


class OptionalPositionalTask(Task):
    """A task whose positional arguments with a default in the signature are optional."""

    def get_arguments(self, ignore_unknown_help=None):
        args = super().get_arguments(ignore_unknown_help)
        params = inspect.signature(self.body).parameters
        out = []
        for arg in args:
            if (arg.attr_name or arg.name) in LONG_ONLY:
                arg = Argument(names=tuple(n for n in arg.names if len(n) > 1), kind=arg.kind, default=arg.default,
                               help=arg.help, positional=arg.positional, optional=arg.optional,
                               incrementable=arg.incrementable, attr_name=arg.attr_name)
            param = params.get(arg.attr_name or arg.name)
            if arg.positional and param is not None and param.default is not inspect.Parameter.empty:
                arg = OptionalPositional(names=arg.names, kind=arg.kind, default=arg.default, help=arg.help,
                                         positional=True, optional=arg.optional, incrementable=arg.incrementable,
                                         attr_name=arg.attr_name)
            out.append(arg)
        return out


def _only_optional_missing(context) -> bool:
    missing = context.missing_positional_args if context is not None else []
    return bool(missing) and all(isinstance(a, OptionalPositional) for a in missing)


def _machine_factory(original):
    """Invoke's ParseMachine with two behaviours added per instance (its state machine is declared
    on the class by name, so the methods are replaced on the instance rather than subclassed)."""

    def build(*args, **kwargs):
        machine = original(*args, **kwargs)
        base_handle, base_complete = machine.handle, machine.complete_context

        def handle(token: str) -> None:
            # A task name after a task whose optional positional is unfilled starts that task.
            ctx = machine.context
            if (_only_optional_missing(ctx) and token in machine.contexts and token not in ctx.flags
                    and not machine.waiting_for_flag_value):
                machine.see_context(token)
                return
            # A dash word is never the optional positional: `inv drill -h` is help (a core flag),
            # and an unknown flag is reported as one, not as a missing inventory file "-x".
            if (_only_optional_missing(ctx) and token.startswith("-") and token not in ctx.flags
                    and token not in ctx.inverse_flags and not machine.waiting_for_flag_value):
                for arg in ctx.missing_positional_args:
                    arg.value = ""  # left out: the task uses its default
            base_handle(token)

        def complete_context() -> None:
            if machine.context is not None:
                for arg in machine.context.missing_positional_args:
                    if isinstance(arg, OptionalPositional):
                        arg.value = ""  # left out: the task uses its default
            base_complete()

        machine.handle, machine.complete_context = handle, complete_context
        return machine

    build.drtool_optional_positionals = True
    return build


if not getattr(_parser.ParseMachine, "drtool_optional_positionals", False):
    _parser.ParseMachine = _machine_factory(_parser.ParseMachine)  # type: ignore[misc]
