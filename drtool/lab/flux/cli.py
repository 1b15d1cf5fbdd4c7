"""Command line of the simulated ``flux``: ``bootstrap github|gitlab|git``, ``check [--pre]``,
``version [--client]``, ``--version``.

Flags follow the real CLI's spelling, including ``--flag=value`` and booleans written
``--private=false``. Errors print ``✗ <message>`` on stderr and exit 1, as flux does.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, NoReturn

from . import manifests
from .output import say

if TYPE_CHECKING:
    from .bootstrap import BootstrapSpec

# What bootstrap and check need (the kubernetes client, the lab's scenario models: ~0.5 s of
# imports) is imported where they run: drtool calls `flux version --client` in every preflight.

MIN_KUBERNETES = (1, 28, 0)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        say("✗", message)
        sys.exit(1)


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "t", "yes"):
        return True
    if value in ("false", "0", "f", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")


def _flag(parser: argparse.ArgumentParser, name: str, help_text: str) -> None:
    parser.add_argument(name, type=_bool, nargs="?", const=True, default=False, help=help_text)


def _global_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", default=None)
    parser.add_argument("--context", default=None)
    parser.add_argument("-n", "--namespace", default=manifests.NAMESPACE)
    parser.add_argument("--timeout", default="5m0s")
    parser.add_argument("--verbose", action="store_true")


def build_parser(version: str) -> argparse.ArgumentParser:
    parser = _Parser(prog="flux", add_help=True)
    parser.add_argument("--version", action="version", version=f"flux version {version.lstrip('v')}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    boot = sub.add_parser("bootstrap")
    providers = boot.add_subparsers(dest="provider", parser_class=_Parser)
    for provider in ("github", "gitlab", "git"):
        p = providers.add_parser(provider)
        _global_flags(p)
        p.add_argument("--branch", default="main")
        p.add_argument("--path", default=".")
        p.add_argument("--version", dest="components_version", default=None)
        p.add_argument("--components", default=",".join(manifests.COMPONENTS))
        p.add_argument("--components-extra", default="")
        p.add_argument("--toleration-keys", default="")
        p.add_argument("--network-policy", type=_bool, nargs="?", const=True, default=True)
        p.add_argument("--watch-all-namespaces", type=_bool, nargs="?", const=True, default=True)
        p.add_argument("--cluster-domain", default="cluster.local")
        p.add_argument("--registry", default="ghcr.io/fluxcd")
        p.add_argument("--log-level", default="info", choices=("debug", "info", "error"))
        p.add_argument("--image-pull-secret", default="")
        p.add_argument("--secret-name", default=None)
        _flag(p, "--token-auth", "use the token as Git credentials instead of a deploy key")
        p.add_argument("--author-name", default="Flux")
        p.add_argument("--author-email", default="")
        if provider == "git":
            p.add_argument("--url", required=True)
            p.add_argument("--private-key-file", default=None)
            p.add_argument("--username", "-u", default="git")
            p.add_argument("--password", "-p", default=None)
            _flag(p, "--silent", "assume the deploy key is already set up")
            _flag(p, "--allow-insecure-http", "allow http:// URLs")
        else:
            p.add_argument("--owner", required=True)
            p.add_argument("--repository", required=True)
            p.add_argument("--hostname", default=f"{provider}.com")
            _flag(p, "--personal", "the owner is a user account")
            _flag(p, "--private", "the repository is private")
            _flag(p, "--read-write-key", "give the deploy key write access")
            p.add_argument("--team", action="append", default=[])
            p.add_argument("--visibility", default="private")

    check = sub.add_parser("check")
    _global_flags(check)
    _flag(check, "--pre", "only check the prerequisites")

    ver = sub.add_parser("version")
    _global_flags(ver)
    _flag(ver, "--client", "only print the CLI version")
    return parser


def _bootstrap_spec(args: argparse.Namespace, version: str) -> BootstrapSpec:
    from drtool.lab.controllers.durations import parse_duration

    from .bootstrap import BootstrapError, BootstrapSpec
    from .install_options import InstallOptions

    provider = args.provider
    extra = tuple(x.strip() for x in args.components_extra.split(",") if x.strip())
    components = tuple(x.strip() for x in args.components.split(",") if x.strip()) + extra
    # flux2 v2.4.0 cmd/flux/bootstrap.go bootstrapValidate.
    for required in ("source-controller", "kustomize-controller"):
        if required not in components:
            raise BootstrapError(f"component {required} is required")
    install = InstallOptions(
        components=components, network_policy=args.network_policy, watch_all_namespaces=args.watch_all_namespaces,
        toleration_keys=tuple(x.strip() for x in args.toleration_keys.split(",") if x.strip()),
        cluster_domain=args.cluster_domain, registry=args.registry, log_level=args.log_level,
        image_pull_secret=args.image_pull_secret)
    path = args.path.strip().removeprefix("./").strip("/") or "."
    common = dict(branch=args.branch, path=path, components_extra=extra, install=install,
                  version=args.components_version or version, namespace=args.namespace,
                  timeout=parse_duration(args.timeout, 300.0), kubeconfig=args.kubeconfig, context=args.context)
    if provider == "git":
        url = args.url.rstrip("/")
        host = url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
        return BootstrapSpec(provider=provider, repo_url=url.removesuffix(".git"), sync_url=url, host=host,
                             token_env=None, token=None, token_auth=bool(args.token_auth),
                             private_key_file=args.private_key_file,
                             # bootstrap_git.go (v2.4.0): GIT_PASSWORD when --password is not given.
                             password=args.password or os.environ.get("GIT_PASSWORD") or None,
                             username=args.username, silent=bool(args.silent), **common)
    token_env = "GITHUB_TOKEN" if provider == "github" else "GITLAB_TOKEN"
    host = args.hostname
    repo_url = f"https://{host}/{args.owner}/{args.repository}"
    sync_url = f"{repo_url}.git" if args.token_auth else f"ssh://git@{host}/{args.owner}/{args.repository}"
    return BootstrapSpec(provider=provider, repo_url=repo_url, sync_url=sync_url, host=host, token_env=token_env,
                         token=os.environ.get(token_env) or None, token_auth=bool(args.token_auth),
                         private_key_file=None, password=None, username="git", silent=True, **common)


def _semver(text: str) -> tuple[int, int, int]:
    core = text.lstrip("v").split("+")[0].split("-")[0]
    parts = (core.split(".") + ["0", "0", "0"])[:3]
    return tuple(int(p) if p.isdigit() else 0 for p in parts)  # type: ignore[return-value]


def _check(args: argparse.Namespace) -> int:
    from .kube import Kube

    say("►", "checking prerequisites")
    kube = Kube(args.kubeconfig, args.context)
    try:
        info = kube.version()
        git_version = str(info.get("gitVersion", "v0.0.0")).lstrip("v")
        wanted = ".".join(map(str, MIN_KUBERNETES))
        if _semver(git_version) < MIN_KUBERNETES:
            say("✗", f"Kubernetes version {git_version} does not match >={wanted}-0")
            return 1
        say("✔", f"Kubernetes {git_version} >={wanted}-0")
        if args.pre:
            say("✔", "prerequisites checks passed")
            return 0
        say("►", "checking version in cluster")
        say("►", "checking controllers")
        failed = False
        for name in manifests.COMPONENTS:
            dep = kube.get_deployment(args.namespace, name)
            available = int(((dep or {}).get("status") or {}).get("availableReplicas") or 0)
            if dep is None or available < 1:
                say("✗", f"{name}: deployment not ready")
                failed = True
            else:
                say("✔", f"{name}: deployment ready")
                image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
                say("►", image)
        if failed:
            say("✗", "check failed")
            return 1
        say("✔", "all checks passed")
        return 0
    finally:
        kube.close()


def main(argv: list[str] | None = None, *, lab_dir: str | None = None,
         version: str = manifests.DEFAULT_VERSION) -> int:
    """Run the CLI; returns the process exit status."""
    parser = build_parser(version)
    args = parser.parse_args(argv)
    if args.command == "version":
        print(f"flux: {version}")
        return 0
    from drtool.errors import BadInput

    from .bootstrap import Bootstrap, BootstrapError
    from .components import components_list
    from .kube import KubeError
    from .labenv import load_lab_env

    try:
        if args.command == "check":
            return _check(args)
        if args.command == "bootstrap" and args.provider:
            spec = _bootstrap_spec(args, version)
            try:
                components_list(spec.components_extra)
            except ValueError as exc:
                raise BootstrapError(str(exc)) from None
            Bootstrap(spec, load_lab_env(lab_dir)).run()
            return 0
        parser.print_help(sys.stderr)
        return 1
    except BootstrapError as exc:
        say("✗", str(exc))
    except KubeError as exc:
        say("✗", str(exc))
    except BadInput as exc:
        say("✗", f"lab scenario: {exc}")
    return 1
