"""Go ``time.Duration`` strings (``1m30s``, ``5m``, ``1h``) as Flux specs write them."""
from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

# kustomize-controller v1.4.0 kustomization_controller.go checkHealth: WaitForSet polls every 5 s.
HEALTH_POLL = 5.0


def parse_duration(text: object, default: float) -> float:
    """Seconds in ``text``; ``default`` when it is missing or malformed."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    if not isinstance(text, str) or not text.strip():
        return default
    text = text.strip()
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return default
    return sum(float(n) * _UNIT[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    """Go's rendering: ``5m0s``, ``30s``, ``1h0m0s``; under a second ``500ms`` (lab scenario delays)."""
    if 0 < seconds < 0.9995:
        return f"{int(round(seconds * 1000))}ms"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
