"""How the lab's flux CLI prints progress (a light module: `flux version` loads only this)."""
from __future__ import annotations

import sys


def say(symbol: str, text: str) -> None:
    """Flux writes its progress to stderr."""
    print(f"{symbol} {text}", file=sys.stderr, flush=True)
