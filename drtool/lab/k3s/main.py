"""The ``k3s`` program of the lab: ``server``, ``agent``, ``etcd-snapshot``, ``kubectl``, ``--version``.

``LAB/artifacts/k3s`` calls :func:`main` with the lab directory baked in, so the program
finds ``lab.json`` (node addresses, the scenario) wherever drtool uploads it. Heavy
imports (aiohttp, the lab API) load only for ``server``: agents stay light.
"""
from __future__ import annotations

import os
import sys

from drtool.lab.k3s import K3S_COMMIT, K3S_VERSION, proc
from drtool.lab.k3s.flags import UsageError
from drtool.lab.k3s.rootfs import KUBECONFIG, RootFS, hostname

USAGE = """NAME:
   k3s - Kubernetes, but small and simple

USAGE:
   k3s [global options] command [command options] [arguments...]

COMMANDS:
   server         Run management server
   agent          Run node agent
   kubectl        Run kubectl
   etcd-snapshot  Manage etcd snapshots
"""


def _version() -> int:
    print(f"k3s version {K3S_VERSION} ({K3S_COMMIT})")
    print("go version go1.22.9")
    return 0


def _lab(lab_dir):
    from drtool.lab.k3s.labconfig import load_lab_config
    return load_lab_config(lab_dir or os.environ.get("DRTOOL_LAB_DIR"))


def _with_config_file(argv: list[str], fs: RootFS, server: bool) -> list[str]:
    """The config files' flags in front of the command line, as K3s's configfilearg does."""
    from drtool.lab.k3s.configfile import config_args
    from drtool.lab.k3s.flags import flag_names

    def listdir(path: str) -> list[str]:
        p = fs.path(path)
        return [c.name for c in p.iterdir() if c.is_file()] if p.is_dir() else []

    try:
        words = config_args(os.environ, lambda p: fs.path(p).is_file(), lambda p: fs.path(p).read_text(), listdir,
                            flag_names(server), proc.warn)
    except (OSError, ValueError) as exc:
        raise UsageError(f"failed to read config file: {exc}") from exc
    return [*words, *argv]


def _server(argv: list[str], lab_dir) -> int:
    import asyncio
    import logging
    from drtool.lab.k3s.flags import parse_server
    fs = RootFS.from_env()
    argv = _with_config_file(argv, fs, server=True)
    cfg = parse_server(argv, os.environ, hostname(), read_file=lambda p: fs.path(p).read_text())
    logging.basicConfig(level=logging.DEBUG if cfg.debug else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from drtool.lab.k3s import server
    return asyncio.run(server.run(cfg, fs, _lab(lab_dir)))


def _agent(argv: list[str], lab_dir) -> int:
    from drtool.lab.k3s.agent import run_agent
    from drtool.lab.k3s.flags import parse_agent
    fs = RootFS.from_env()
    argv = _with_config_file(argv, fs, server=False)
    cfg = parse_agent(argv, os.environ, hostname(), read_file=lambda p: fs.path(p).read_text())
    return run_agent(cfg, fs, _lab(lab_dir))


def _etcd_snapshot(argv: list[str]) -> int:
    from drtool.lab.k3s import datastore
    from drtool.lab.k3s.tokens import TokenError, parse_token
    fs = RootFS.from_env()
    sub = "save"
    if argv and not argv[0].startswith("-"):
        sub, argv = argv[0], argv[1:]
    opts = {"name": "on-demand", "dir": "", "data-dir": "/var/lib/rancher/k3s", "snapshot-retention": "5"}
    names: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg.startswith("-"):
            key, eq, value = arg.lstrip("-").partition("=")
            key = {"etcd-snapshot-dir": "dir", "d": "data-dir", "etcd-snapshot-retention": "snapshot-retention"}.get(key, key)
            if key in ("o", "output", "debug", "s3", "node-name", "token", "etcd-s3"):
                if not eq and key not in ("debug", "s3", "etcd-s3"):
                    next(it, None)
                continue
            if key not in opts:
                raise UsageError(f"flag provided but not defined: -{key}")
            opts[key] = value if eq else next(it, "")
        else:
            names.append(arg)
    data_dir = opts["data-dir"]
    try:
        if sub == "save":
            token_path = f"{data_dir}/server/token"
            try:
                secret = parse_token(fs.path(token_path).read_text()).password
            except (OSError, TokenError):
                return proc.fatal(f"open {token_path}: no such file or directory")
            info = datastore.save_snapshot(fs, data_dir, hostname(), secret, opts["name"], opts["dir"])
            proc.info(f"Snapshot {info.name} saved.")
            return 0
        if sub in ("ls", "list"):
            snaps = datastore.list_snapshots(fs, data_dir, opts["dir"])
            width = max([len(s.name) for s in snaps] + [4]) + 2
            lwidth = max([len(s.location) for s in snaps] + [8]) + 2
            print(f"{'Name':<{width}}{'Location':<{lwidth}}{'Size':<10}Created")
            for s in snaps:
                print(f"{s.name:<{width}}{s.location:<{lwidth}}{s.size:<10}{s.created}")
            return 0
        if sub in ("delete", "rm"):
            if not names:
                return proc.fatal("no snapshots given for removal")
            missing = datastore.delete_snapshots(fs, data_dir, names, opts["dir"])
            for name in names:
                if name not in missing:
                    proc.info(f"Snapshot {name} deleted.")
            if missing:
                return proc.fatal(f"snapshot(s) not found: {', '.join(missing)}")
            return 0
        if sub == "prune":
            for name in datastore.prune_snapshots(fs, data_dir, int(opts["snapshot-retention"]), opts["name"],
                                                  opts["dir"]):
                proc.info(f"Removing local snapshot {name}")
            return 0
    except datastore.SnapshotError as exc:
        return proc.fatal(str(exc))
    raise UsageError(f"No help topic for '{sub}'")


def _kubectl(argv: list[str], lab_dir) -> int:
    """Like K3s's embedded kubectl: the node's admin kubeconfig by default."""
    kubectl = "/usr/bin/kubectl"
    if not os.path.exists(kubectl):
        return proc.fatal("kubectl is not available on this node")
    env = dict(os.environ)
    if not env.get("KUBECONFIG") and not any(a.startswith("--kubeconfig") for a in argv):
        fs = RootFS.from_env()
        source = fs.path(KUBECONFIG)
        from drtool.lab.k3s.labconfig import lab_nodes, read_lab_json

        # lab.json's nodes only: this runs for every `k3s kubectl`, the scenario is not needed.
        _, raw = read_lab_json(lab_dir or os.environ.get("DRTOOL_LAB_DIR"))
        address = next((n.address for n in lab_nodes(raw) if n.name == hostname()), "") if isinstance(raw, dict) else ""
        if source.exists() and address:
            # Lab nodes share the host's loopback: the API is on the node address, not 127.0.0.1.
            target = fs.path("/run/k3s/kubectl.yaml")
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(source.read_text().replace("https://127.0.0.1:", f"https://{address}:"))
            env["KUBECONFIG"] = str(target)
        else:
            env["KUBECONFIG"] = str(source)
    os.execve(kubectl, [kubectl, *argv], env)
    return 1  # not reached


def _crictl(argv: list[str]) -> int:
    """Only ``crictl images``: what the node's image store holds (imported from agent/images)."""
    from drtool.lab.k3s import images
    from drtool.lab.k3s.rootfs import DATA_DIR

    if argv[:1] != ["images"]:
        print("crictl: only `images` is modelled on lab nodes", file=sys.stderr)
        return 1
    data_dir = os.environ.get("K3S_DATA_DIR") or DATA_DIR
    print(images.crictl_images(RootFS.from_env().path(f"{data_dir}/{images.STORE}")))
    return 0


def _ctr(argv: list[str]) -> int:
    """``ctr images ls|export|import`` on the node's image store (``drtool.lab.k3s.images.ctr``)."""
    from drtool.lab.k3s import images
    from drtool.lab.k3s.rootfs import DATA_DIR

    data_dir = os.environ.get("K3S_DATA_DIR") or DATA_DIR
    fs = RootFS.from_env()
    return images.ctr(argv, fs.path(f"{data_dir}/{images.STORE}"), fs)


def main(argv: list[str] | None = None, lab_dir: str | None = None) -> int:
    """Run the program named by ``argv[0]`` (k3s, or a kubectl/crictl/ctr symlink to it)."""
    argv = list(sys.argv if argv is None else argv)
    prog = os.path.basename(argv[0]) if argv else "k3s"
    args = argv[1:]
    try:
        if prog == "kubectl":
            return _kubectl(args, lab_dir)
        if prog == "ctr":
            return _ctr(args)
        if prog == "crictl":
            return _crictl(args)
        if not args or args[0] in ("-h", "--help", "help"):
            print(USAGE)
            return 0 if args else 1
        cmd, rest = args[0], args[1:]
        if cmd in ("-v", "--version", "version"):
            return _version()
        if cmd == "server":
            return _server(rest, lab_dir)
        if cmd == "agent":
            return _agent(rest, lab_dir)
        if cmd == "etcd-snapshot":
            return _etcd_snapshot(rest)
        if cmd == "kubectl":
            return _kubectl(rest, lab_dir)
        if cmd == "ctr":
            return _ctr(rest)
        if cmd == "crictl":
            return _crictl(rest)
        if cmd == "lab-fault" and rest[:1] == ["ssh-drop"] and len(rest) == 2:
            from drtool.lab.k3s.faults import ssh_drop

            return ssh_drop(rest[1], lab_dir)
        raise UsageError(f"No help topic for '{cmd}'")
    except UsageError as exc:
        print(f"Incorrect Usage: {exc}", file=sys.stderr)
        return proc.fatal(f"Error: {exc}")


if __name__ == "__main__":
    sys.exit(main())
