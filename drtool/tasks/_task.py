"""The Invoke task class every drtool task uses."""
from __future__ import annotations

import invoke


class Task(invoke.Task):
    """An Invoke task whose automatic short flags never take ``-h``.

    Invoke hands each option the first free letter of its name, so ``--history-html``
    became ``-h`` and ``inv drill -h`` asked for a file name instead of showing help.
    """

    def arg_opts(self, name, default, taken_names):
        return super().arg_opts(name, default, set(taken_names) | {"h"})


def task(*args, **kwargs):
    """``invoke.task`` building :class:`Task` (keeps ``-h`` for help on every task)."""
    kwargs.setdefault("klass", Task)
    return invoke.task(*args, **kwargs)
