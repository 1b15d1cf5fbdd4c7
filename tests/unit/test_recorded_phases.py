"""Phases, the pipeline and the runbook executor against a recording runner: no SSH, no root.

Each test scripts what the nodes answer (``Reply``) and checks what the code sent and what a
user sees: journal outcomes, messages, exit codes, files.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from invoke import Exit

from drtool.drills.drill import digest_command
from drtool.errors import ConnectError, DrtoolError, Interrupted, NodesFailed, NotConverged, PermanentError, RemoteError
from drtool.inventory import parse_inventory
from drtool.kube.recording import ApiReply, RecordingApiClient
from drtool.phases import backup, install, join, kubeconfig, nodes_ready, restore_secrets, teardown
from drtool.phases.context import Context, Options, RunProgress
from drtool.phases.dry_run import dry_context, plan_phase
from drtool.phases.preflight import flux_cli, run_preflight
from drtool.pipeline import Pipeline
from drtool.remote import k3s
from drtool.remote.recording import RecordingRunner, Reply
from drtool.run import Run
from drtool.runbooks.executor import RunbookExecutor, RunOptions
from drtool.runbooks.model import load_runbook
from drtool.secret import Secret
from drtool.tasks._cli import guarded

REPO = Path(__file__).resolve().parents[2]
TOKEN = "K10recordedtoken::server:abc123"
K3S_YAML = """apiVersion: v1
clusters:
- cluster: {certificate-authority-data: TkVXQ0E=, server: 'https://127.0.0.1:6443'}
  name: default
contexts:
- context: {cluster: default, user: default}
  name: default
current-context: default
kind: Config
users:
- name: default
  user: {client-certificate-data: TkVXQ0VSVA==, client-key-data: TkVXS0VZ}
"""


@pytest.fixture
def inv(tmp_path, monkeypatch):
    monkeypatch.setenv("DRTOOL_RUNS_DIR", str(tmp_path / "runs"))
    data = yaml.safe_load((REPO / "inventory" / "lab.yaml").read_text())
    data["k3s"]["install"] = {"method": "online"}  # no local artifacts needed
    data["flux"].pop("git_config_file")  # the lab's (under .lab/) exists only once the lab has started
    return parse_inventory(data, REPO / "inventory" / "lab.yaml")


def _wipes(recorded) -> list[str]:
    """The nodes of the recorded commands, without teardown's volume check (one per node, first)."""
    return [r.node for r in recorded if "k3s/storage" not in r.command]


def context(inv, runner, **options) -> Context:
    run = Run.create("rebuild", str(inv.path), inv.cluster.name)
    return Context(inv, runner, run, Options(quiet=True, **options), RunProgress(quiet=True))


def api_context(inv, api: RecordingApiClient, *replies: Reply) -> Context:
    """A context whose API requests go to ``api``; the run's kubeconfig is fetched from node1 first."""
    ctx = context(inv, RecordingRunner(inv, [*replies, Reply(r"cat /etc/rancher/k3s/k3s.yaml", stdout=K3S_YAML)]))
    ctx.api_factory = lambda _kubeconfig: api
    return ctx


# -- teardown -------------------------------------------------------------------------


def test_teardown_wipes_agents_before_servers_and_reports_per_node(inv):
    runner = RecordingRunner(inv, [Reply("uninstall", node="node2", stdout="drtool-teardown: running k3s-agent-uninstall.sh"),
                                   Reply("uninstall", node="node1", stdout="drtool-teardown: noop")])
    result = teardown.run(context(inv, runner))
    # First the volume check on every node (nothing holds data here), then agents before servers.
    assert sorted(r.node for r in runner.recorded[:2]) == ["node1", "node2"]
    assert all("k3s/storage" in r.command for r in runner.recorded[:2])
    assert _wipes(runner.recorded) == ["node2", "node1"]
    assert all(c.startswith("sudo -n -- sh -c ") for c in runner.commands())
    assert (result.outcome, result.message) == ("ok", "wiped: node2; nothing installed: node1")
    assert result.details == {"wiped": ["node2"], "nothing_installed": ["node1"]}


def test_teardown_leftovers_fail_naming_the_node(inv):
    runner = RecordingRunner(inv, [Reply("uninstall", node="node2", stdout="drtool-left: /var/lib/rancher/k3s", exit_code=3)])
    with pytest.raises(NodesFailed, match=r"^teardown failed: node2: not clean after uninstall: /var/lib/rancher/k3s$"):
        teardown.run(context(inv, runner))
    # servers are not wiped after a failed agent (only the volume check ran there)
    assert [c for c in runner.commands("node1") if "k3s/storage" not in c] == []


def test_teardown_refuses_a_protected_path_under_the_data_dir_before_any_command(inv):
    data = inv.model_dump()
    data["nodes"][1]["protected_paths"] = ("/var/lib/rancher/k3s/storage",)
    bad = parse_inventory({k: v for k, v in data.items() if k != "path"}, inv.path)
    runner = RecordingRunner(bad)
    with pytest.raises(PermanentError, match="node2: protected path"):
        teardown.run(context(bad, runner))
    assert runner.recorded == []


# -- join -----------------------------------------------------------------------------


def test_join_sends_the_token_on_stdin_only(inv, monkeypatch):
    monkeypatch.setenv("K3S_TOKEN", TOKEN)
    data = yaml.safe_load((REPO / "inventory" / "lab.yaml").read_text())
    data["k3s"]["install"] = {"method": "online"}
    data["k3s"]["token"] = {"token_env": "K3S_TOKEN"}
    with_env = parse_inventory(data, REPO / "inventory" / "lab.yaml")
    runner = RecordingRunner(with_env)
    result = join.run(context(with_env, runner))
    assert result.details == {"agents": ["node2"]}
    [cmd] = runner.recorded
    assert cmd.node == "node2" and cmd.stdin and TOKEN not in cmd.command
    assert "K3S_URL=https://127.0.0.11:6443" in cmd.command and "--node-taint heavy=true:NoSchedule" in cmd.command


def test_join_failure_names_the_node_and_the_command(inv):
    runner = RecordingRunner(inv, [Reply("install", node="node2", exit_code=1, stderr="[ERROR] Failed to start k3s-agent")])
    with pytest.raises(NodesFailed, match=r"agent join failed: node2: `sudo -n -- sh -c .*` exited 1") as info:
        join.run(context(inv, runner))
    assert isinstance(info.value.errors["node2"], RemoteError)


# -- backup ---------------------------------------------------------------------------


def test_backup_saves_the_old_token_0600_and_verifies_the_manifest(inv):
    runner = RecordingRunner(inv, [
        Reply("for u in k3s k3s-agent", node="node1", stdout="k3s\n"),
        Reply(r"cat /var/lib/rancher/k3s/server/token", stdout=TOKEN + "\n"),
        Reply(r"test -d .*/db/etcd", exit_code=1),
        Reply("drtool-datastore", stdout="drtool-datastore: none\n"),
        Reply(r"cat /etc/rancher/k3s/k3s.yaml", exit_code=1),
        Reply("du -sk", node="node2", stdout="2048\t/var/lib/rancher/k3s/storage/pvc-1\n"),
    ])
    ctx = context(inv, runner)
    result = backup.run(ctx)
    token = ctx.run.dir / "backup" / "node1" / "token"
    assert token.read_text() == TOKEN + "\n" and stat.S_IMODE(token.stat().st_mode) == 0o600
    assert result.outcome == "ok" and result.details["volumes"] == 1 and result.details["files"] >= 2
    assert TOKEN not in json.dumps(result.details) and TOKEN not in result.message
    assert backup.verify_manifest(ctx.run.dir / "backup") == result.details["files"]


def test_backup_skipped_sends_nothing(inv):
    runner = RecordingRunner(inv)
    assert backup.run(context(inv, runner, skip_backup=True)).outcome == "skipped"
    assert runner.recorded == []


def _old_cluster_runner(inv) -> RecordingRunner:
    """The old cluster's nodes: K3s on node1 with a SQLite datastore and its kubeconfig."""
    return RecordingRunner(inv, [Reply("for u in k3s k3s-agent", node="node1", stdout="k3s\n"),
                                 Reply(r"test -d .*/db/etcd", exit_code=1),
                                 Reply("drtool-datastore", stdout="drtool-datastore: sqlite3-backup\n"),
                                 Reply(r"cat /etc/rancher/k3s/k3s.yaml", stdout=K3S_YAML)])


def test_backup_saves_the_old_clusters_flux_secrets_and_sealed_keys_through_the_api(inv):
    age = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "data": {"age.agekey": "T0xES0VZ"},
           "metadata": {"name": "sops-age", "namespace": "flux-system", "resourceVersion": "812", "uid": "u-1"}}
    sealed = {"metadata": {"name": "sealed-secrets-key5x2", "namespace": "kube-system", "resourceVersion": "9",
                           "labels": {backup.SEALED_SECRETS_KEY_LABEL: "active"}},
              "type": "kubernetes.io/tls", "data": {"tls.crt": "Q1JU", "tls.key": "S0VZ"}}
    pod = {"spec": {"nodeName": "node1", "containers": [{"image": "nginx:1.27"}]}, "status": {}}
    api = RecordingApiClient([ApiReply(r"/secrets/sops-age$", body=age), ApiReply(r"/secrets/", status=404),
                              ApiReply(r"^GET /api/v1/secrets\?labelSelector=", body={"items": [sealed]}),
                              ApiReply(r"^GET /api/v1/pods$", body={"items": [pod]})])
    seen: list[str] = []

    def old_cluster(kubeconfig: Path) -> RecordingApiClient:
        seen.append(yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"])
        return api

    ctx = context(inv, _old_cluster_runner(inv))
    ctx.api_factory = old_cluster
    result = backup.run(ctx)
    # The old cluster's kubeconfig, pointed at its server's address instead of 127.0.0.1.
    assert seen == [f"https://{inv.node('node1').address}:6443"]
    assert result.details["flux_secrets"] == ["sops-age", "sealed-secrets keys (1)"]
    assert "flux secrets: sops-age, sealed-secrets keys (1)" in result.message
    saved = ctx.run.dir / "backup" / "flux-secrets"
    kept = json.loads((saved / "sops-age.json").read_text())
    assert kept["data"] == age["data"] and "resourceVersion" not in kept["metadata"] and "uid" not in kept["metadata"]
    keys = json.loads((saved / backup.SEALED_SECRETS_FILE).read_text())
    assert [k["metadata"]["name"] for k in keys["items"]] == ["sealed-secrets-key5x2"]
    assert stat.S_IMODE((saved / "sops-age.json").stat().st_mode) == 0o600
    assert "T0xES0VZ" not in result.message + json.dumps(result.details)
    from drtool.phases.image_cache import IN_USE

    assert ctx.state[IN_USE] == {"node1": ["docker.io/library/nginx:1.27"]}
    assert [r for r in api.requests() if "/secrets" in r][:3] == [
        f"GET /api/v1/namespaces/flux-system/secrets/{name}" for name in backup.FLUX_SECRETS]


def test_backup_goes_on_when_the_old_cluster_does_not_answer(inv):
    ctx = context(inv, _old_cluster_runner(inv))
    ctx.api_factory = lambda _kubeconfig: RecordingApiClient([ApiReply(r".", status=503)])
    result = backup.run(ctx)
    assert result.outcome == "ok" and result.details["flux_secrets"] == []
    assert "flux secrets: none" in result.message and (ctx.run.dir / "backup" / "node1" / "state.db").exists()
    assert not (ctx.run.dir / "backup" / "flux-secrets").exists()


def test_dry_run_of_the_backup_is_what_it_reads(inv, tmp_path):
    steps = plan_phase(backup, dry_context(_with_secret_file(inv, tmp_path)))
    assert not any("stops here" in what for _, what in steps), steps
    # Node by node, in the inventory's order, the same every time (the real run reads them in parallel).
    first = [target for target, _ in steps[:next(i for i, (t, _) in enumerate(steps) if t.startswith("api "))]]
    assert first == sorted(first, key=[n.name for n in inv.nodes].index) and set(first) == {"node1", "node2"}
    node1 = [what for target, what in steps if target == "node1"]
    # SQLite (one server): copied with the backup API into a temp file named for the run, fetched, removed.
    tmp = "'\"'\"'/var/tmp/drtool-state-<run-id>.db'\"'\"'"
    assert f"sudo -n -- sh -c 'base64 {tmp}'" in node1 and f"sudo -n -- sh -c 'rm -f {tmp}'" in node1
    old = f"api {inv.node('node1').address}:6443"
    assert [what for target, what in steps if target == old] == [
        "get secrets flux-system/flux-system", "get secrets flux-system/sops-age", "get secrets flux-system/sops-gpg",
        "list pods (v1)", "list secrets (v1)"]


# -- kubeconfig -----------------------------------------------------------------------


def test_kubeconfig_is_pointed_at_the_endpoint_and_written_0600(inv):
    runner = RecordingRunner(inv, [Reply(r"cat /etc/rancher/k3s/k3s.yaml", node="node1", stdout=K3S_YAML)])
    ctx = context(inv, runner)
    result = kubeconfig.run(ctx)
    cfg = yaml.safe_load(ctx.kubeconfig_path.read_text())
    assert cfg["clusters"][0]["cluster"]["server"] == "https://127.0.0.11:6443"
    assert cfg["current-context"] == "lab" and stat.S_IMODE(os.stat(ctx.kubeconfig_path).st_mode) == 0o600
    assert result.message.startswith("wrote ") and runner.commands() == ["sudo -n -- sh -c 'cat /etc/rancher/k3s/k3s.yaml'"]


def test_kubeconfig_merge_writes_the_operators_file_0600_keeping_its_other_clusters(inv, tmp_path):
    from drtool.remote.runner import Runner

    user = tmp_path / "home" / ".kube" / "config"
    user.parent.mkdir(parents=True)
    user.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "work",
                                    "clusters": [{"name": "work", "cluster": {"server": "https://work:6443"}}],
                                    "users": [], "contexts": []}))

    class Fetching(Runner):  # the real runner's local file write; node1's k3s.yaml as recorded
        def read(self, node, remote, *, sudo=True, step=None):
            return K3S_YAML

    ctx = context(inv, Fetching(inv), merge_kubeconfig=True)
    ctx.environ["KUBECONFIG"] = str(user)
    assert kubeconfig.run(ctx).message.endswith(f"; merged into {user}")
    cfg = yaml.safe_load(user.read_text())
    assert [c["name"] for c in cfg["clusters"]] == ["work", "lab"] and cfg["current-context"] == "lab"
    assert stat.S_IMODE(os.stat(user).st_mode) == 0o600


# -- install_servers ------------------------------------------------------------------


def _installing(inv, api: RecordingApiClient, *replies: Reply):
    """A context for install_servers: node1 writes k3s.yaml at once; /readyz goes to ``api``.
    Returns the context and the kubeconfig files the API client was made for."""
    runner = RecordingRunner(inv, [*replies, Reply(r"cat /etc/rancher/k3s/k3s.yaml", node="node1", stdout=K3S_YAML)])
    ctx = context(inv, runner)
    made_for: list[dict] = []

    def factory(kubeconfig: Path) -> RecordingApiClient:
        made_for.append(yaml.safe_load(kubeconfig.read_text()))
        return api

    ctx.api_factory = factory
    return ctx, made_for


def test_install_servers_installs_then_waits_for_its_kubeconfig_and_readyz(inv):
    api = RecordingApiClient([ApiReply(r"^GET /readyz$", body="ok")])
    ctx, made_for = _installing(inv, api)
    result = install.run(ctx)
    assert result.outcome == "ok" and result.message.startswith("1 server(s) ready (single server, SQLite)")
    sent = ctx.runner.commands("node1")
    marker = sent[0].split("touch ")[1].rstrip("'")
    assert sent[0].startswith("sudo -n -- sh -c 'mkdir -p /run/drtool && touch /run/drtool/start-")
    assert "INSTALL_K3S_EXEC='\"'\"'server " in sent[1] and "--cluster-init" not in sent[1]
    # The token went on stdin only.
    [with_stdin] = [r for r in ctx.runner.recorded if r.stdin]
    assert with_stdin.command == sent[1] and ctx.cluster_token().reveal() not in " ".join(sent)
    assert sent[2:] == [f"sudo -n -- sh -c 'test -s /etc/rancher/k3s/k3s.yaml && test /etc/rancher/k3s/k3s.yaml -nt {marker}'",
                        f"sudo -n -- sh -c 'rm -f {marker}'", "sudo -n -- sh -c 'cat /etc/rancher/k3s/k3s.yaml'"]
    # /readyz is asked of the server just installed, with the credentials it wrote.
    assert api.requests() == ["GET /readyz"]
    [cfg] = made_for
    assert cfg["clusters"][0]["cluster"]["server"] == "https://127.0.0.11:6443"
    assert cfg["users"][0]["user"]["client-key-data"] == "TkVXS0VZ"
    assert not list(ctx.run.dir.glob(".kubeconfig-*"))  # the per-node kubeconfig is removed again


def test_install_servers_waits_until_readyz_says_ok(inv):
    api = RecordingApiClient([ApiReply(r"^GET /readyz$", status=500, body="[-]etcd failed", times=2),
                              ApiReply(r"^GET /readyz$", body="ok")])
    ctx, _ = _installing(inv, api, Reply(r"-nt /run/drtool/start-", exit_code=1, times=1))
    install.run(ctx)
    assert api.requests() == ["GET /readyz"] * 3
    waits = [c for c in ctx.runner.commands("node1") if "-nt /run/drtool/start-" in c]
    assert len(waits) == 2  # the first look found no k3s.yaml from this start yet


# -- nodes_ready (its API listing is not recorded; the verdict is pure) ----------------


def test_nodes_ready_names_what_each_node_still_lacks(inv):
    # inventory/lab.yaml: node1 plain; node2 labelled hardware=heavy and tainted heavy=true:NoSchedule.
    ready = {"type": "Ready", "status": "True"}
    api_nodes = [{"metadata": {"name": "node1"}, "status": {"conditions": [ready]}}]
    assert nodes_ready.node_problems(inv, api_nodes) == {"node2": "not registered"}
    node2 = {"metadata": {"name": "node2"},
             "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady"}]}}
    assert nodes_ready.node_problems(inv, api_nodes + [node2]) == {"node2": "not Ready (KubeletNotReady)"}
    node2["status"] = {"conditions": [ready]}
    assert nodes_ready.node_problems(inv, api_nodes + [node2]) == {"node2": "missing label(s) hardware=heavy"}
    node2["metadata"]["labels"] = {"hardware": "heavy"}
    assert nodes_ready.node_problems(inv, api_nodes + [node2]) == {"node2": "missing taint(s) heavy=true:NoSchedule"}
    node2["spec"] = {"taints": [{"key": "heavy", "value": "true", "effect": "NoSchedule"}]}
    assert nodes_ready.node_problems(inv, api_nodes + [node2]) == {}


# -- API phases (requests recorded by RecordingApiClient) -------------------------------

NODES = {"items": [
    {"metadata": {"name": "node1"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
    {"metadata": {"name": "node2", "labels": {"hardware": "heavy"}},
     "spec": {"taints": [{"key": "heavy", "value": "true", "effect": "NoSchedule"}]},
     "status": {"conditions": [{"type": "Ready", "status": "True"}]}}]}


def test_nodes_ready_lists_nodes_once_when_all_are_ready(inv):
    api = RecordingApiClient([ApiReply(r"^GET /api/v1/nodes$", body=NODES)])
    ctx = api_context(inv, api)
    assert nodes_ready.run(ctx).message == "2 node(s) Ready with their labels and taints"
    assert api.requests() == ["GET /api/v1/nodes"]


def test_nodes_ready_gives_up_at_its_bound_naming_the_node(inv):
    data = inv.model_dump()
    data["timeouts"]["nodes_ready"] = 0.3
    quick = parse_inventory({k: v for k, v in data.items() if k != "path"}, inv.path)
    api = RecordingApiClient([ApiReply(r"^GET /api/v1/nodes$", body={"items": NODES["items"][:1]})])
    ctx = api_context(quick, api)
    with pytest.raises(NotConverged, match=r"^nodes not ready within 0.3s: node2: not registered$"):
        nodes_ready.run(ctx)
    assert len(api.calls) >= 2 and set(api.requests()) == {"GET /api/v1/nodes"}


def _with_secret_file(inv, tmp_path):
    """The inventory with its secret file there and, as its GitOps checkout, the lab's repository
    as shipped (the lab's own clone under .lab/ exists only once the lab has started)."""
    from drtool.lab.gitops_repo import fixture_dir

    key = tmp_path / "age.agekey"
    key.write_text("AGE-SECRET-KEY-1RECORDED\n")
    data = inv.model_dump()
    data["secrets"] = [{**data["secrets"][0], "from_file": str(key)}]
    data["flux"]["checkout"] = str(fixture_dir())
    return parse_inventory({k: v for k, v in data.items() if k != "path"}, inv.path)


def test_restore_secrets_creates_the_namespace_and_the_secret_without_logging_its_value(inv, tmp_path):
    with_file = _with_secret_file(inv, tmp_path)
    api = RecordingApiClient([ApiReply(r"^POST /api/v1/namespaces$", status=409, body={"reason": "AlreadyExists"})])
    ctx = api_context(with_file, api)
    result = restore_secrets.run(ctx)
    assert result.message == "restored flux-system/sops-age"
    assert api.requests() == ["POST /api/v1/namespaces (Namespace flux-system)",
                              "POST /api/v1/namespaces/flux-system/secrets (Secret sops-age)"]
    assert "RECORDED" not in repr(api.calls)


def test_restore_secrets_replaces_an_existing_secret(inv, tmp_path):
    with_file = _with_secret_file(inv, tmp_path)
    api = RecordingApiClient([ApiReply(r"^POST /api/v1/namespaces/flux-system/secrets$", status=409)])
    ctx = api_context(with_file, api)
    restore_secrets.run(ctx)
    assert api.requests()[-1] == "PUT /api/v1/namespaces/flux-system/secrets/sops-age (Secret sops-age)"


def test_restore_secrets_retries_an_api_that_is_not_ready_yet(inv, tmp_path):
    with_file = _with_secret_file(inv, tmp_path)
    api = RecordingApiClient([ApiReply(r"^POST /api/v1/namespaces/flux-system/secrets$", status=503, times=1)])
    ctx = api_context(with_file, api)
    assert restore_secrets.run(ctx).message == "restored flux-system/sops-age"
    assert api.requests()[-2:] == ["POST /api/v1/namespaces/flux-system/secrets (Secret sops-age)"] * 2


def test_restore_secrets_forbidden_is_one_line_naming_the_secret(inv, tmp_path):
    with_file = _with_secret_file(inv, tmp_path)
    api = RecordingApiClient([ApiReply(r"secrets$", status=403)])
    ctx = api_context(with_file, api)
    with pytest.raises(PermanentError, match=r"^creating Secret flux-system/sops-age: HTTP 403"):
        restore_secrets.run(ctx)


# -- preflight ------------------------------------------------------------------------


def test_preflight_reports_an_unreachable_node_as_a_failed_check(inv):
    runner = RecordingRunner(inv, [Reply("connect", node="node2", raises=ConnectError("node2 (127.0.0.12:2222): refused"))])
    result = run_preflight(inv, runner)
    ssh = {c.target: c.state for c in result.checks if c.name == "ssh"}
    assert ssh == {"node1": "pass", "node2": "fail"} and not result.ok
    assert runner.commands("node2") == []


def _flux_check(checks):
    [check] = [c for c in checks if c.name == "flux cli"]
    return check.state, check.detail


def test_preflight_asks_the_flux_cli_its_version_through_the_runner(inv):
    # fluxcd/flux2 cmd/flux/version.go: `flux version --client` prints YAML, `flux: <version>`.
    runner = RecordingRunner(inv, [Reply(r"version --client", node="local", stdout=f"flux: {inv.flux.version}\n")])
    result = run_preflight(inv, runner)
    cli = flux_cli(inv)
    assert _flux_check(result.checks) == ("pass", f"{cli} {inv.flux.version}")
    assert [r.command for r in runner.recorded if r.node == "local"][0] == f"{cli} version --client"


def test_preflight_flux_cli_at_another_version_or_missing_fails(inv):
    runner = RecordingRunner(inv, [Reply(r"version --client", node="local", stdout="flux: 2.0.1\n")])
    cli = flux_cli(inv)
    assert _flux_check(run_preflight(inv, runner).checks) == (
        "fail", f"{cli} is v2.0.1, the inventory pins {inv.flux.version}")
    runner = RecordingRunner(inv, [Reply(r"version --client", node="local",
                                         raises=PermanentError(f"local: cannot run {cli}: No such file"))])
    assert _flux_check(run_preflight(inv, runner).checks) == ("fail", f"{cli} not found or not runnable")


def test_preflight_reads_the_gitops_repository_through_the_runner(inv, monkeypatch):
    # git ls-remote prints nothing for a branch that is not there: flux2 v2.4.0
    # pkg/bootstrap/bootstrap_provider.go would then create it, so preflight fails.
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_preflightvalue42")
    runner = RecordingRunner(inv, [Reply(r"^git ls-remote ", node="local", stdout="")])
    result = run_preflight(inv, runner)
    [repo] = [c for c in result.checks if c.name == "gitops repo"]
    assert repo.state == "fail" and repo.detail.startswith(f"branch {inv.flux.branch} does not exist in https://")
    [sent] = [r.command for r in runner.recorded if r.command.endswith(f"refs/heads/{inv.flux.branch}")]
    # The token travels in git's environment (an HTTP header), shown by name only.
    assert " git ls-remote --heads https://github.com/lab/homelab-gitops.git " in sent
    assert "GIT_CONFIG_VALUE_0=*** " in sent and "ghp_preflightvalue42" not in repr(runner.recorded)


def test_preflight_reads_flux_system_from_the_branch_tip(inv, monkeypatch):
    from drtool.flux_system import SYNC_FILE

    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    # The path is there, its flux-system manifests not yet (git show exits 128): bootstrap writes them.
    runner = RecordingRunner(inv, [Reply(r"^git ls-remote ", node="local", stdout="ab12\trefs/heads/main\n"),
                                   Reply(r"^git ls-tree ", node="local", stdout="clusters/homelab/flux-system\n"),
                                   Reply(r"^git show ", node="local", exit_code=128)])
    checks = {c.name: c for c in run_preflight(inv, runner).checks}
    assert checks["gitops repo"].state == "pass" and checks["flux options"].state == "pass"
    assert "bootstrap writes it from the inventory" in checks["flux options"].detail
    local = [r.command for r in runner.recorded if r.node == "local" and " git " in f" {r.command}"]
    assert [f" {c}".split(" git ", 1)[1].split()[0] for c in local] == [
        "ls-remote", "init", "fetch", "ls-tree", "show", "show", "show"]
    assert local[-2].endswith(f"show FETCH_HEAD:clusters/homelab/flux-system/{SYNC_FILE}")


def test_preflight_looks_up_token_variables_in_the_runs_environment(inv, monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    checks = run_preflight(inv, RecordingRunner(inv), environ={"GITHUB_TOKEN": "x"}).checks
    assert [c.state for c in checks if c.name == "git token"] == ["pass"]
    checks = run_preflight(inv, RecordingRunner(inv), environ={}).checks
    assert [c.state for c in checks if c.name == "git token"] == ["fail"]


def test_the_dry_runs_git_answers_have_the_shape_of_real_gits(inv, tmp_path):
    """The dry run scripts git (drtool.phases.dry_run.dry_replies); real git, run here on a local
    repository, answers the same reads in the same shape: `ls-remote` one `<sha>\t<ref>` line
    per head (git-ls-remote(1)), `ls-tree --name-only` the names under the path, and `show` of a
    path the commit lacks exits 128 (git's die(), usage.c)."""
    import re
    import subprocess

    from drtool.phases.dry_run import dry_replies
    from drtool.remote.runner import Runner

    repo = tmp_path / "repo"
    (repo / "clusters" / "homelab" / "flux-system").mkdir(parents=True)
    (repo / "clusters" / "homelab" / "flux-system" / "kustomization.yaml").write_text("resources: []\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x"}
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    runner, url = Runner(inv), f"file://{repo}"
    real = {
        "ls-remote": runner.local(["git", "ls-remote", "--heads", url, "refs/heads/main"], cwd=repo).stdout,
        "ls-tree": runner.local(["git", "ls-tree", "--name-only", "HEAD", "clusters/homelab/"], cwd=repo).stdout,
        "show": runner.local(["git", "show", "HEAD:clusters/homelab/flux-system/gotk-sync.yaml"], cwd=repo,
                             check=False).exit_code,
    }
    scripted = {name: next(r for r in dry_replies(inv) if r.match == f"^git {name} ") for name in real}
    shape = r"^[0-9a-f]{40}\trefs/heads/main\n$"
    assert re.match(shape, real["ls-remote"]) and re.match(shape, scripted["ls-remote"].stdout)
    assert real["ls-tree"] == scripted["ls-tree"].stdout == "clusters/homelab/flux-system\n"
    assert real["show"] == scripted["show"].exit_code == 128


def test_no_phase_keeps_a_written_plan():
    from drtool.drills.drill import drill_phases
    from drtool.pipeline import PHASES

    # A dry run shows what run() sends (drtool.phases.dry_run), never a description beside it.
    assert [p.NAME for p in (*PHASES, *drill_phases()) if hasattr(p, "plan")] == []


def test_dry_run_of_preflight_is_the_checks_it_makes(inv, tmp_path, monkeypatch):
    from drtool.pipeline import PHASES

    monkeypatch.setenv("GITHUB_TOKEN", "ghp_dryrunvalue123")
    with_file = _with_secret_file(inv, tmp_path)
    ctx = dry_context(with_file)
    steps = plan_phase(PHASES[0], ctx)
    assert not any("stops here" in what for _, what in steps), steps
    for node in with_file.nodes:   # sudo, then the facts, on every node
        mine = [what for target, what in steps if target == node.name]
        assert mine[0] == "sudo -n true" and mine[1].startswith('echo "os=$(uname -s)"')
    local = [what for target, what in steps if target == "local"]
    assert local[0] == f"{flux_cli(with_file)} version --client"
    assert any(" git ls-remote --heads https://github.com/lab/homelab-gitops.git refs/heads/main" in w for w in local)
    # The GitOps check reads the old cluster with the kubeconfig from the first server.
    api = f"api {urlsplit(with_file.cluster.api_endpoint).netloc}"
    old = [what for target, what in steps if target == api]
    assert old[0] == "GET /version" and "list kustomizations (kustomize.toolkit.fluxcd.io/v1)" in old
    assert ("node1", "sudo -n -- sh -c 'cat /etc/rancher/k3s/k3s.yaml'") in steps
    assert ctx.run.record["gitops_check"]["findings"] == []


def test_dry_run_of_preflight_stops_where_the_real_one_would(inv, tmp_path):
    # The inventory's secret file is not there: preflight fails, and so does its dry run, saying why.
    data = _with_secret_file(inv, tmp_path).model_dump()
    data["secrets"][0]["from_file"] = str(tmp_path / "missing.agekey")
    missing = parse_inventory({k: v for k, v in data.items() if k != "path"}, inv.path)
    from drtool.pipeline import PHASES

    last = plan_phase(PHASES[0], dry_context(missing))[-1]
    assert last[0] == "local" and last[1].startswith("(the dry run of preflight stops here: preflight failed: ")
    assert "missing.agekey not readable" in last[1]


# -- the pipeline ---------------------------------------------------------------------


def test_pipeline_journals_real_phases_run_against_recorded_nodes(inv):
    runner = RecordingRunner(inv, [Reply("uninstall", stdout="drtool-teardown: noop")])
    pipeline = Pipeline(inv, Options(quiet=True, skip_backup=True), phases=[backup, teardown, join],
                        runner=lambda *_: runner)
    assert pipeline.run() == 0
    journal = json.loads((pipeline.run_obj.dir / "journal.json").read_text())
    assert [(p["name"], p["outcome"]) for p in journal["phases"]] == [
        ("backup", "skipped"), ("teardown", "ok"), ("join_agents", "ok")]
    assert list(journal["phases"][1]["nodes"]) == ["node2", "node1"]
    assert _wipes(runner.recorded) == ["node2", "node1", "node2"]


def test_pipeline_interrupt_inside_the_agent_join_exits_130_with_the_resume_hint(inv):
    runner = RecordingRunner(inv, [Reply("install", node="node2", raises=Interrupted("interrupted during join_agents"))])
    pipeline = Pipeline(inv, Options(quiet=True, skip_backup=True), phases=[backup, join], runner=lambda *_: runner)
    with pytest.raises(Exit) as info:
        guarded(pipeline.run)()
    rid = pipeline.run_obj.record["run_id"]
    assert info.value.code == 130 and info.value.message.endswith(f"; resume with --resume {rid}")
    journal = json.loads((pipeline.run_obj.dir / "journal.json").read_text())
    assert journal["status"] == "interrupted" and journal["stopped_at"] == "join_agents"


def test_pipeline_host_key_error_inside_a_node_worker_exits_7(inv):
    from drtool.errors import HostKeyError

    runner = RecordingRunner(inv, [Reply("uninstall", node="node2", raises=HostKeyError("node2: the SSH host key CHANGED"))])
    pipeline = Pipeline(inv, Options(quiet=True, skip_backup=True), phases=[teardown], runner=lambda *_: runner)
    with pytest.raises(Exit) as info:
        guarded(pipeline.run)()
    assert info.value.code == 7 and "host key CHANGED" in info.value.message


def test_resuming_another_clusters_run_is_refused_before_anything_runs(inv, tmp_path):
    other = Run.create("rebuild", str(inv.path), "other-cluster")
    rid = other.record["run_id"]
    book = tmp_path / "book.yaml"
    book.write_text(yaml.safe_dump({"name": "probe", "description": "d", "steps": [
        {"id": "uname", "title": "Kernel", "remote": {"on": "all", "command": "uname -r"}}]}))
    runner = RecordingRunner(inv)
    for start in (Pipeline(inv, Options(quiet=True), resume=rid, runner=lambda *_: runner).run,
                  RunbookExecutor(inv, load_runbook(book), RunOptions(quiet=True, yes=True, resume=rid),
                                  runner=lambda *_: runner).run):
        with pytest.raises(Exit) as info:
            guarded(start)()
        assert info.value.code == 2
        assert info.value.message.endswith(f"--resume: run {rid} is for cluster other-cluster, not lab")
    assert runner.recorded == []


# -- dry run from the phases' own code ----------------------------------------------------


def test_dry_run_shows_what_the_phases_send_and_writes_nothing(inv, tmp_path):
    ctx = dry_context(inv)
    # (the image cache's give-back, shown first on node2, has its own tests: test_image_cache.py)
    lines = ([line for line in plan_phase(join, ctx) if "drtool-images" not in line[1]]
             + [line for line in plan_phase(teardown, ctx) if "k3s/storage" not in line[1]])
    assert lines[0][0] == "node2" and lines[0][1].endswith("   # stdin: ***")
    assert [t for t, _ in lines[1:]] == ["node2", "node1"] and "k3s-agent-uninstall.sh" in lines[1][1]
    assert not (tmp_path / "runs").exists()


def test_dry_run_of_the_pipeline_runs_the_api_phases_against_a_cluster_that_is_ready_at_once(inv, tmp_path,
                                                                                            monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_dryrunvalue123")
    with_file = _with_secret_file(inv, tmp_path)
    steps = Pipeline(with_file, Options(quiet=True)).plan()
    assert not (tmp_path / "runs").exists()  # no run
    assert "RECORDED" not in repr(steps) and "ghp_dryrunvalue123" not in repr(steps)  # no secret value
    shown: dict[str, list[tuple[str, str]]] = {}
    for phase, target, what in steps:
        if target != "schedule":   # how phases overlap (tests/unit/test_overlap.py), not what they send
            shown.setdefault(phase, []).append((target, what))
    api = "api 127.0.0.11:6443"
    # install_servers: what its run() sends, then /readyz of the server it installed.
    ctx, _ = _installing(with_file, RecordingApiClient([ApiReply(r"^GET /readyz$", body="ok")]))
    install.run(ctx)
    [sent] = [r.describe() for r in ctx.runner.recorded if r.stdin]
    install_lines = [what for _, what in shown["install_servers"]]
    assert sent in install_lines and install_lines[-2:] == ["sudo -n -- sh -c 'cat /etc/rancher/k3s/k3s.yaml'",
                                                            "GET /readyz"]
    assert shown["install_servers"][-1][0] == api
    # The kubeconfig phase fetched the kubeconfig, so nodes_ready only lists the Nodes (once: all Ready).
    assert shown["kubeconfig"] == [("node1", "sudo -n -- sh -c 'cat /etc/rancher/k3s/k3s.yaml'")]
    assert shown["nodes_ready"] == [(api, "list nodes (v1)")]
    assert shown["restore_secrets"] == [(api, "create Namespace flux-system"), (api, "create Secret flux-system/sops-age")]
    # converge: every kind the engine follows is listed then watched; it ends at once, converged.
    converge = [what for _, what in shown["converge"]]
    assert "list, then watch kustomizations (kustomize.toolkit.fluxcd.io/v1)" in converge
    assert "list, then watch helmreleases (helm.toolkit.fluxcd.io/v2)" in converge
    assert "list, then watch pods (v1)" in converge and "get gitrepositories flux-system/flux-system" in converge
    # bootstrap: the pinned flux CLI as run() starts it, its token variable by name only.
    [(target, flux)] = shown["bootstrap"]
    assert target == "local" and flux.startswith("GITHUB_TOKEN=*** ") and " bootstrap github --owner=lab " in flux
    assert not any("stops here" in what for _, _, what in steps)


def test_the_readmes_dry_run_example_is_what_a_dry_run_prints(inv, tmp_path):  # inv: sets the runs dir
    readme = (REPO / "README.md").read_text()
    block = readme.split("### Dry runs", 1)[1].split("\n\n    == ", 1)[1].split("\n\n", 1)[0]
    example: dict[str, list[str]] = {}
    phase = ""
    for line in ("    == " + block).splitlines():
        if line.startswith("    == "):
            phase = line[7:]
        else:
            example.setdefault(phase, []).append(line.strip())
    shown: dict[str, list[str]] = {}
    lab = parse_inventory(yaml.safe_load((REPO / "inventory" / "lab.yaml").read_text()), REPO / "inventory" / "lab.yaml")
    for name, target, what in Pipeline(_with_secret_file(lab, tmp_path), Options(quiet=True)).plan():
        shown.setdefault(name, []).append(f"[{target}] {what}")
    for name, lines in example.items():
        for line in lines:  # "…" stands for a shortened part of the line
            head, _, tail = line.partition("…")
            assert any(s.startswith(head) and s.endswith(tail) for s in shown[name]), (name, line)


def test_dry_run_shows_the_kubeconfig_merge_without_writing_the_operators_file(inv, tmp_path):
    user = tmp_path / "home-kubeconfig"
    ctx = dry_context(inv, Options(merge_kubeconfig=True))
    ctx.environ["KUBECONFIG"] = str(user)
    assert plan_phase(kubeconfig, ctx)[-1] == ("local", f"write {user} (mode 0600)")
    assert not user.exists()


# -- the runbook executor -------------------------------------------------------------


def test_runbook_executor_runs_remote_and_check_steps_on_recorded_nodes(inv, tmp_path):
    path = tmp_path / "book.yaml"
    path.write_text(yaml.safe_dump({"name": "probe", "description": "d", "steps": [
        {"id": "uname", "title": "Kernel", "remote": {"on": "all", "command": "uname -r"}},
        {"id": "version", "title": "K3s version", "check": {"on": ["node1"], "command": "k3s --version",
                                                             "expect": "^k3s version v1\\.31"}},
        {"id": "note", "title": "Note it", "local": {"command": "echo checked {{ cluster }}"}},
    ]}))
    runner = RecordingRunner(inv, [Reply("uname", stdout="6.1.0\n"),
                                   Reply("k3s --version", stdout="k3s version v1.31.4+k3s1 (a562d090)\n")])
    book = load_runbook(path)
    executor = RunbookExecutor(inv, book, RunOptions(quiet=True, yes=True), runner=lambda *_: runner)
    assert executor.run() == 0
    assert runner.commands() == ["uname -r", "uname -r", "k3s --version", "echo checked lab"]
    assert runner.recorded[-1].node == "local"
    report = json.loads((executor.ctx.run.dir / "runbook-report.json").read_text())
    assert [(s["id"], s["status"]) for s in report["steps"]] == [("uname", "ok"), ("version", "ok"), ("note", "ok")]


def test_runbook_check_that_does_not_match_stops_with_the_resume_hint(inv, tmp_path):
    path = tmp_path / "book.yaml"
    path.write_text(yaml.safe_dump({"name": "probe", "description": "d", "steps": [
        {"id": "version", "title": "K3s version", "check": {"on": ["node1"], "command": "k3s --version", "expect": "v1\\.32"}},
    ]}))
    runner = RecordingRunner(inv, [Reply("k3s --version", stdout="k3s version v1.31.4+k3s1\n")])
    executor = RunbookExecutor(inv, load_runbook(path), RunOptions(quiet=True, yes=True), runner=lambda *_: runner)
    with pytest.raises(Exit) as info:
        guarded(executor.run)()
    rid = executor.ctx.run.record["run_id"]
    assert info.value.code == 1
    assert "step version failed: check failed on node1" in info.value.message and f"--resume {rid}" in info.value.message


def _backed_up_run(run_id: str) -> Path:
    """runs/<run_id>/backup/ as the backup phase writes it for a SQLite server: node1's state.db
    and token, node2's node password, a verified manifest."""
    from drtool.run import runs_dir

    dest = runs_dir() / run_id / "backup"
    for rel, text in (("node1/state.db", "SQLite format 3\0"), ("node1/token", TOKEN + "\n"),
                      ("node2/node-password", "0123456789abcdef\n")):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(text)
    backup.write_manifest(dest)
    return dest


def _runbook_plan(inv, book: str, step: str, **params) -> list[tuple[str, str]]:
    from drtool.runbooks.plan import plan_step

    runbook = load_runbook(REPO / "runbooks" / f"{book}.yaml")
    return plan_step(runbook, runbook.index(step), params, dry_context(inv))


def test_no_runbook_action_keeps_a_written_plan():
    from drtool.runbooks.actions import ACTIONS

    assert [a.name for a in ACTIONS.values() if hasattr(a, "plan")] == []


def test_dry_run_of_a_runbook_action_is_what_its_run_sends(inv):
    dest = _backed_up_run("r1")
    prepare = RecordingRunner(inv).wrap(inv.node("node1"), k3s.restore_prepare_command(inv, datastore="sqlite"), sudo=True)
    assert _runbook_plan(inv, "restore-datastore", "restore", run="r1") == [
        ("node1", prepare),
        ("node1", f"upload {dest}/node1/state.db -> /var/lib/rancher/k3s/server/db/state.db (mode 0600)"),
        # Only the node whose password was backed up gets it back (the written plan listed every node).
        ("node2", "upload <bytes> -> /etc/rancher/node/password (mode 0600)")]
    # The original token goes on stdin, never in the command; then the wait for the server's API.
    reinstall = _runbook_plan(inv, "restore-datastore", "reinstall-server", run="r1")
    [install_line] = [what for target, what in reinstall if what.endswith("   # stdin: ***")]
    assert "INSTALL_K3S_EXEC=" in install_line and TOKEN not in repr(reinstall)
    assert reinstall[-1] == (f"api {urlsplit(inv.cluster.api_endpoint).netloc}", "GET /readyz")
    assert _runbook_plan(inv, "restore-datastore", "restore-volumes", run="r1") == [
        ("local", "(nothing to send: run r1 archived no volumes (backup.archive_volumes was off); nothing to restore)")]


def test_restore_secrets_action_puts_back_flux_secrets_and_sealed_keys_as_the_phase_does(inv):
    from drtool.runbooks.restore_actions import _restore_secrets

    dest = _backed_up_run("r2")
    (dest / "flux-secrets").mkdir()
    (dest / "flux-secrets" / "sops-age.json").write_text(json.dumps(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sops-age", "namespace": "flux-system"},
         "data": {"age.agekey": "T0xES0VZ"}}))
    (dest / "flux-secrets" / backup.SEALED_SECRETS_FILE).write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"metadata": {"name": "sealed-secrets-key5x2", "namespace": "kube-system"}, "type": "kubernetes.io/tls",
         "data": {"tls.crt": "Q1JU", "tls.key": "S0VZ"}}]}))
    backup.write_manifest(dest)
    api = RecordingApiClient([ApiReply(r"^POST /api/v1/namespaces/flux-system/secrets$", status=409, times=1)])
    ctx = api_context(inv, api)
    assert _restore_secrets(ctx, {"run": "r2"}, ("book.yaml", "steps[0]")) == (
        "restored Secrets flux-system/sops-age, 1 sealed-secrets key(s) from run r2")
    # An existing Secret is replaced; the keys' List is not sent as a Secret, each key is.
    assert api.requests() == [
        "POST /api/v1/namespaces/flux-system/secrets (Secret sops-age)",
        "PUT /api/v1/namespaces/flux-system/secrets/sops-age (Secret sops-age)",
        "POST /api/v1/namespaces (Namespace kube-system)",
        "POST /api/v1/namespaces/kube-system/secrets"]


def test_dry_run_of_a_runbook_action_stops_where_its_run_would(inv):
    assert _runbook_plan(inv, "restore-datastore", "restore", run="r9") == [
        ("local", "(the dry run of restore-datastore stops here: command line: --param: "
                  "run 'r9' has no backup directory under " + os.environ["DRTOOL_RUNS_DIR"] + ")")]


def test_runbook_converge_check_is_planned_from_its_own_run(inv, tmp_path):
    path = tmp_path / "book.yaml"
    path.write_text(yaml.safe_dump({"name": "probe", "description": "d", "steps": [
        {"id": "apps", "title": "Apps ready", "check": {"converge": {"kustomizations": ["flux-system/apps"],
                                                                      "deadline": 5}}}]}))
    [(_, _, lines)] = RunbookExecutor(inv, load_runbook(path), RunOptions(quiet=True)).plan()
    assert lines[0] == ("local", "wait until every Flux object, workload, pod and node is ready (≤ 5s); "
                                 "expect Kustomizations flux-system/apps")
    # The check's own wait, against a dry cluster where what it names (not in the inventory) is Ready.
    api = f"api {urlsplit(inv.cluster.api_endpoint).netloc}"
    assert (api, "list, then watch kustomizations (kustomize.toolkit.fluxcd.io/v1)") in lines
    assert not any("stops here" in what for _, what in lines), lines


def test_recorded_secrets_never_show(inv):
    secret = Secret("s3cr3t-value-xyz", "test")
    runner = RecordingRunner(inv)
    runner.run(inv.nodes[0], f"echo {secret.reveal()}", stdin=secret)
    assert "s3cr3t-value-xyz" not in runner.recorded[0].describe()


# -- drill phases ---------------------------------------------------------------------


def test_drill_post_checks_with_nothing_to_check_pass(inv):
    from drtool.drills.drill import PostChecks, ProtectSnapshot

    data = inv.model_dump(mode="json", exclude={"path"})
    data["expectations"]["helmreleases"] = []
    data["drill"] = {"enabled": True, "verify_protected": False}
    bare = parse_inventory(data, inv.path)
    ctx = context(bare, RecordingRunner(bare))
    assert ProtectSnapshot.run(ctx).outcome == "skipped"
    result = PostChecks.run(ctx)
    assert (result.outcome, result.message) == ("ok", "0 post-check(s) passed")
    assert ctx.run.record["post_checks"] == []


def _with_http_check(inv, **check):
    data = inv.model_dump(mode="json", exclude={"path"})
    data["expectations"]["helmreleases"] = []
    data["drill"] = {"enabled": True, "verify_protected": False,
                     "http_checks": [{"name": "web", "url": "http://127.0.0.1:9/health", "delay": 0.01, **check}]}
    return parse_inventory(data, inv.path)


def test_drill_http_check_is_retried_through_the_runner_until_it_answers_as_expected(inv):
    from drtool.drills.drill import PostChecks

    checked = _with_http_check(inv, status=204, retries=3)
    runner = RecordingRunner(checked, [Reply(r"^GET ", node="local", stdout="503", times=1),
                                       Reply(r"^GET ", node="local", exit_code=1, stderr="URLError: refused", times=1),
                                       Reply(r"^GET ", node="local", stdout="204")])
    ctx = context(checked, runner)
    assert PostChecks.run(ctx).message == "1 post-check(s) passed"
    assert runner.commands("local") == ["GET http://127.0.0.1:9/health"] * 3
    assert ctx.run.record["post_checks"][0]["message"] == "HTTP 204 after 3 attempt(s)"


def test_drill_http_check_that_never_answers_fails_saying_what_it_last_got(inv):
    from drtool.drills.drill import PostChecks

    checked = _with_http_check(inv, retries=1)
    runner = RecordingRunner(checked, [Reply(r"^GET ", node="local", stdout="502", times=1),
                                       Reply(r"^GET ", node="local", exit_code=1, stderr="URLError: refused")])
    with pytest.raises(DrtoolError, match=r"^post-checks failed: http web: URLError: refused after 2 attempt\(s\)$"):
        PostChecks.run(context(checked, runner))


def test_the_real_runners_http_get_gives_the_status_and_logs_it(inv, tmp_path):
    import http.server
    import socket
    import threading

    from drtool.remote.runner import CommandLog, Runner

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(204 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with socket.socket() as s:   # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        runner = Runner(inv, CommandLog(tmp_path / "commands.log"))
        assert runner.http_status(f"{base}/health", timeout=5, step="post_checks") == (204, "")
        assert runner.http_status(f"{base}/nope", timeout=5) == (404, "")
        status, why = runner.http_status(f"http://127.0.0.1:{closed}/health", timeout=5)
        assert status is None and why.startswith("URLError: ") and "refused" in why
    finally:
        server.shutdown()
        server.server_close()
    logged = [json.loads(line) for line in (tmp_path / "commands.log").read_text().splitlines()]
    assert [(e["node"], e["command"], e["http_status"]) for e in logged] == [
        ("local", f"GET {base}/health", 204), ("local", f"GET {base}/nope", 404),
        ("local", f"GET http://127.0.0.1:{closed}/health", None)]


def test_dry_run_of_the_drills_post_checks_is_what_they_send(inv):
    from drtool.drills.drill import drill_phases

    data = inv.model_dump(mode="json", exclude={"path"})
    data["drill"] = {"enabled": True, "verify_protected": True,
                     "http_checks": [{"name": "web", "url": "http://127.0.0.1:9/health", "status": 204}]}
    drill_inv = parse_inventory(data, inv.path)
    steps = Pipeline(drill_inv, Options(quiet=True), kind="drill", phases=drill_phases()).plan()
    post = [(target, what) for phase, target, what in steps if phase == "post_checks"]
    guarded_nodes = [n for n in drill_inv.nodes if n.protected_paths]
    api = f"api {urlsplit(drill_inv.cluster.api_endpoint).netloc}"
    assert post == [("local", "GET http://127.0.0.1:9/health"), (api, "list helmreleases (helm.toolkit.fluxcd.io/v2)"),
                    *[(n.name, RecordingRunner(drill_inv).wrap(n, digest_command(n.protected_paths), sudo=True))
                      for n in guarded_nodes]]


def test_dry_run_of_the_drills_protected_snapshot_is_its_checksum_commands(inv):
    from drtool.drills.drill import ProtectSnapshot, digest_command

    data = inv.model_dump(mode="json", exclude={"path"})
    data["drill"] = {"enabled": True, "verify_protected": True}
    drill_inv = parse_inventory(data, inv.path)
    guarded_nodes = [n for n in drill_inv.nodes if n.protected_paths]
    assert guarded_nodes
    assert plan_phase(ProtectSnapshot, dry_context(drill_inv)) == [
        (n.name, RecordingRunner(drill_inv).wrap(n, digest_command(n.protected_paths), sudo=True)) for n in guarded_nodes]


# -- bootstrap: the flux CLI through the runner's local commands -----------------------


@pytest.fixture
def unreachable_api(inv):
    # An API address nothing listens on (this checkout's own test subnet): status reads fail fast.
    data = inv.model_dump(mode="json", exclude={"path"})
    data["cluster"]["api_endpoint"] = "https://127.20.99.1:6443"
    return parse_inventory(data, inv.path)


def test_bootstrap_runs_the_pinned_flux_cli_with_the_token_only_in_its_environment(unreachable_api, monkeypatch):
    from drtool.phases import bootstrap

    monkeypatch.setenv("GITHUB_TOKEN", "ghp_recordedtoken123")
    runner = RecordingRunner(unreachable_api, [Reply(r"cat /etc/rancher/k3s/k3s.yaml", stdout=K3S_YAML),
                                               Reply("bootstrap github", node="local", stdout="✔ all components are healthy\n")])
    ctx = context(unreachable_api, runner)
    result = bootstrap.run(ctx)
    assert result.outcome == "ok" and "bootstrapped github" in result.message
    (flux,) = [r for r in runner.recorded if r.node == "local"]
    assert "bootstrap github" in flux.command and "--owner=lab" in flux.command
    assert "ghp_recordedtoken123" not in flux.command
    assert "all components are healthy" in (ctx.run.dir / "bootstrap.log").read_text()


def test_bootstrap_that_times_out_keeps_what_flux_printed(unreachable_api, monkeypatch):
    from drtool.errors import RetryableError
    from drtool.phases import bootstrap
    from drtool.remote.runner import LocalCommandTimedOut

    monkeypatch.setenv("GITHUB_TOKEN", "ghp_recordedtoken123")
    runner = RecordingRunner(unreachable_api, [
        Reply(r"cat /etc/rancher/k3s/k3s.yaml", stdout=K3S_YAML),
        Reply("bootstrap github", node="local",
              raises=LocalCommandTimedOut("local: flux timed out after 5s", "◎ waiting for Kustomization\n"))])
    ctx = context(unreachable_api, runner)
    with pytest.raises(RetryableError, match="did not finish within"):
        bootstrap._attempt(ctx, ["flux", "bootstrap", "github"], {}, timeout=5)
    log = (ctx.run.dir / "bootstrap.log").read_text()
    assert "waiting for Kustomization" in log and "stopped after 5s" in log


def test_a_runbook_phase_step_records_the_outcome_its_phase_gave(inv, tmp_path):
    path = tmp_path / "book.yaml"
    path.write_text(yaml.safe_dump({"name": "probe", "description": "d", "steps": [
        {"id": "backup", "title": "Back up", "phase": "backup", "args": {"skip_backup": True}},
        {"id": "teardown", "title": "Wipe", "phase": "teardown"},
    ]}))
    runner = RecordingRunner(inv, [Reply("uninstall", stdout="drtool-teardown: noop")])
    executor = RunbookExecutor(inv, load_runbook(path), RunOptions(quiet=True, yes=True), runner=lambda *_: runner)
    assert executor.run() == 0
    journal = json.loads((executor.ctx.run.dir / "journal.json").read_text())
    phases = {p["name"]: p for p in journal["phases"]}
    assert phases["backup"]["outcome"] == "skipped"
    assert phases["teardown"]["outcome"] == "ok" and phases["teardown"]["details"]["nothing_installed"] == ["node1", "node2"]
