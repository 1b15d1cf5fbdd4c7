"""What every task shares: one-line errors with exit codes, and output helpers.

Only this layer turns a ``DrtoolError`` into a message and an exit code. A bug
(any other exception) still gets one line on the terminal; its traceback goes
to the debug log so the terminal stays readable.
"""
from __future__ import annotations

import functools
import inspect
import logging
import os
import sys
import tempfile
import traceback
from pathlib import Path

import invoke
from invoke import Exit

from drtool.errors import BadInput, DrtoolError, ExitCode
from drtool.tasks._task import Task, task  # noqa: F401  (re-exported for the task modules)

DEBUG_LOG = Path(os.environ.get("DRTOOL_DEBUG_LOG", Path(tempfile.gettempdir()) / "drtool-debug.log"))


def _one_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


READ_ONLY = "_drtool_read_only"


def read_only(*writes: str):
    """Mark a task that changes nothing, so Invoke's ``--dry`` may run it as it is.

    ``writes`` names the options that make it write something (e.g. ``output``); with one
    of them given, ``--dry`` refuses like it does for every other task.
    """

    def mark(fn):
        setattr(fn, READ_ONLY, writes)
        return fn

    return mark


def task_name(fn) -> str:
    """The name an operator types for a task function: ``rebuild``, ``lab.up``, ``inventory.check``."""
    collection = fn.__module__.rsplit(".", 1)[-1].removesuffix("_tasks")
    name = fn.__name__.strip("_").replace("_", "-")
    return name if name == collection else f"{collection}.{name}"


def _honour_dry(fn, args, kwargs) -> None:
    """Invoke's ``--dry``/``-R`` only echoes ``c.run`` commands, which drtool never uses, so on
    its own it would let a rebuild go on to the wipe. A task that changes anything either turns
    it into its own ``--dry-run`` or refuses before doing anything; only read-only tasks run."""
    c = args[0] if args else None
    try:
        dry = bool(c.config.run.dry)  # type: ignore[union-attr]
    except AttributeError:
        return
    if not dry:
        return
    if "dry_run" in inspect.signature(fn).parameters:
        kwargs["dry_run"] = True
        return
    writes = getattr(fn, READ_ONLY, None)
    if writes is not None and not any(kwargs.get(w) for w in writes):
        return
    name = task_name(fn)
    given = [f"--{w.replace('_', '-')}" for w in writes or () if kwargs.get(w)]
    why = f"with {', '.join(given)} it writes" if given else "it changes things and has no --dry-run"
    raise bad_arg("--dry", f"refusing to run {name}: {why}; nothing was done")


def guarded(fn):
    """Wrap a task body: DrtoolError → message + its exit code; Ctrl-C → 130; bug → one line + log, exit 70."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from drtool.secret import redact

        try:
            _honour_dry(fn, args, kwargs)
            return fn(*args, **kwargs)
        except Exit:
            raise
        except BadInput as exc:
            # One line per problem, so every mistake in a file is fixed in one go.
            lines = "\n".join(f"error: {line}" for line in redact(str(exc)).splitlines())
            raise Exit(lines, code=int(ExitCode.BAD_INPUT)) from None
        except DrtoolError as exc:
            # Multi-line messages (remote output tails) are useful: keep them, redacted.
            raise Exit(f"error: {redact(str(exc))}", code=int(exc.exit_code)) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=int(ExitCode.INTERRUPTED)) from None
        except BrokenPipeError:
            # The reader went away (`inv ... --json | head`): not a bug. Stop quietly, as a
            # command killed by SIGPIPE would; point stdout at /dev/null first so the
            # interpreter's final flush does not fail again (the Python docs' `signal` recipe).
            _silence_stdout()
            raise Exit(code=int(ExitCode.BROKEN_PIPE)) from None
        except Exception as exc:  # a bug: keep the terminal clean, keep the details
            try:
                with open(DEBUG_LOG, "a", encoding="utf-8") as fh:
                    fh.write(redact(traceback.format_exc()) + "\n")
            except OSError:
                pass
            raise Exit(
                f"error: internal error: {redact(_one_line(str(exc)) or type(exc).__name__)} (traceback in {DEBUG_LOG})",
                code=int(ExitCode.INTERNAL),
            ) from None

    return wrapper


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout already closed or not a real file
        pass


def bad_arg(name: str, problem: str) -> BadInput:
    """A bad command-line argument, reported like a bad field."""
    return BadInput("command line", name, problem)


def inventory_task(*positional: str, **kwargs):
    """``@task`` whose inventory may also be given as a bare word after ``positional``
    (``inv rebuild inventory/home.yaml``), or left out for the default (see ``inventory_path``)."""
    from drtool.tasks._posarg import OptionalPositionalTask

    return invoke.task(klass=OptionalPositionalTask, positional=[*positional, "inventory"], **kwargs)


INVENTORY_ENV = "DRTOOL_INVENTORY"


def inventory_path(c, inventory: str | None) -> str | None:
    """The inventory to use: the argument, else ``$DRTOOL_INVENTORY``, else ``drtool.inventory``
    from Invoke's configuration (``invoke.yaml`` beside tasks.py, ``~/.invoke.yaml``,
    ``/etc/invoke.yaml`` or ``INVOKE_DRTOOL_INVENTORY``)."""
    if inventory:
        return inventory
    if os.environ.get(INVENTORY_ENV):
        return os.environ[INVENTORY_ENV]
    try:
        configured = c.config.drtool.inventory
    except (AttributeError, KeyError):
        return None
    return str(configured) if configured else None


def load(inventory: str | None, c=None):
    """The inventory given to a task, or the default one; none at all is bad input.

    Loading it also makes its runs directory the one this process uses (unless
    ``$DRTOOL_RUNS_DIR`` says otherwise)."""
    path = inventory_path(c, inventory)
    if not path:
        raise bad_arg("--inventory", f"required: give the inventory file as an argument or with -i, or set "
                                     f"${INVENTORY_ENV} or drtool.inventory in invoke.yaml")
    from drtool.inventory import load_inventory
    from drtool.run import use_runs_dir

    inv = load_inventory(path)
    use_runs_dir(inv.runs_path)
    return inv


def default_runs_dir(c) -> None:
    """For tasks without an inventory argument (``report RUN_ID``): runs are found through the
    default inventory when there is one, so they do not depend on the current directory."""
    if os.environ.get("DRTOOL_RUNS_DIR"):
        return
    path = inventory_path(c, None)
    if path:
        load(path, c)


def console(quiet: bool = False):
    from rich.console import Console

    return Console(stderr=False, quiet=quiet, highlight=False, soft_wrap=True)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")


def prune_runs(inv, current: str | None = None, quiet: bool = False) -> None:
    """Apply ``backup.keep_runs`` after a run; a failure to prune never changes the run's outcome."""
    from drtool.retention import prune_runs as prune
    from drtool.run import runs_dir

    try:
        removed = prune(runs_dir(), inv.cluster.name, inv.backup.keep_runs, protect=(current,) if current else ())
    except OSError as exc:
        print(f"warning: could not remove old runs: {exc}", file=sys.stderr)
        return
    if removed and not quiet:
        print(f"removed {len(removed)} old run(s) of cluster {inv.cluster.name} (backup.keep_runs: {inv.backup.keep_runs})")
