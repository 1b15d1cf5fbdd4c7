"""One-shot status (``inv status``): list every kind once and judge it like the engine."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from drtool.converge.assessment import assess, required_kinds, unmet_expectations
from drtool.converge.engine import as_transport
from drtool.converge.options import ConvergeOptions
from drtool.kube.watcher import DEFAULT_KINDS, KindSpec, Watcher
from drtool.secret import redact

# --- one-shot status ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SnapshotRow:
    kind: str
    namespace: str
    name: str
    state: str
    reason: str
    message: str
    done: bool
    problem: str = ""


@dataclass(frozen=True)
class Snapshot:
    """The cluster as listed once, for ``inv status``."""

    ok: bool
    rows: tuple[SnapshotRow, ...]
    counts: dict[str, tuple[int, int]]
    """Per kind: (done, counted)."""
    missing: tuple[str, ...]
    """Unmet expectations and kinds that could not be listed."""
    api_requests: dict[str, int]

    @property
    def not_done(self) -> tuple[SnapshotRow, ...]:
        return tuple(r for r in self.rows if not r.done)


def snapshot(api_client, options: ConvergeOptions, kinds: Iterable[KindSpec] = DEFAULT_KINDS) -> Snapshot:
    """List every kind once (no waiting) and judge it with the same rules as ``Converger``."""
    transport = as_transport(api_client)
    watcher = Watcher(transport, kinds)
    watcher.list_once()
    rows: list[SnapshotRow] = []
    counts: dict[str, list[int]] = {}
    for rec in sorted(watcher.records(), key=lambda r: (r.kind, r.namespace, r.name)):
        verdict = assess(rec.kind, rec.obj, rec.status, options)
        if not verdict.counted:
            continue
        c = counts.setdefault(rec.kind, [0, 0])
        c[0] += verdict.done
        c[1] += 1
        problem = f"{verdict.problem[0]}: {verdict.problem[1]}" if verdict.problem else ""
        rows.append(SnapshotRow(rec.kind, rec.namespace, rec.name, rec.status.state, rec.status.reason,
                                redact(rec.status.message), verdict.done, redact(problem)))
    synced, absent = watcher.synced(), watcher.absent()
    missing = [f"{k} (could not be listed)" for k, ok in synced.items()
               if not ok and (k not in absent or k in required_kinds(options))]
    missing += unmet_expectations(watcher.get, options)
    ok = not missing and all(r.done for r in rows)
    return Snapshot(ok, tuple(rows), {k: (v[0], v[1]) for k, v in counts.items()}, tuple(missing),
                    dict(transport.requests))
