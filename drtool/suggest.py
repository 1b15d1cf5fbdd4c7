""""Did you mean ...?" for names an operator types: keys, phases, node names, parameters."""
from __future__ import annotations

import difflib
from typing import Iterable


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice that ``word`` is most likely a typo of, or None when nothing is close."""
    matches = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'role'?)`` or an empty string; ready to append to a message."""
    match = closest(word, choices)
    return f" (did you mean {match!r}?)" if match else ""
