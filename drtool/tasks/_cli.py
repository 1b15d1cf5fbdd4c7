"""What every task shares: one-line errors with exit codes, and output helpers.

Only this layer turns a ``DrtoolError`` into a message and an exit code. A bug
(any other exception) still gets one line on the terminal; its traceback goes
to the debug log so the terminal stays readable.
"""
from __future__ import annotations

import functools
import logging
import os
import sys
import tempfile
import traceback
from pathlib import Path

import invoke
from invoke import Exit

from drtool.errors import BadInput, DrtoolError, ExitCode

DEBUG_LOG = Path(os.environ.get("DRTOOL_DEBUG_LOG", Path(tempfile.gettempdir()) / "drtool-debug.log"))


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


def _one_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def guarded(fn):
    """Wrap a task body: DrtoolError → message + its exit code; Ctrl-C → 130; bug → one line + log."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from drtool.secret import redact

        try:
            return fn(*args, **kwargs)
        except Exit:
            raise
        except BadInput as exc:
            raise Exit(f"error: {redact(str(exc))}", code=int(ExitCode.BAD_INPUT)) from None
        except DrtoolError as exc:
            # Multi-line messages (remote output tails) are useful: keep them, redacted.
            raise Exit(f"error: {redact(str(exc))}", code=int(exc.exit_code)) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=int(ExitCode.INTERRUPTED)) from None
        except Exception as exc:  # a bug: keep the terminal clean, keep the details
            try:
                with open(DEBUG_LOG, "a", encoding="utf-8") as fh:
                    fh.write(redact(traceback.format_exc()) + "\n")
            except OSError:
                pass
            raise Exit(
                f"error: internal error: {redact(_one_line(str(exc)) or type(exc).__name__)} (traceback in {DEBUG_LOG})",
                code=int(ExitCode.FAILED),
            ) from None

    return wrapper


def bad_arg(name: str, problem: str) -> BadInput:
    """A bad command-line argument, reported like a bad field."""
    return BadInput("command line", name, problem)


def load(inventory: str | None):
    """The inventory named by ``-i``; a missing flag is bad input."""
    if not inventory:
        raise bad_arg("--inventory", "required (e.g. -i inventory/lab.yaml)")
    from drtool.inventory import load_inventory

    return load_inventory(inventory)


def console(quiet: bool = False):
    from rich.console import Console

    return Console(stderr=False, quiet=quiet, highlight=False, soft_wrap=True)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
