"""``python -m drtool.lab.api``: run the lab API server until SIGTERM/SIGINT.

Writes its CAs, certificates and an admin ``kubeconfig.yaml`` into ``--state-dir``
and prints one ``listening <url>`` line on stdout once it accepts connections.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from .server import DEFAULT_VERSION, LabApiServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m drtool.lab.api", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=6443)
    p.add_argument("--state-dir", required=True, help="where CAs, certificates and kubeconfig.yaml go")
    p.add_argument("--persist", help="JSON file holding the objects across restarts (the datastore)")
    p.add_argument("--token-file", action="append", default=[],
                   help="file with accepted bearer tokens, one per line (repeatable)")
    p.add_argument("--tls-san", action="append", default=[], help="extra IP or DNS name for the serving cert")
    p.add_argument("--version", default=DEFAULT_VERSION, help="gitVersion reported by /version")
    p.add_argument("--history", type=int, default=10000, help="watch events kept for resuming")
    p.add_argument("--log-level", default="WARNING")
    return p.parse_args(argv)


def read_tokens(paths: list[str]) -> list[str]:
    tokens = []
    for path in paths:
        for line in Path(path).read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                tokens.append(line.strip())
    return tokens


async def serve(args: argparse.Namespace) -> None:
    server = LabApiServer(args.host, args.port, state_dir=args.state_dir, persist_path=args.persist,
                          tokens=read_tokens(args.token_file), tls_sans=args.tls_san, version=args.version,
                          history=args.history)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    print(f"listening {server.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
