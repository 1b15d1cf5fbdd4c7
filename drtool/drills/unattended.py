"""What a scheduled drill needs to run with nobody at the keyboard.

A timer or cron job starts ``inv drill`` with almost no environment: the operator's
shell, where ``GITHUB_TOKEN`` and ``K3S_TOKEN`` live, is not there. The tokens reach
the drill in one of two ways, both kept out of the unit files and the crontab:

- an environment file (``KEY=VALUE`` lines), mode 0600, named by systemd's
  ``EnvironmentFile=`` or read by the cron line's shell with ``set -a; . FILE``;
- systemd credentials (``LoadCredential=NAME:PATH``): systemd copies each file into
  ``$CREDENTIALS_DIRECTORY`` (systemd.exec(5), "Credentials"), and
  :func:`load_credentials` turns every ``NAME`` there into the variable ``NAME``.

:func:`check_unattended` runs preflight's local checks against exactly the environment
the scheduled drill will get, so ``inv drill.schedule --check`` says before the first
night whether the drill would fail its preflight.
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Mapping, MutableMapping

from drtool.errors import BadInput
from drtool.inventory import Inventory

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A value both systemd's EnvironmentFile= parser and a POSIX shell read the same way: no
# quotes, blanks, backslashes, '$' or backquotes (tokens and URLs never need them).
_PLAIN_VALUE = re.compile(r"[^\s'\"\\$`;&|<>()]*")
# What a systemd service or a cron job has besides what the file brings.
BASE_ENVIRONMENT = ("PATH", "HOME", "LANG", "USER", "LOGNAME", "SHELL", "TZ")


def check_env_file(path: str | Path, field: str = "--env-file") -> Path:
    """The absolute path of an environment file fit for secrets; raises ``BadInput``.

    It must exist, be a regular file owned by this user (or root), and be readable by
    its owner only (0600 or stricter): it holds the tokens that rebuild the cluster."""
    p = Path(os.path.expanduser(str(path))).resolve()
    try:
        st = p.stat()
    except FileNotFoundError:
        raise BadInput("command line", field, f"{p}: file not found") from None
    except OSError as exc:
        raise BadInput("command line", field, f"{p}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise BadInput("command line", field, f"{p}: not a regular file")
    if st.st_mode & 0o077:
        raise BadInput("command line", field,
                       f"{p}: mode {stat.S_IMODE(st.st_mode):04o} lets others read the tokens; run chmod 600 {p}")
    if st.st_uid not in (os.getuid(), 0):
        raise BadInput("command line", field, f"{p}: owned by uid {st.st_uid}, not by this user or root")
    parent = p.parent.stat()
    if parent.st_mode & 0o022 and not parent.st_mode & stat.S_ISVTX:
        # Anyone who can write the folder can swap the file for one with their own tokens or commands.
        raise BadInput("command line", field, f"{p}: its folder {p.parent} is writable by others; keep it in a private one")
    return p


def read_env_file(path: Path, field: str = "--env-file") -> dict[str, str]:
    """``KEY=VALUE`` lines (blank lines and ``#`` comments allowed) as a dict; raises
    ``BadInput`` naming the line, never its value."""
    out: dict[str, str] = {}
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        if not sep or not _NAME.fullmatch(key):
            raise BadInput(str(path), f"line {n}", "expected KEY=VALUE")
        if not _PLAIN_VALUE.fullmatch(value):
            raise BadInput(str(path), f"line {n} ({key})",
                           "the value has quotes, blanks or shell characters; systemd and sh would read it differently")
        out[key] = value
    return out


def parse_credentials(specs: list[str] | tuple[str, ...] | None) -> dict[str, Path]:
    """``["GITHUB_TOKEN=/etc/drtool/github-token", ...]`` -> ``{name: absolute path}``;
    each file must exist and be readable by its owner only. Raises ``BadInput``."""
    out: dict[str, Path] = {}
    for spec in specs or ():
        name, sep, path = str(spec).partition("=")
        if not sep or not _NAME.fullmatch(name) or not path:
            raise BadInput("command line", "--credential", f"{spec!r}: expected NAME=/path/to/file")
        out[name] = check_env_file(path, f"--credential {name}")
    return out


def load_credentials(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Under systemd with ``LoadCredential=``: set each credential in
    ``$CREDENTIALS_DIRECTORY`` as the variable of the same name (a variable already set
    wins). Returns the names set; does nothing elsewhere."""
    env = os.environ if environ is None else environ
    directory = env.get("CREDENTIALS_DIRECTORY")
    if not directory or not os.path.isdir(directory):
        return []
    done = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if _NAME.fullmatch(entry.name) and entry.is_file() and not env.get(entry.name):
            env[entry.name] = Path(entry.path).read_text().strip()
            done.append(entry.name)
    return done


def required_variables(inv: Inventory) -> dict[str, str]:
    """``{variable: what needs it}``: what the drill reads from its environment."""
    need: dict[str, str] = {}
    if inv.flux.token_variable:
        need[str(inv.flux.token_variable)] = "flux bootstrap (flux.token_env)"
    if inv.k3s.token is not None and inv.k3s.token.token_env:
        need[inv.k3s.token.token_env] = "the K3s cluster token (k3s.token.token_env)"
    for i, hook in enumerate(inv.drill.notify):
        url_env = getattr(hook, "url_env", None)
        if url_env:
            need[url_env] = f"webhook {hook.name} (drill.notify[{i}].url_env)"
    return need


def scheduled_environment(env_file: Path | None, credentials: Mapping[str, Path],
                          current: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment the scheduled drill will see: a few basics, the env file, the credentials."""
    current = os.environ if current is None else current
    env = {k: current[k] for k in BASE_ENVIRONMENT if k in current}
    if env_file is not None:
        env.update(read_env_file(env_file))
    for name, path in credentials.items():
        env.setdefault(name, path.read_text().strip())
    return env


def check_unattended(inv: Inventory, env_file: Path | None, credentials: Mapping[str, Path],
                     current: Mapping[str, str] | None = None) -> list[tuple[str, str, str]]:
    """Preflight's local checks, and every variable the drill reads, against the scheduled
    environment: ``[(check, "pass"|"fail"|"warn", detail)]``. Never shows a value."""
    from drtool.phases.preflight import local_checks

    env = scheduled_environment(env_file, credentials, current)
    source = {**{k: f"from {env_file}" for k in (read_env_file(env_file) if env_file else {})},
              **{k: f"credential {p}" for k, p in credentials.items()}}
    rows: list[tuple[str, str, str]] = [(c.name, c.state, c.detail) for c in local_checks(inv, env)]
    for var, why in required_variables(inv).items():
        if env.get(var):
            rows.append(("environment", "pass", f"{var} for {why}: {source.get(var, 'set')}"))
        else:
            rows.append(("environment", "fail",
                         f"{var} for {why} is not set for the scheduled drill: put it in --env-file or --credential"))
    return rows
