"""Acceptance of scheduled DR drills on a 2-node lab: `inv drill`, its history and outputs.

The drills run as a timer would run them (`inv drill -i INV`), against an inventory whose
``drill.notify`` points at a local HTTP receiver on 127.0.0.1 (one webhook per payload
format, plus one on a closed port) and whose ``drill.textfile_dir`` is a temp dir. One lab
serves the module; the tests run in file order and build on the drills before them.
"""
from __future__ import annotations

import json
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .faults_support import NODE_PATHS, use_scenario
from .fulllab import FullLab, start_full_lab, stop_full_lab_dir, write_inventory

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FORMATS = ("json", "slack", "discord", "ntfy", "alertmanager")


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records every POST and answers 200."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.lock = threading.Lock()
        received, lock = self.received, self.lock

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    received.append(Received(self.path, dict(self.headers), body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def take(self) -> list[Received]:
        with self.lock:
            out, self.received[:] = list(self.received), []
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def _closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class DrillLab:
    full: FullLab
    receiver: Receiver
    textfile_dir: Path
    configure: object  #: the inventory mutation that wires the webhooks and the textfile dir

    def inventory_variant(self, name: str, change) -> Path:
        """Another inventory for the same lab: the module's drill settings plus ``change``."""
        def mutate(data: dict) -> None:
            self.configure(data)
            change(data)
        return write_inventory(self.full.lab, self.full.lab.root / name, agents=1, mutate=mutate)

    def drill(self, *args: str, inventory: Path | None = None, timeout: float = 240):
        before = set(self.full.runs_list())
        res = self.full.inv("drill", "-i", str(inventory or self.full.inventory), *args, timeout=timeout)
        new = sorted(set(self.full.runs_list()) - before)
        return res, (new[-1] if new else None)


@pytest.fixture(scope="module")
def drills():
    receiver = Receiver()
    textfile_dir = Path(tempfile.mkdtemp(prefix="drtool-textfile-"))
    dead = f"http://127.0.0.1:{_closed_port()}/dead"

    def configure(data: dict) -> None:
        hooks = [{"name": f"to-{kind}", "type": kind, "url": f"{receiver.url}/{kind}"} for kind in FORMATS]
        hooks.append({"name": "dead", "type": "json", "url": dead, "timeout": 2})
        data["drill"].update(notify=hooks, textfile_dir=str(textfile_dir))

    full = start_full_lab("127.0.180", nodes=2, mutate=configure)
    try:
        use_scenario(full, "homelab")
        yield DrillLab(full, receiver, textfile_dir, configure)
    finally:
        receiver.close()
        stop_full_lab_dir(full.lab)
        shutil.rmtree(textfile_dir, ignore_errors=True)


def _report(run: Path) -> dict:
    return json.loads((run / "report.json").read_text())


def _outputs(run: Path) -> dict:
    return json.loads((run / "drill-outputs.json").read_text())


def _metrics(textfile_dir: Path) -> dict[str, list]:
    """The .prom file parsed by prometheus_client: {metric name: [samples]}."""
    text = (textfile_dir / "drtool_drill.prom").read_text()
    families = list(text_string_to_metric_families(text))
    return {f.name: f.samples for f in families}


def _check_payloads(received: list[Received], verdict: str, regressions: int) -> dict[str, object]:
    """One POST per format, each shaped as that service expects; returns the parsed bodies."""
    by_path = {r.path: r for r in received}
    assert set(by_path) == {"/json", "/slack", "/discord", "/ntfy", "/alertmanager/api/v2/alerts"}, sorted(by_path)
    j = json.loads(by_path["/json"].body)
    assert j["verdict"] == verdict and j["cluster"] == "lab" and len(j["regressions"]) == regressions
    slack = json.loads(by_path["/slack"].body)
    assert slack["text"] and slack["blocks"][0]["type"] == "header"
    assert f"*Verdict*\n{verdict}" in json.dumps(slack["blocks"]).replace("\\n", "\n")
    discord = json.loads(by_path["/discord"].body)
    fields = {f["name"]: f["value"] for f in discord["embeds"][0]["fields"]}
    assert fields["Verdict"] == verdict and fields["Regressions"] == str(regressions)
    ntfy = by_path["/ntfy"]
    assert ntfy.headers["Title"] and "drtool" in ntfy.headers["Tags"]
    assert f"DR drill lab: {verdict.upper()} in" in ntfy.body.decode()
    assert ntfy.headers["Title"].startswith(f"DR drill lab: {verdict.upper()}")
    alerts = json.loads(by_path["/alertmanager/api/v2/alerts"].body)
    assert alerts and all(a["labels"]["alertname"] == "DrtoolDrill" and a["labels"]["cluster"] == "lab"
                          and a["annotations"]["verdict"] == verdict for a in alerts)
    return {"json": j, "slack": slack, "discord": discord, "ntfy": ntfy.body.decode(), "alertmanager": alerts}


def _unit_files(drills: DrillLab, out: Path) -> tuple[Path, Path]:
    """``inv drill.schedule --on-calendar ... --output OUT``: (service, timer) it wrote."""
    res = drills.full.inv("drill.schedule", "-i", str(drills.full.inventory), "--on-calendar", "Sun *-*-* 03:00",
                          "--output", str(out), timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    units = sorted(out.iterdir())
    return next(u for u in units if u.suffix == ".service"), next(u for u in units if u.suffix == ".timer")


def _exec_start(service: Path) -> tuple[list[str], str]:
    """The service's ExecStart argv and WorkingDirectory."""
    lines = dict(ln.split("=", 1) for ln in service.read_text().splitlines() if ln.startswith(("ExecStart=", "WorkingDirectory=")))
    return shlex.split(lines["ExecStart"]), lines["WorkingDirectory"]


# --------------------------------------------------------------------------- refusal, schedule


def test_drill_refuses_without_drill_enabled_before_touching_anything(drills):
    full = drills.full

    def disable(data: dict) -> None:
        data["drill"]["enabled"] = False

    inventory = drills.inventory_variant("inventory-nodrill.yaml", disable)
    before = {n: full.tree_digest(n, *NODE_PATHS) for n in ("node1", "node2")}
    runs_before = full.runs_list()
    res, run = drills.drill(inventory=inventory, timeout=60)
    assert res.returncode == 7, res.stdout + res.stderr
    assert "drill.enabled is not true" in res.stderr
    assert run is None and full.runs_list() == runs_before
    assert {n: full.tree_digest(n, *NODE_PATHS) for n in ("node1", "node2")} == before
    assert not drills.receiver.take()


def test_schedule_writes_units_that_systemd_accepts(drills, tmp_path):
    service, timer = _unit_files(drills, tmp_path / "units")
    assert "OnCalendar=Sun *-*-* 03:00" in timer.read_text()
    argv, workdir = _exec_start(service)
    # What the timer runs is exactly `inv drill -i INVENTORY` (run for real in the next test).
    assert Path(argv[0]).name == "inv" and Path(argv[0]).is_file(), argv
    assert argv[1:] == ["drill", "-i", str(drills.full.inventory.resolve()), "--yes", "--trigger", "timer"], argv
    assert Path(workdir).is_dir()
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed: units written but not verified")
    check = subprocess.run([analyze, "verify", str(service), str(timer)], capture_output=True, text=True, timeout=60)
    # verify also complains about the host's own units when it has no running systemd; only
    # lines about our files count.
    ours = [ln for ln in (check.stdout + check.stderr).splitlines() if service.name in ln or timer.name in ln]
    assert not ours, "\n".join(ours)


# --------------------------------------------------------------------------- drills and history


def test_three_drills_make_a_history_and_notify_every_format(drills, tmp_path):
    """Two drills by hand, the third exactly as the systemd timer would start it."""
    argv, workdir = _exec_start(_unit_files(drills, tmp_path)[0])
    runs = []
    for i in range(3):
        if i < 2:
            res, run = drills.drill()
        else:
            before = set(drills.full.runs_list())
            res = subprocess.run(argv, cwd=workdir, env=drills.full.env(), capture_output=True, text=True,
                                 timeout=240, stdin=subprocess.DEVNULL)
            run = sorted(set(drills.full.runs_list()) - before)[-1]
            assert _report(run)["trigger"] == "timer"
        assert res.returncode == 0, f"drill {i + 1}:\n{res.stdout[-3000:]}\n{res.stderr[-2000:]}"
        report = _report(run)
        print(f"drill {i + 1}: " + ", ".join(f"{p['name']} {p['duration_s']:.1f}s" for p in report["phases"]))
        assert report["kind"] == "drill" and report["verdict"] == "pass", report["verdict_reason"]
        assert "drill verdict: pass" in res.stdout
        assert {c["name"] for c in report["post_checks"]} >= {"protected data node2", "helmrelease logging/loki"}
        outputs = _outputs(run)
        sent = {n["name"]: n for n in outputs["notifications"]}
        assert all(sent[f"to-{k}"]["ok"] for k in FORMATS), outputs["notifications"]
        # The dead webhook is recorded as failed; the verdict (and exit code) did not change.
        assert sent["dead"]["ok"] is False and "connection failed" in sent["dead"]["error"], sent["dead"]
        assert any("dead" in e for e in outputs["errors"]), outputs["errors"]
        assert "notification dead (json): FAILED" in res.stdout
        _check_payloads(drills.receiver.take(), "pass", len(outputs["regressions"]))
        metrics = _metrics(drills.textfile_dir)
        assert metrics["drtool_drill_success"][0].value == 1
        assert metrics["drtool_drill_recovery_seconds"][0].value == pytest.approx(report["recovery_s"], abs=0.01)
        runs.append(run.name)

    res = drills.full.inv("drill.history", "-i", str(drills.full.inventory), timeout=60)
    assert res.returncode == 0, res.stderr
    listed = [r for r in runs if r in res.stdout]
    assert listed == runs, res.stdout
    assert res.stdout.count("pass") >= 3, res.stdout


def test_slow_phase_is_flagged_as_a_regression_everywhere(drills):
    """slow-phase.yaml makes node2 turn Ready after 3 s instead of 0.5 s (nodes_ready waits for
    it) and stretches the infrastructure Kustomization and Loki (converge): both phases grow by
    well over the 25 % margin and the 1 s minimum delta, the objective (5 m) is still met."""
    use_scenario(drills.full, "slow-phase")
    try:
        res, run = drills.drill()
    finally:
        use_scenario(drills.full, "homelab")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    report = _report(run)
    assert report["verdict"] == "pass", report["verdict_reason"]
    regs = {r["phase"]: r for r in _outputs(run)["regressions"]}
    assert "nodes_ready" in regs, (regs, [(p["name"], p["duration_s"]) for p in report["phases"]])
    for r in regs.values():
        assert r["duration_s"] > r["median_s"] * 1.25 and r["delta_s"] > 1.0, r
        assert r["samples"] == 3, r
    assert "regression: nodes_ready" in res.stdout
    assert "drill verdict: pass" in res.stdout

    metrics = _metrics(drills.textfile_dir)
    assert metrics["drtool_drill_regressions"][0].value == len(regs)
    assert metrics["drtool_drill_success"][0].value == 1

    suite = ET.parse(run / "junit.xml").getroot()
    failures = [c for c in suite.iter("testcase") if c.get("name", "").startswith("regression.")]
    assert {c.get("name") for c in failures} == {f"regression.{p}" for p in regs}
    assert all(c.find("failure") is not None and c.find("failure").get("type") == "regression" for c in failures)

    bodies = _check_payloads(drills.receiver.take(), "pass", len(regs))
    assert {r["phase"] for r in bodies["json"]["regressions"]} == set(regs)
    assert "nodes_ready" in bodies["ntfy"]

    res = drills.full.inv("drill.history", "-i", str(drills.full.inventory), timeout=60)
    assert res.returncode == 0 and run.name in res.stdout, res.stdout


def test_unreachable_objective_gives_over_objective_and_exit_5(drills):
    def one_second(data: dict) -> None:
        data["objective"] = "1s"

    inventory = drills.inventory_variant("inventory-1s.yaml", one_second)
    res, run = drills.drill(inventory=inventory)
    assert res.returncode == 5, res.stdout[-3000:] + res.stderr
    report = _report(run)
    assert report["verdict"] == "over-objective" and report["objective_s"] == 1
    assert report["recovery_s"] > 1
    assert "drill verdict: over-objective" in res.stdout
    assert "over the objective" in res.stderr
    bodies = _check_payloads(drills.receiver.take(), "over-objective", len(_outputs(run)["regressions"]))
    assert bodies["alertmanager"][0]["labels"]["severity"] == "warning"
    assert _metrics(drills.textfile_dir)["drtool_drill_success"][0].value == 0
