"""``python -m drtool.lab.scenarios critical-path FILE [--repo DIR] [--path clusters/homelab]``.

Prints the scenario's critical path in seconds (see ``drtool.lab.scenarios.critical``);
``validate FILE...`` checks scenario files. Exit 2 with ``file: field: problem`` on bad input.
"""
from __future__ import annotations

import argparse
import sys

from drtool.errors import BadInput, ExitCode
from drtool.lab.gitops_repo import DEFAULT_CLUSTER_PATH, fixture_dir

from . import critical_path, load_scenario


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drtool.lab.scenarios")
    sub = parser.add_subparsers(dest="command", required=True)
    cp = sub.add_parser("critical-path", help="least seconds from K3s install start to all-ready")
    cp.add_argument("file")
    cp.add_argument("--repo", default=None, help="GitOps checkout (default: the lab fixture)")
    cp.add_argument("--path", default=DEFAULT_CLUSTER_PATH, help="cluster path Flux watches")
    val = sub.add_parser("validate", help="check scenario files")
    val.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    try:
        if args.command == "validate":
            for f in args.files:
                print(f"{f}: ok ({load_scenario(f).name})")
            return ExitCode.OK
        seconds = critical_path(load_scenario(args.file), args.repo or fixture_dir(), args.path)
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    print(f"{seconds:.3f}")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
