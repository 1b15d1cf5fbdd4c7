"""Drill notifications to webhooks: generic JSON, Slack, Discord, ntfy and Alertmanager.

Configuration (inventory or drill settings)::

    notifications:
      - {name: team, type: slack, url: "https://hooks.slack.com/services/T0/B0/XXXX"}
      - {name: phone, type: ntfy, url: "https://ntfy.example/dr-drills", headers: {Authorization: "Bearer tk_..."}}
      - {name: am, type: alertmanager, url: "http://alertmanager:9093", timeout_s: 3}

Payload builders are pure (``build_request``); ``send`` does the HTTP with a bounded
number of tries and never raises: a notification that cannot be delivered must not
turn a drill that rebuilt the cluster into a crash, so each webhook yields a
:class:`NotifyResult` the caller records in the report.

Webhook URLs are credentials more often than not (Slack and Discord put the token in
the path, others in the query string): results and logs only ever show
:func:`mask_url`, and the secret parts are registered with the global redactor.
"""
from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from drtool.drills.history import Regression, as_number, phase_duration, phase_skipped, phase_succeeded
from drtool.errors import BadInput
from drtool.secret import MASK, Secret, redact

log = logging.getLogger(__name__)

WebhookType = Literal["json", "slack", "discord", "ntfy", "alertmanager"]

# Header names whose values are credentials (compared lower-case).
_SECRET_HEADERS = ("authorization", "token", "key", "secret", "password", "cookie")
# Path segment after which Slack/Discord (and similar) webhook URLs carry their token.
_TOKEN_PATH_MARKERS = ("services", "webhooks", "hooks")


class Webhook(BaseModel):
    """One configured webhook."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    type: WebhookType
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=5.0, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        parts = urllib.parse.urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http:// or https:// URL")
        return v

    def __repr__(self) -> str:  # never show the raw URL or header values
        return f"Webhook(name={self.name!r}, type={self.type!r}, url={mask_url(self.url)!r})"

    __str__ = __repr__


def load_webhooks(config: Sequence[Mapping[str, Any]] | None, source: str = "notifications") -> list[Webhook]:
    """Validate the ``notifications`` list; raises ``BadInput`` naming ``source`` and the field.

    Secret parts of URLs and credential headers are registered with the redactor.
    """
    if config is None:
        return []
    if not isinstance(config, Sequence) or isinstance(config, (str, bytes)):
        raise BadInput(source, "", "expected a list of webhooks")
    hooks: list[Webhook] = []
    for i, item in enumerate(config):
        try:
            hook = Webhook.model_validate(item)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            raise BadInput(source, f"[{i}]" + (f".{loc}" if loc else ""), err["msg"]) from None
        if hook.name in {h.name for h in hooks}:
            raise BadInput(source, f"[{i}].name", f"duplicate webhook name {hook.name!r}")
        _register_secrets(hook)
        hooks.append(hook)
    return hooks


def _register_secrets(hook: Webhook) -> None:
    for part in _url_secret_parts(hook.url):
        Secret(part, f"webhook {hook.name}")
    for k, v in hook.headers.items():
        if any(s in k.lower() for s in _SECRET_HEADERS):
            Secret(v, f"webhook {hook.name} header {k}")
            # "Bearer abc..." - register the token alone too, it may be logged without the scheme
            if " " in v:
                Secret(v.split(" ", 1)[1], f"webhook {hook.name} header {k}")


def _url_secret_parts(url: str) -> list[str]:
    parts = urllib.parse.urlsplit(url)
    out: list[str] = []
    if parts.password:
        out.append(parts.password)
    out += [v for _, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if v]
    segs = parts.path.split("/")
    for i, seg in enumerate(segs):
        if seg in _TOKEN_PATH_MARKERS:
            out += [s for s in segs[i + 1:] if s]
            break
    return out


def mask_url(url: str) -> str:
    """``url`` with credentials masked: userinfo password, every query value, and the
    path after ``/services/``, ``/webhooks/`` or ``/hooks/`` (Slack, Discord, ...)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", f":{MASK}@", 1)
    query = "&".join(f"{k}={MASK}" for k, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    segs = parts.path.split("/")
    for i, seg in enumerate(segs):
        if seg in _TOKEN_PATH_MARKERS and i + 1 < len(segs):
            segs = segs[: i + 1] + [MASK]
            break
    return urllib.parse.urlunsplit((parts.scheme, netloc, "/".join(segs), query, ""))


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class DrillSummary:
    """What every notification says about a drill."""

    cluster: str
    run_id: str
    verdict: str
    recovery_s: float | None
    objective_s: float | None
    started_at: float | None
    ended_at: float | None
    failed: tuple[str, ...] = ()          #: failed phases and post-checks, ``name: message``
    regressions: tuple[Regression, ...] = ()
    report_location: str = ""             #: report URL or path on the drill host
    host: str = ""
    trigger: str = ""
    phases: tuple[Mapping[str, Any], ...] = ()  #: ``{name, duration_s, outcome}`` in run order

    @property
    def ok(self) -> bool:
        return self.verdict == "pass"

    def headline(self) -> str:
        """``DR drill homelab: PASS in 512s (objective 900s)``."""
        rec = f"{self.recovery_s:.0f}s" if self.recovery_s is not None else "no recovery time"
        obj = f"{self.objective_s:.0f}s" if self.objective_s is not None else "none"
        return f"DR drill {self.cluster}: {self.verdict.upper()} in {rec} (objective {obj})"

    def detail_lines(self) -> list[str]:
        lines = [f"run {self.run_id}" + (f" on {self.host}" if self.host else "")
                 + (f", trigger {self.trigger}" if self.trigger else "")]
        lines += [f"failed: {f}" for f in self.failed]
        if self.regressions:
            lines.append("regressions: " + "; ".join(r.describe() for r in self.regressions))
        else:
            lines.append("regressions: none")
        if self.report_location:
            lines.append(f"report: {self.report_location}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": "drtool", "event": "drill", "cluster": self.cluster, "run_id": self.run_id,
            "verdict": self.verdict, "ok": self.ok, "recovery_s": self.recovery_s,
            "objective_s": self.objective_s, "started_at": self.started_at, "ended_at": self.ended_at,
            "host": self.host, "trigger": self.trigger, "failed": list(self.failed),
            "phases": [dict(p) for p in self.phases],
            "regressions": [r.to_dict() for r in self.regressions],
            "report": self.report_location, "summary": self.headline(),
        }


def summarize(report: Mapping[str, Any], regressions: Sequence[Regression] = (),
              report_location: str | None = None) -> DrillSummary:
    """Build the summary from a ``report.json`` dict. ``report_location`` defaults to the
    report's own HTML/JSON path (``paths``/``report_paths``) or ``runs/<run-id>/``."""
    failed, phases = [], []
    for ph in report.get("phases") or []:
        if not isinstance(ph, Mapping):
            continue
        phases.append({"name": str(ph.get("name", "?")), "duration_s": phase_duration(ph),
                       "outcome": str(ph.get("outcome", ""))})
        if not phase_succeeded(ph) and not phase_skipped(ph):
            failed.append(f"{ph.get('name')}: {ph.get('message') or ph.get('outcome')}")
    for chk in report.get("post_checks") or []:
        if isinstance(chk, Mapping) and not chk.get("ok"):
            failed.append(f"check {chk.get('name')}: {chk.get('message') or 'failed'}")
    return DrillSummary(
        cluster=str(report.get("cluster", "")), run_id=str(report.get("run_id", "")),
        verdict=str(report.get("verdict", "incomplete")),
        recovery_s=as_number(report.get("recovery_s")), objective_s=as_number(report.get("objective_s")),
        started_at=as_number(report.get("started_at")), ended_at=as_number(report.get("ended_at")),
        failed=tuple(redact(f) for f in failed), regressions=tuple(regressions), phases=tuple(phases),
        report_location=report_location or _report_location(report),
        host=str(report.get("host") or ""), trigger=str(report.get("trigger") or ""),
    )


def _report_location(report: Mapping[str, Any]) -> str:
    for key in ("paths", "report_paths", "reports"):
        paths = report.get(key)
        if isinstance(paths, Mapping):
            for kind in ("html", "report.html", "md", "json", "dir"):
                if paths.get(kind):
                    return str(paths[kind])
        elif isinstance(paths, Sequence) and not isinstance(paths, str) and paths:
            return str(paths[0])
    return f"runs/{report.get('run_id', '?')}/" if report.get("run_id") else ""


# --------------------------------------------------------------------------- payloads


@dataclass(frozen=True)
class OutgoingRequest:
    """An HTTP POST ready to send."""

    url: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


_COLOR = {"pass": 0x2EB67D, "over-objective": 0xECB22E, "fail": 0xE01E5A, "incomplete": 0x9B59B6}
_EMOJI = {"pass": "white_check_mark", "over-objective": "warning", "fail": "rotating_light",
          "incomplete": "grey_question"}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def build_request(hook: Webhook, s: DrillSummary, *, now: float | None = None,
                  alert_hold_s: float = 24 * 3600, report_url: str | None = None) -> OutgoingRequest:
    """The POST for ``hook``'s type. ``now`` (epoch s) is injectable for tests.

    Alertmanager: a failing drill is a firing ``severity=critical`` alert (over-objective:
    ``warning``) held for ``alert_hold_s``; a passing one sends both severities already
    resolved (``endsAt`` = now), which clears an earlier drill's alert. ``report_url``
    becomes ``generatorURL`` when it is an http(s) URL.
    """
    now = time.time() if now is None else now
    headers = {"Content-Type": "application/json", "User-Agent": "drtool"}
    text = "\n".join([s.headline(), *s.detail_lines()])

    if hook.type == "json":
        body: Any = s.to_dict()
    elif hook.type == "slack":
        emoji = _EMOJI.get(s.verdict, "grey_question")
        body = {
            "text": f":{emoji}: {s.headline()}",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": s.headline()[:150]}},
                {"type": "section", "fields": [
                    {"type": "mrkdwn", "text": f"*Verdict*\n{_slack_escape(s.verdict)}"},
                    {"type": "mrkdwn", "text": f"*Recovery*\n{_secs(s.recovery_s)}"},
                    {"type": "mrkdwn", "text": f"*Objective*\n{_secs(s.objective_s)}"},
                    {"type": "mrkdwn", "text": f"*Regressions*\n{len(s.regressions)}"},
                ]},
                {"type": "section", "text": {"type": "mrkdwn",
                                             "text": _slack_escape("\n".join(s.detail_lines()))[:2900]}},
            ],
        }
    elif hook.type == "discord":
        body = {
            "content": s.headline()[:2000],
            "allowed_mentions": {"parse": []},  # a message in a report must never ping @everyone
            "embeds": [{
                "title": f"DR drill {s.cluster}"[:256],
                "description": "\n".join(s.detail_lines())[:4000],
                "color": _COLOR.get(s.verdict, 0x95A5A6),
                "fields": [
                    {"name": "Verdict", "value": s.verdict, "inline": True},
                    {"name": "Recovery", "value": _secs(s.recovery_s), "inline": True},
                    {"name": "Objective", "value": _secs(s.objective_s), "inline": True},
                    {"name": "Regressions", "value": str(len(s.regressions)), "inline": True},
                ],
                **({"timestamp": _iso(s.ended_at)} if s.ended_at else {}),
            }],
        }
    elif hook.type == "ntfy":
        # ntfy reads metadata from headers; header values must be latin-1, keep them ASCII.
        nheaders = {
            "Content-Type": "text/plain; charset=utf-8", "User-Agent": "drtool",
            "Title": _ascii(s.headline()),
            "Priority": "default" if s.ok else ("high" if s.verdict == "over-objective" else "urgent"),
            "Tags": _EMOJI.get(s.verdict, "grey_question") + ",drtool",
        }
        return OutgoingRequest(hook.url, text.encode("utf-8"), {**nheaders, **hook.headers})
    elif hook.type == "alertmanager":
        body = _alertmanager_alerts(s, now, alert_hold_s, report_url, text)
        return OutgoingRequest(_alertmanager_url(hook.url), json.dumps(body).encode(), {**headers, **hook.headers})
    else:  # pragma: no cover - pydantic restricts the type
        raise ValueError(hook.type)
    return OutgoingRequest(hook.url, json.dumps(body).encode(), {**headers, **hook.headers})


def _alertmanager_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    path = parts.path.rstrip("/")
    if not path.endswith("/api/v2/alerts"):
        path += "/api/v2/alerts"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _alertmanager_alerts(s: DrillSummary, now: float, hold_s: float, report_url: str | None,
                         text: str) -> list[dict]:
    def alert(severity: str, ends: float) -> dict:
        a: dict[str, Any] = {
            "labels": {"alertname": "DrtoolDrill", "cluster": s.cluster, "severity": severity},
            "annotations": {"summary": s.headline(), "description": text, "verdict": s.verdict,
                            "run_id": s.run_id, "report": s.report_location},
            "startsAt": _iso(s.ended_at or now),
            "endsAt": _iso(ends),
        }
        if report_url and report_url.startswith(("http://", "https://")):
            a["generatorURL"] = report_url
        return a

    if s.ok:
        return [alert("critical", now), alert("warning", now)]
    severity = "warning" if s.verdict == "over-objective" else "critical"
    return [alert(severity, now + hold_s)]


def _secs(v: float | None) -> str:
    return f"{v:.0f}s" if v is not None else "-"


def _slack_escape(text: str) -> str:
    # Slack mrkdwn control characters; stops "<!channel>" in a message from paging people.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii").replace("\r", " ").replace("\n", " ")


# --------------------------------------------------------------------------- sending


@dataclass(frozen=True)
class NotifyResult:
    """Outcome of one webhook: never contains the raw URL or credentials."""

    name: str
    type: str
    url: str                 #: masked
    ok: bool
    status: int | None       #: last HTTP status, None when no response came back
    attempts: int
    error: str = ""
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "url": self.url, "ok": self.ok, "status": self.status,
                "attempts": self.attempts, "error": self.error, "elapsed_s": round(self.elapsed_s, 3)}


# Direct connections only: an environment proxy must not receive drill results (and tokens).
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def send(req: OutgoingRequest, hook: Webhook, *, tries: int = 3, backoff_s: float = 0.5,
         sleep: Callable[[float], None] = time.sleep) -> NotifyResult:
    """POST ``req`` with at most ``tries`` attempts (backoff ``backoff_s``, doubled each
    retry; each attempt bounded by ``hook.timeout_s``). Retries connection errors,
    timeouts, 429 and 5xx; other 4xx are final. Never raises."""
    tries = max(1, tries)
    masked = mask_url(hook.url)
    start = time.monotonic()
    status: int | None = None
    error = ""
    attempt = 0
    for attempt in range(1, tries + 1):
        retry = True
        try:
            r = urllib.request.Request(req.url, data=req.body, headers=dict(req.headers), method="POST")
            with _OPENER.open(r, timeout=hook.timeout_s) as resp:
                status = resp.status
                resp.read(65536)
            return NotifyResult(hook.name, hook.type, masked, True, status, attempt, "",
                                time.monotonic() - start)
        except urllib.error.HTTPError as exc:
            status = exc.code
            detail = ""
            try:
                detail = exc.read(300).decode("utf-8", "replace").strip()
            except Exception:  # the body is a courtesy; the status is what matters
                pass
            finally:
                exc.close()
            error = f"HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else "")
            retry = _retryable_status(exc.code)
        except urllib.error.URLError as exc:
            status, error = None, f"connection failed: {exc.reason}"
        except (TimeoutError, OSError) as exc:
            status, error = None, f"connection failed: {exc.__class__.__name__}: {exc}"
        except Exception as exc:  # never let a notification crash the drill
            status, error, retry = None, f"{exc.__class__.__name__}: {exc}", False
        error = redact(error).replace(hook.url, masked)
        log.info("notification %s (%s) attempt %d/%d failed: %s", hook.name, masked, attempt, tries, error)
        if not retry or attempt == tries:
            break
        sleep(backoff_s * (2 ** (attempt - 1)))
    log.warning("notification %s (%s) failed after %d attempt(s): %s", hook.name, masked, attempt, error)
    return NotifyResult(hook.name, hook.type, masked, False, status, attempt, error, time.monotonic() - start)


def notify_all(
    webhooks: Sequence[Webhook],
    report: Mapping[str, Any],
    regressions: Sequence[Regression] = (),
    *,
    report_location: str | None = None,
    report_url: str | None = None,
    tries: int = 3,
    backoff_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    now: float | None = None,
) -> list[NotifyResult]:
    """Send the drill summary to every webhook; one :class:`NotifyResult` each, in order.

    Never raises: a webhook whose payload cannot even be built gets a failed result.
    """
    summary = summarize(report, regressions, report_location or report_url)
    results: list[NotifyResult] = []
    for hook in webhooks:
        try:
            req = build_request(hook, summary, now=now, report_url=report_url)
        except Exception as exc:
            results.append(NotifyResult(hook.name, hook.type, mask_url(hook.url), False, None, 0,
                                        redact(f"cannot build payload: {exc}")))
            continue
        results.append(send(req, hook, tries=tries, backoff_s=backoff_s, sleep=sleep))
    return results
