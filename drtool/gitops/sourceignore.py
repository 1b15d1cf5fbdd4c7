"""Which files of a Git checkout end up in a Flux source artifact.

source-controller packs a GitRepository's checkout into the artifact that
kustomize-controller builds from, leaving out what fluxcd/pkg ``sourceignore`` v0.8.0
(``sourceignore/sourceignore.go``) excludes:

* the VCS files ``.git/``, ``.gitignore``, ``.gitmodules``, ``.gitattributes``;
* ``*.jpg,*.jpeg,*.gif,*.png,*.wmv,*.flv,*.tar.gz,*.zip``;
* CI files ``.github/``, ``.circleci/``, ``.travis.yml``, ``.gitlab-ci.yml``, ``appveyor.yml``,
  ``.drone.yml``, ``cloudbuild.yaml``, ``codeship-services.yml``, ``codeship-steps.yml``;
* ``**/.goreleaser.yml``, ``**/.sops.yaml``, ``**/.flux.yaml``;
* the patterns of every ``.sourceignore`` file (gitignore syntax, relative to the folder
  that holds it, ``#`` comments), then the GitRepository's ``spec.ignore``.

Patterns are gitignore patterns, matched with ``pathspec`` (the gitignore matcher go-git
implements for Flux).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pathspec

IGNORE_FILE = ".sourceignore"
EXCLUDE_VCS = ".git/,.gitignore,.gitmodules,.gitattributes"
EXCLUDE_EXT = "*.jpg,*.jpeg,*.gif,*.png,*.wmv,*.flv,*.tar.gz,*.zip"
EXCLUDE_CI = (".github/,.circleci/,.travis.yml,.gitlab-ci.yml,appveyor.yml,.drone.yml,cloudbuild.yaml,"
              "codeship-services.yml,codeship-steps.yml")
EXCLUDE_EXTRA = "**/.goreleaser.yml,**/.sops.yaml,**/.flux.yaml"


def _scoped(line: str, domain: str) -> str | None:
    """A gitignore line from ``domain/.sourceignore`` rewritten relative to the root."""
    line = line.rstrip("\n")
    if not line.strip() or line.startswith("#"):
        return None
    if not domain:
        return line
    negate = line.startswith("!")
    body = line[1:] if negate else line
    anchored = "/" in body.rstrip("/")
    body = body.lstrip("/") if anchored else "**/" + body
    return ("!" if negate else "") + f"{domain}/{body}"


def default_patterns() -> list[str]:
    """The patterns source-controller always applies."""
    return ",".join((EXCLUDE_VCS, EXCLUDE_EXT, EXCLUDE_CI, EXCLUDE_EXTRA)).split(",")


def load_patterns(root: Path, extra: str | None = None) -> list[str]:
    """Default patterns, every ``.sourceignore`` under ``root`` (outer first), then ``extra``."""
    lines = default_patterns()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        if IGNORE_FILE in filenames:
            domain = os.path.relpath(dirpath, root)
            domain = "" if domain == "." else domain.replace(os.sep, "/")
            text = (Path(dirpath) / IGNORE_FILE).read_text(errors="replace")
            lines.extend(p for p in (_scoped(raw, domain) for raw in text.splitlines()) if p)
    if extra:
        lines.extend(p for p in (_scoped(raw, "") for raw in extra.splitlines()) if p)
    return lines


def included_files(root: Path, extra: str | None = None) -> Iterator[str]:
    """Root-relative paths (``/``-separated) of the files the artifact keeps, sorted."""
    root = Path(root)
    spec = pathspec.GitIgnoreSpec.from_lines(load_patterns(root, extra))
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        # An ignored directory is never entered: gitignore cannot re-include below it.
        dirnames[:] = sorted(d for d in dirnames if not spec.match_file(f"{rel_dir}{d}/"))
        for name in sorted(filenames):
            rel = f"{rel_dir}{name}"
            if not spec.match_file(rel):
                yield rel
