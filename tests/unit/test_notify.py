"""Webhook notifications, sent to a real HTTP server on 127.0.0.1."""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from drtool.drills.history import Regression
from drtool.drills.notify import build_request, load_webhooks, mask_url, notify_all, summarize
from drtool.errors import BadInput

T0 = 1_790_000_000.0
REG = Regression("converge", 300.0, 200.0, 4)


def report(verdict="fail"):
    return {
        "run_id": "01HXDRILL", "kind": "drill", "cluster": "homelab", "started_at": T0, "ended_at": T0 + 700,
        "recovery_s": 690.0, "objective_s": 900.0, "verdict": verdict, "trigger": "timer", "host": "ops1",
        "paths": {"json": "runs/01HXDRILL/report.json", "html": "runs/01HXDRILL/report.html"},
        "phases": [{"name": "converge", "duration_s": 300.0, "outcome": "failed" if verdict == "fail" else "ok",
                    "message": "HelmRelease logging/loki RetriesExceeded"}],
        "post_checks": [],
    }


class Receiver:
    """A tiny webhook receiver: records each request; answers per path (``/status/503``, ``/flaky``)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.flaky_left = 2
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                code = 200
                if self.path.startswith("/status/"):
                    code = int(self.path.split("/")[2])
                elif self.path.startswith("/flaky") and outer.flaky_left > 0:
                    outer.flaky_left -= 1
                    code = 503
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def body(self, i=-1):
        return self.requests[i]["body"]


@pytest.fixture
def receiver():
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()
    r.thread.join(timeout=5)


def hooks(receiver, *specs):
    return load_webhooks([{"name": n, "type": t, "url": receiver.url + p} for n, t, p in specs])


def no_sleep(_):
    pass


def test_each_payload_format_arrives(receiver):
    hs = hooks(receiver, ("generic", "json", "/json"), ("team", "slack", "/services/T0/B0/slacktoken1234"),
               ("chat", "discord", "/api/webhooks/1/discordtoken99"), ("phone", "ntfy", "/drills"),
               ("am", "alertmanager", "/"))
    results = notify_all(hs, report(), [REG], report_url="https://ops.example/runs/01HXDRILL/report.html",
                         now=T0 + 800, sleep=no_sleep)
    assert [(r.name, r.ok, r.status, r.attempts) for r in results] == [
        ("generic", True, 200, 1), ("team", True, 200, 1), ("chat", True, 200, 1), ("phone", True, 200, 1),
        ("am", True, 200, 1)]
    got = {req["path"]: req for req in receiver.requests}

    generic = json.loads(got["/json"]["body"])
    assert generic["verdict"] == "fail" and generic["recovery_s"] == 690.0 and generic["objective_s"] == 900.0
    assert generic["regressions"][0]["phase"] == "converge" and generic["cluster"] == "homelab"
    assert generic["report"] == "https://ops.example/runs/01HXDRILL/report.html"
    assert generic["failed"] == ["converge: HelmRelease logging/loki RetriesExceeded"]
    assert generic["phases"] == [{"name": "converge", "duration_s": 300.0, "outcome": "failed"}]

    slack = json.loads(got["/services/T0/B0/slacktoken1234"]["body"])
    assert slack["text"].startswith(":rotating_light: DR drill homelab: FAIL in 690s (objective 900s)")
    flat = json.dumps(slack["blocks"])
    assert "converge 300.0s vs median 200.0s" in flat and "report.html" in flat

    discord = json.loads(got["/api/webhooks/1/discordtoken99"]["body"])
    assert discord["content"] == "DR drill homelab: FAIL in 690s (objective 900s)"
    embed = discord["embeds"][0]
    assert {f["name"]: f["value"] for f in embed["fields"]}["Regressions"] == "1"
    assert "report.html" in embed["description"] and discord["allowed_mentions"] == {"parse": []}

    ntfy = got["/drills"]
    text = ntfy["body"].decode()
    assert ntfy["headers"]["Title"] == "DR drill homelab: FAIL in 690s (objective 900s)"
    assert ntfy["headers"]["Priority"] == "urgent" and "rotating_light" in ntfy["headers"]["Tags"]
    assert "regressions: converge 300.0s" in text and "report: https://ops.example" in text

    am = got["/api/v2/alerts"]
    alerts = json.loads(am["body"])
    assert len(alerts) == 1
    a = alerts[0]
    assert a["labels"] == {"alertname": "DrtoolDrill", "cluster": "homelab", "severity": "critical"}
    assert a["annotations"]["summary"].startswith("DR drill homelab: FAIL")
    assert "converge" in a["annotations"]["description"]
    assert a["startsAt"] == "2026-09-21T14:25:00Z" and a["endsAt"] == "2026-09-22T14:26:40Z"
    assert a["generatorURL"] == "https://ops.example/runs/01HXDRILL/report.html"


def test_passing_drill_resolves_alertmanager_alerts():
    (hook,) = load_webhooks([{"name": "am", "type": "alertmanager", "url": "http://127.0.0.1:9/am/"}])
    req = build_request(hook, summarize(report("pass")), now=T0 + 800)
    assert req.url == "http://127.0.0.1:9/am/api/v2/alerts"
    alerts = json.loads(req.body)
    assert {a["labels"]["severity"] for a in alerts} == {"critical", "warning"}
    assert all(a["endsAt"] == "2026-09-21T14:26:40Z" for a in alerts)  # resolved now
    assert "generatorURL" not in alerts[0]  # no http(s) report URL given
    assert alerts[0]["annotations"]["report"] == "runs/01HXDRILL/report.html"


def test_flaky_webhook_is_retried_and_4xx_is_not(receiver):
    sleeps = []
    hs = hooks(receiver, ("flaky", "json", "/flaky"), ("bad", "json", "/status/400"),
               ("down", "json", "/status/503"))
    flaky, bad, down = notify_all(hs, report(), tries=3, backoff_s=0.25, sleep=sleeps.append)
    assert (flaky.ok, flaky.status, flaky.attempts) == (True, 200, 3)
    assert (bad.ok, bad.status, bad.attempts) == (False, 400, 1) and "HTTP 400" in bad.error
    assert (down.ok, down.status, down.attempts) == (False, 503, 3)
    assert sleeps == [0.25, 0.5, 0.25, 0.5]  # exponential backoff, none after the last try


def test_dead_webhook_fails_quickly_after_bounded_retries():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connection refused
    hs = load_webhooks([{"name": "dead", "type": "slack", "url": f"http://127.0.0.1:{port}/services/T/B/sekr3tvalue",
                         "timeout_s": 1}])
    slept: list[float] = []
    t = time.monotonic()
    (res,) = notify_all(hs, report(), sleep=slept.append)  # the default backoff, recorded instead of slept
    assert time.monotonic() - t + sum(slept) < 5 and len(slept) == 2
    assert not res.ok and res.attempts == 3 and res.status is None
    assert "connection failed" in res.error
    assert "sekr3t" not in repr(res) and res.url == f"http://127.0.0.1:{port}/services/***"


def test_urls_and_header_secrets_are_masked(receiver, caplog):
    url = receiver.url + "/status/500?token=qwertyuiop123&topic=x"
    (hook,) = load_webhooks([{"name": "n", "type": "ntfy", "url": url,
                              "headers": {"Authorization": "Bearer tk_abcdefghijkl"}}])
    assert "qwerty" not in repr(hook) and "tk_abc" not in str(hook)
    with caplog.at_level("DEBUG"):
        (res,) = notify_all([hook], report(), tries=2, sleep=no_sleep)
    assert res.url == f"{receiver.url}/status/500?token=***&topic=***"
    assert "qwerty" not in caplog.text and "qwerty" not in json.dumps(res.to_dict())
    # The credential was sent, though.
    assert receiver.requests[0]["headers"]["Authorization"] == "Bearer tk_abcdefghijkl"


@pytest.mark.parametrize("url,masked", [
    ("https://hooks.slack.com/services/T0/B0/XXXXSECRET", "https://hooks.slack.com/services/***"),
    ("https://discord.com/api/webhooks/123/tok-en", "https://discord.com/api/webhooks/***"),
    ("https://user:pa55word@am.example:9093/", "https://user:***@am.example:9093/"),
    ("http://127.0.0.1:8080/drills", "http://127.0.0.1:8080/drills"),
])
def test_mask_url(url, masked):
    assert mask_url(url) == masked


@pytest.mark.parametrize("config,field", [
    ([{"name": "x", "type": "teams", "url": "http://127.0.0.1/"}], "[0].type"),
    ([{"name": "x", "type": "json", "url": "ftp://127.0.0.1/"}], "[0].url"),
    ([{"name": "x", "type": "json", "url": "http://127.0.0.1/", "timeout_s": 0}], "[0].timeout_s"),
    ([{"name": "x", "type": "json", "url": "http://127.0.0.1/"}, {"name": "x", "type": "json",
                                                                   "url": "http://127.0.0.1/"}], "[1].name"),
    ([{"type": "json", "url": "http://127.0.0.1/"}], "[0].name"),
])
def test_bad_config_names_the_field(config, field):
    with pytest.raises(BadInput) as exc:
        load_webhooks(config, "inventory/homelab.yaml:notifications")
    assert exc.value.field == field
    assert str(exc.value).startswith("inventory/homelab.yaml:notifications: " + field)
