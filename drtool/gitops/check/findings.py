"""A finding of the GitOps check: what will not come back from Git, where, and what to change."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Literal

Severity = Literal["blocker", "warning"]

# The seven kinds of finding, in the order the README and the output list them.
KINDS = ("crd-ordering", "api-version", "node-reference", "outside-git", "drift", "data", "repository")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._:/-]+")


@dataclass(frozen=True)
class Finding:
    kind: str
    """One of ``KINDS``."""
    severity: Severity
    subject: str
    """The object or reference the finding is about, e.g. ``Gateway/web/public``."""
    message: str
    fix: str
    """What to change so Git alone rebuilds the cluster."""
    kustomization: str = ""
    """``namespace/name`` of the Flux Kustomization the object comes from ("" when none)."""
    file: str = ""
    """Repository-relative file the object comes from ("" when it is not in Git)."""

    @property
    def id(self) -> str:
        """Stable, shell-safe id for ``--accept``: ``kind:kustomization:subject``."""
        ks = self.kustomization.split("/")[-1] if self.kustomization else "-"
        return _ID_UNSAFE.sub("_", f"{self.kind}:{ks}:{self.subject}")

    def to_dict(self) -> dict:
        return {"id": self.id, **asdict(self)}


@dataclass
class CheckResult:
    """Every finding of one check, plus what the check could not look at."""

    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What was not checked and why (no checkout, live cluster unreachable...)."""
    kustomizations: int = 0
    files: int = 0
    live: bool = False
    duration_s: float = 0.0

    def add(self, finding: Finding) -> None:
        if all(f.id != finding.id for f in self.findings):
            self.findings.append(finding)

    @property
    def blockers(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "blocker"]

    def unaccepted_blockers(self, accepted: set[str] | frozenset[str]) -> list[Finding]:
        return [f for f in self.blockers if f.id not in accepted]

    def sorted(self) -> list[Finding]:
        order = {k: i for i, k in enumerate(KINDS)}
        return sorted(self.findings, key=lambda f: (f.severity != "blocker", order.get(f.kind, 99), f.id))

    def to_dict(self, accepted: set[str] | frozenset[str] = frozenset()) -> dict:
        return {
            "ok": not self.unaccepted_blockers(accepted),
            "blockers": len(self.blockers),
            "warnings": len(self.findings) - len(self.blockers),
            "accepted": sorted(a for a in accepted if any(f.id == a for f in self.findings)),
            "kustomizations": self.kustomizations,
            "files": self.files,
            "live": self.live,
            "duration_s": round(self.duration_s, 3),
            "notes": list(self.notes),
            "findings": [{**f.to_dict(), "accepted": f.id in accepted} for f in self.sorted()],
        }
