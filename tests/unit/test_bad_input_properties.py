"""Bad input, generated: hundreds of malformed inventories, runbooks and scenarios.

Each document is a valid shipped file with one mutation (an unknown key, a dropped
required key, a wrong type, a bad enum, a bad duration, a bad label or taint...). Loading
it must raise ``BadInput`` whose one-line message starts with the file name and whose
field is the mutated one. A sample goes through ``inv inventory.check`` as an operator
would run it: exit 2, one line on stderr, no traceback.
"""
from __future__ import annotations

import copy
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drtool.errors import BadInput
from drtool.inventory import load_inventory
from drtool.lab.scenarios import load_scenario

REPO = Path(__file__).resolve().parents[2]
SAFE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's, when PyYAML has it: the same YAML, faster
EXAMPLES = 260  # per document type; each test also checks at least 200 distinct documents were tried
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

Path_ = tuple[Any, ...]


# ---------------------------------------------------------------------------
# Paths into a YAML document


def render(path: Path_, style: str = "brackets") -> str:
    """``("nodes", 1, "labels")`` → ``nodes[1].labels`` (``dots``: ``nodes.1.labels``)."""
    out = ""
    for part in path:
        if isinstance(part, int) and style == "brackets":
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def get(doc: Any, path: Path_) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def put(doc: Any, path: Path_, value: Any) -> None:
    get(doc, path[:-1])[path[-1]] = value


def delete(doc: Any, path: Path_) -> None:
    del get(doc, path[:-1])[path[-1]]


def walk(doc: Any, prefix: Path_ = (), free: Callable[[Path_], bool] = lambda p: False) -> list[Path_]:
    """Every path under ``doc`` (not into free-form mappings, whose keys are user data)."""
    out = []
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in items:
        path = (*prefix, key)
        out.append(path)
        if not free(path):
            out += walk(value, path, free)
    return out


def wrong_type(value: Any) -> st.SearchStrategy:
    """Values no validator coerces into the type of ``value`` (a mapping for a list, and so on)."""
    words = st.text(alphabet="abcxyz", min_size=1, max_size=6)
    as_list = st.lists(st.integers(0, 9) | words, min_size=1, max_size=3)
    as_dict = st.dictionaries(words, st.integers(0, 9), min_size=1, max_size=2)
    if isinstance(value, dict):
        return as_list | words.map(lambda w: w + " text")
    if isinstance(value, list):
        return as_dict | words.map(lambda w: w + " text") | st.integers(2, 9)
    return as_list | as_dict


def unknown_key(known: Any) -> st.SearchStrategy:
    return st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=3, max_size=12).map(
        lambda s: "x_" + s).filter(lambda k: k not in known)


# Seconds, or unit parts added up as Go's time.ParseDuration reads them ("1h30m", "1.5m").
DURATION_OK = re.compile(r"^\s*(\d+(\.\d+)?|(\s*(\d+(\.\d+)?|\.\d+)\s*(ms|s|m|h))+)\s*$")
BAD_DURATIONS = (
    st.sampled_from(["5 minutes", "soon", "1d", "-3s", "0", "0s", "10x", "1h30", "h1", "1h-30m", "", "∞", "1e3s"])
    | st.integers(-1000, 0)
    | st.floats(-1e6, 0.0)
    | st.booleans()
    | st.text(min_size=1, max_size=8).filter(lambda s: not DURATION_OK.match(s))
)
SHELL = "$;`|&<>(){}!*?#'\" \\"


def bad_label_key() -> st.SearchStrategy:
    return st.tuples(st.sampled_from(["hardware", "gpu", "zone"]), st.sampled_from(SHELL + "=,@:"),
                     st.sampled_from(["", "x", "$(touch /tmp/pwned)"])).map("".join)


def bad_label_value() -> st.SearchStrategy:
    return (st.tuples(st.sampled_from(["heavy", ""]), st.sampled_from(SHELL + "=,@:/"),
                      st.sampled_from(["", "x", "$(touch /tmp/pwned)"])).map("".join)
            | st.integers(64, 90).map(lambda n: "a" * n)
            | st.sampled_from(["-heavy", "heavy-", ".x"]))


def bad_taint() -> st.SearchStrategy:
    effect = st.sampled_from(["NoSchedule", "PreferNoSchedule", "NoExecute"])
    return (st.tuples(st.just("heavy=true:"), st.sampled_from(["noschedule", "Never", "", "NoSchedule;rm"]))
            .map("".join)
            | st.tuples(st.sampled_from(["heavy=true", "heavy", "=true"]), st.just("")).map("".join)
            | st.tuples(bad_label_key().filter(lambda k: not re.search(r"[=:\s]", k)), st.just("=true:"), effect)
            .map("".join)
            | st.tuples(st.just("heavy=tr ue:"), effect).map("".join))


# ---------------------------------------------------------------------------
# Running one malformed document


class Tried:
    """Distinct documents a property test loaded (the count is part of the contract)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def add(self, text: str) -> None:
        self.seen.add(text)


def check_rejected(load: Callable[[Path], Any], doc: Any, field: str, name: str, tried: Tried,
                   normalise: Callable[[str], str] = lambda f: f) -> None:
    """Write ``doc``, load it: BadInput, one line, starting with the file name, naming ``field``."""
    text = yaml.dump(doc, Dumper=SAFE_DUMPER, sort_keys=False, allow_unicode=True)
    tried.add(text)
    with tempfile.TemporaryDirectory(prefix="drtool-bad-") as tmp:
        path = Path(tmp) / name
        path.write_text(text)
        with pytest.raises(BadInput) as info:
            load(path)
    exc = info.value
    message = str(exc)
    assert "\n" not in message, message
    assert message.startswith(f"{path}: "), message
    got = normalise(exc.field)
    assert got == field or got.startswith((field + ".", field + "[")), (field, message)
    assert exc.problem.strip(), message


# ---------------------------------------------------------------------------
# Inventories: mutations of inventory/lab.yaml

INVENTORY = yaml.safe_load((REPO / "inventory" / "lab.yaml").read_text())
INV_MODELS = [(), ("cluster",), ("nodes", 0), ("nodes", 1), ("k3s",), ("k3s", "install"), ("flux",),
              ("secrets", 0), ("expectations",), ("expectations", "helmreleases", 0), ("timeouts",),
              ("converge",), ("drill",), ("ssh",)]
INV_REQUIRED = [("cluster",), ("nodes",), ("k3s",), ("flux",), ("cluster", "name"), ("cluster", "api_endpoint"),
                ("nodes", 0, "name"), ("nodes", 0, "role"), ("nodes", 1, "role"), ("k3s", "version"),
                ("flux", "version"), ("flux", "provider"), ("flux", "path"), ("secrets", 0, "name"),
                ("secrets", 0, "from_file"), ("expectations", "helmreleases", 1, "namespace"),
                ("expectations", "helmreleases", 2, "name")]
INV_ENUMS = {("nodes", 0, "role"): {"server", "agent"}, ("nodes", 1, "role"): {"server", "agent"},
             ("flux", "provider"): {"github", "gitlab", "git"}, ("k3s", "install", "method"): {"online", "airgap"}}
INV_DURATIONS = [("timeouts", k) for k in INVENTORY["timeouts"]] + [("objective",), ("converge", "unschedulable_grace")]
INV_FREE = {("nodes", 1, "labels")}
INV_LEAVES = walk(INVENTORY, free=lambda p: p in INV_FREE)


@st.composite
def bad_inventory(draw) -> tuple[dict, str, str]:
    doc = copy.deepcopy(INVENTORY)
    kind = draw(st.sampled_from(["unknown key", "dropped key", "wrong type", "bad enum", "bad duration",
                                 "bad label", "bad taint", "bad value"]))
    if kind == "unknown key":
        where = draw(st.sampled_from(INV_MODELS))
        key = draw(unknown_key(get(doc, where)))
        put(doc, (*where, key), draw(st.integers(0, 9) | st.text(max_size=5)))
        return doc, render((*where, key)), kind
    if kind == "dropped key":
        path = draw(st.sampled_from(INV_REQUIRED))
        delete(doc, path)
        return doc, render(path), kind
    if kind == "wrong type":
        path = draw(st.sampled_from(INV_LEAVES))
        put(doc, path, draw(wrong_type(get(doc, path))))
        return doc, render(path), kind
    if kind == "bad enum":
        path = draw(st.sampled_from(sorted(INV_ENUMS)))
        value = draw(st.text(min_size=1, max_size=10).filter(lambda s: s.strip() not in INV_ENUMS[path])
                     | st.integers())
        put(doc, path, value)
        return doc, render(path), kind
    if kind == "bad duration":
        path = draw(st.sampled_from(INV_DURATIONS))
        put(doc, path, draw(BAD_DURATIONS))
        return doc, render(path), kind
    if kind == "bad label":
        labels = doc["nodes"][1]["labels"]
        if draw(st.booleans()):
            labels[draw(bad_label_key())] = "heavy"
        else:
            labels["hardware"] = draw(bad_label_value())
        return doc, "nodes[1].labels", kind
    if kind == "bad taint":
        doc["nodes"][1]["taints"] = [draw(bad_taint())]
        return doc, "nodes[1].taints", kind
    # Values of the right type that their validators refuse.
    path, value = draw(st.sampled_from([
        (("nodes", 0, "port"), st.integers(65536, 10**6) | st.integers(-100, 0)),
        (("nodes", 1, "name"), st.sampled_from(["Node_2", "node 2", "-node2", "node2;reboot"])),
        (("nodes", 1, "protected_paths"), st.sampled_from([["relative/path"], ["/"], ["/etc"], ["/var/lib/"]])),
        (("k3s", "version"), st.sampled_from(["latest", "v1.31", "1.31.4+k3s1", "v1.31.4"])),
        (("k3s", "server_args"), st.sampled_from([["--token=abc"], ["--token", "abc"]])),
        (("k3s", "token"), st.sampled_from(["K10abc::server:xyz", "literal"])),
        (("flux", "path"), st.sampled_from(["/abs/path", "../up", "clusters/home lab", "a;b"])),
        (("flux", "version"), st.sampled_from(["2.4", "latest", "v2"])),
        (("cluster", "api_endpoint"), st.sampled_from(["http://127.0.0.1:6443", "127.0.0.1:6443", "https://a b"])),
        (("converge", "crashloop_restarts"), st.integers(-50, -1)),
    ]))
    put(doc, path, draw(value))
    return doc, render(path), kind


def test_malformed_inventories_are_rejected_naming_file_and_field():
    tried = Tried()

    @SETTINGS
    @given(bad_inventory())
    def prop(case):
        doc, field, _ = case
        check_rejected(load_inventory, doc, field, "inventory.yaml", tried)

    prop()
    assert len(tried.seen) >= 200, len(tried.seen)


# ---------------------------------------------------------------------------
# Runbooks: mutations of runbooks/full-rebuild.yaml


def _load_runbook(path: Path):
    from drtool.runbooks.model import load_runbook

    return load_runbook(path)


RUNBOOK_FILE = REPO / "runbooks" / "full-rebuild.yaml"
RUNBOOK = yaml.safe_load(RUNBOOK_FILE.read_text()) if RUNBOOK_FILE.exists() else None
RB_STEPS = range(len(RUNBOOK["steps"])) if RUNBOOK else range(0)
RB_MANUAL = next((i for i, s in enumerate(RUNBOOK["steps"]) if "manual" in s), None) if RUNBOOK else None


def _without_step_ids(field: str) -> str:
    """Runbook fields name the step's id too (``steps[2] (id confirm-wipe).manual``): drop it."""
    return re.sub(r" \(id [^)]*\)", "", field)


@st.composite
def bad_runbook(draw) -> tuple[dict, str, str]:
    doc = copy.deepcopy(RUNBOOK)
    i = draw(st.sampled_from(RB_STEPS))
    kind = draw(st.sampled_from(["unknown key", "dropped key", "wrong type", "bad enum", "bad duration",
                                 "bad value"]))
    if kind == "unknown key":
        where = draw(st.sampled_from([(), ("steps", i)] + ([("steps", RB_MANUAL, "manual")] if RB_MANUAL is not None else [])))
        key = draw(unknown_key(get(doc, where)))
        put(doc, (*where, key), draw(st.integers(0, 9) | st.text(max_size=5)))
        return doc, render((*where, key)), kind
    if kind == "dropped key":
        path = draw(st.sampled_from([("name",), ("steps",), ("steps", i, "id"), ("steps", i, "title")]
                                    + ([("steps", RB_MANUAL, "manual", "instruction")] if RB_MANUAL is not None else [])))
        delete(doc, path)
        return doc, render(path), kind
    if kind == "wrong type":
        path = draw(st.sampled_from([("name",), ("description",), ("steps",), ("steps", i), ("steps", i, "id"),
                                     ("steps", i, "title"), *(("steps", i, k) for k in doc["steps"][i] if k != "args")]))
        put(doc, path, draw(wrong_type(get(doc, path))))
        return doc, render(path), kind
    if kind == "bad enum":
        doc["steps"][i]["on_failure"] = draw(st.text(min_size=1, max_size=10).filter(
            lambda s: s.strip() not in ("stop", "continue")))
        return doc, render(("steps", i, "on_failure")), kind
    if kind == "bad duration":
        key = draw(st.sampled_from(["timeout", "retry_delay"]))
        doc["steps"][i][key] = draw(BAD_DURATIONS)
        return doc, render(("steps", i, key)), kind
    path, value = draw(st.sampled_from([
        (("steps", i, "id"), st.sampled_from(["Pre Flight", "pre_flight", "-x", "step;rm"])),
        (("steps", i, "retries"), st.integers(-20, -1) | st.integers(10**4, 10**6)),
        (("steps", i, "phase"), st.sampled_from(["uninstall", "wipe-all", "Preflight"])),
        (("steps", i, "title"), st.sampled_from(["", "Wipe {{ nodes }}", "Hello {{ who }}"])),
    ]))
    if "phase" in path and "phase" not in doc["steps"][i]:
        for other in ("manual", "remote", "local", "check", "wait", "action"):
            doc["steps"][i].pop(other, None)
    put(doc, path, draw(value))
    return doc, render(path), kind


@pytest.mark.skipif(RUNBOOK is None, reason="runbooks/full-rebuild.yaml is not in this checkout")
def test_malformed_runbooks_are_rejected_naming_file_and_field():
    tried = Tried()

    @SETTINGS
    @given(bad_runbook())
    def prop(case):
        doc, field, _ = case
        check_rejected(_load_runbook, doc, field, "runbook.yaml", tried, normalise=_without_step_ids)

    prop()
    assert len(tried.seen) >= 200, len(tried.seen)


# ---------------------------------------------------------------------------
# Scenarios: mutations of a scenario that uses every section

SCENARIO = {
    "name": "everything",
    "description": "every key a scenario may set",
    "defaults": {"git_repository": 0.1, "helm_repository": 0.1, "kustomization": 0.2, "helm_release": 0.3,
                 "pod": 0.3, "flux_controllers": 0.2, "node_ready": 0.3, "retry_interval": 0.5},
    "nodes": {"node1": {"ready_delay": 0.3}, "node2": {"never_ready": False}},
    "objects": {"HelmRelease/logging/loki": {"delay": 1.0, "fail_times": 1, "workload_kind": "StatefulSet"},
                "Deployment/llm/llama-cpp": {"crashloop": True}},
    "api": {"refuse_after_start": 2, "http_503": {"start": 4, "duration": 2}, "expire_watch_at": 3},
    "ssh_drop": {"node": "node2", "during": "join"},
    "flux": {"bootstrap_fail_times": 1, "bad_tokens": ["ghp_revoked"]},
}
SC_MODELS = [(), ("defaults",), ("nodes", "node1"), ("nodes", "node2"), ("objects", "HelmRelease/logging/loki"),
             ("objects", "Deployment/llm/llama-cpp"), ("api",), ("api", "http_503"), ("ssh_drop",), ("flux",)]
SC_REQUIRED = [("name",), ("api", "http_503", "start"), ("api", "http_503", "duration"), ("ssh_drop", "node"),
               ("ssh_drop", "during")]
SC_SECONDS = [("defaults", k) for k in SCENARIO["defaults"]] + [
    ("nodes", "node1", "ready_delay"), ("objects", "HelmRelease/logging/loki", "delay"),
    ("api", "refuse_after_start"), ("api", "http_503", "start"), ("api", "http_503", "duration"),
    ("api", "expire_watch_at")]
SC_LEAVES = [p for p in walk(SCENARIO) if p[:1] != ("flux",) or len(p) < 3]  # not into bad_tokens' items


@st.composite
def bad_scenario(draw) -> tuple[dict, str, str]:
    doc = copy.deepcopy(SCENARIO)
    kind = draw(st.sampled_from(["unknown key", "dropped key", "wrong type", "bad enum", "bad number",
                                 "bad object key"]))
    if kind == "unknown key":
        where = draw(st.sampled_from(SC_MODELS))
        key = draw(unknown_key(get(doc, where)))
        put(doc, (*where, key), draw(st.integers(0, 9)))
        return doc, render((*where, key), "dots"), kind
    if kind == "dropped key":
        path = draw(st.sampled_from(SC_REQUIRED))
        delete(doc, path)
        return doc, render(path, "dots"), kind
    if kind == "wrong type":
        path = draw(st.sampled_from(SC_LEAVES))
        put(doc, path, draw(wrong_type(get(doc, path))))
        return doc, render(path, "dots"), kind
    if kind == "bad enum":
        path = ("objects", "HelmRelease/logging/loki", "workload_kind")
        put(doc, path, draw(st.text(min_size=1, max_size=12).filter(lambda s: s not in ("Deployment", "StatefulSet"))))
        return doc, render(path, "dots"), kind
    if kind == "bad number":
        path = draw(st.sampled_from(SC_SECONDS + [("objects", "HelmRelease/logging/loki", "fail_times"),
                                                   ("flux", "bootstrap_fail_times")]))
        floor_ok = path[-1] not in ("duration", "retry_interval", "refuse_after_start")  # these must be > 0
        value = draw(st.floats(-1e6, -0.001) | st.integers(-1000, -1) | st.sampled_from(["slow", "1s", "fast"])
                     | (st.just(0) if not floor_ok else st.nothing()))
        put(doc, path, value)
        return doc, render(path, "dots"), kind
    objects = doc["objects"]
    objects[draw(st.sampled_from(["loki", "helmrelease/logging/loki", "HelmRelease/Logging/loki",
                                  "HelmRelease//loki", "HelmRelease/logging/loki/extra", "HelmRelease logging loki"]))] = {}
    return doc, "objects", kind


def test_malformed_scenarios_are_rejected_naming_file_and_field():
    tried = Tried()

    @SETTINGS
    @given(bad_scenario())
    def prop(case):
        doc, field, _ = case
        check_rejected(load_scenario, doc, field, "scenario.yaml", tried)

    prop()
    assert len(tried.seen) >= 200, len(tried.seen)


def test_the_unmutated_documents_load():
    """The mutations start from valid documents, so each failure above is the mutation's."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, doc, load in (("inventory.yaml", INVENTORY, load_inventory), ("scenario.yaml", SCENARIO, load_scenario),
                                *((("runbook.yaml", RUNBOOK, _load_runbook),) if RUNBOOK else ())):
            path = Path(tmp) / name
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            load(path)


# ---------------------------------------------------------------------------
# The operator's view: `inv inventory.check FILE`

CLI_SAMPLE = [
    (("nodes", 1, "role"), "worker"),
    (("nodes", 1, "labels"), {"hardware": "$(touch /tmp/pwned)"}),
    (("nodes", 1, "taints"), ["heavy=true:Sometimes"]),
    (("timeouts", "converge"), "ten minutes"),
    (("cluster", "colour"), "blue"),
    (("k3s", "version"), "latest"),
    (("nodes", 0, "port"), 99999),
    (("flux", "provider"), "bitbucket"),
    (("nodes",), "node1"),
    (("k3s", "token"), "K10deadbeefdeadbeefdeadbeef::server:secret"),
]


def test_inventory_check_cli_gives_exit_2_and_one_line(tmp_path):
    files = []
    for i, (path, value) in enumerate(CLI_SAMPLE):
        doc = copy.deepcopy(INVENTORY)
        put(doc, path, value)
        f = tmp_path / f"bad-{i}.yaml"
        f.write_text(yaml.safe_dump(doc, sort_keys=False))
        files.append((f, render(path)))
    # An unparseable file too: YAML errors are bad input like any other.
    broken = tmp_path / "broken.yaml"
    broken.write_text("cluster: {name: lab\nnodes: [\n")
    files.append((broken, "line"))

    def check(item):
        f, field = item
        return f, field, subprocess.run([sys.executable, "-m", "invoke", "inventory.check", str(f)], cwd=REPO,
                                        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(check, files))
    for f, field, res in results:
        assert res.returncode == 2, (f.name, res.returncode, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1, (f.name, res.stderr)
        assert lines[0].startswith(f"error: {f}: {field}"), (f.name, lines[0])
        assert "Traceback" not in res.stdout + res.stderr
