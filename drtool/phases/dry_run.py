"""Dry runs from the phases' own code: a phase runs against a recording runner and a recording
Kubernetes API client, and the commands and requests it sent are its plan
(``drtool.remote.recording``, ``drtool.kube.recording``).

A dry run has no cluster, so both answer from a script standing for "the old cluster runs and
answers, and the new one is ready at once" (``dry_replies``, ``dry_api_replies``): preflight finds
every node as it wants it, the pinned flux CLI and the repository's branch and path; the backup
finds K3s installed with its datastore; the install's wait finds a fresh ``k3s.yaml`` and
``/readyz`` says ``ok``; every inventory node is Ready with its labels and taints, and the
Kustomizations and HelmReleases the inventory expects are Ready (at the expected chart
versions); the drill's HTTP checks answer the status they expect. A phase's waits therefore end
at their first look, and what it would send afterwards shows too. What a phase reads on this
machine without sending anything (the secret files, the checkout the GitOps check builds) is
read for real: a file that is not there stops that phase's dry run as it would stop the run.

The run directory is a throwaway temp dir (a dry run leaves nothing under ``runs/``), the
K3s token is generated there when the inventory names no source, and secret variables
the inventory names but this shell does not set get a placeholder: a dry run shows what
would be sent, and tokens only ever go on stdin or in the environment, never in a command.
API requests are shown as what they do (``create Secret flux-system/sops-age``), bodies by
kind and name only, so Secret values never reach a plan; a local command's variables that hold
a secret (flux's token) are shown by name.
"""
from __future__ import annotations

import base64
import os
import re
import tempfile
import time
from dataclasses import replace
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence
from urllib.parse import urlsplit

import yaml

from drtool.errors import DrtoolError
from drtool.inventory import Inventory
from drtool.phases.context import Context, Options, RunProgress
from drtool.phases.result import Phase
from drtool.remote import k3s
from drtool.remote.recording import Recorded, RecordingRunner, Reply
from drtool.run import Run

if TYPE_CHECKING:  # imported when first used: the kubernetes client costs start-up time
    from drtool.kube.recording import ApiCall, ApiReply, RecordingApiClient

PLACEHOLDER = "dry-run-placeholder"
_B64 = base64.b64encode(PLACEHOLDER.encode()).decode()

# k3s-io/k3s pkg/clientaccess/kubeconfig.go (WriteClientKubeConfig): cluster, user and context all
# named "default", the server at https://127.0.0.1:6443, CA and client certificate inline. Here the
# credentials are placeholders: a dry run never connects.
PLACEHOLDER_K3S_YAML = yaml.safe_dump({
    "apiVersion": "v1", "kind": "Config", "preferences": {},
    "clusters": [{"name": "default", "cluster": {"certificate-authority-data": _B64,
                                                 "server": "https://127.0.0.1:6443"}}],
    "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}],
    "current-context": "default",
    "users": [{"name": "default", "user": {"client-certificate-data": _B64, "client-key-data": _B64}}],
}, sort_keys=False)


def _facts(inv: Inventory, node) -> str:
    """What ``drtool.remote.facts.facts_command`` prints on a node preflight has nothing against:
    Linux on a supported arch, room on the disk, the clock as here now, the protected paths there,
    K3s installed with the unit its role runs."""
    lines = ["os=Linux", "arch=x86_64", "distro=dry run", f"clock={time.time():.3f}", f"diskpath={inv.k3s.data_dir}",
             "disk=104857600", f"unit={'k3s' if node.role == 'server' else 'k3s-agent'}", "k3sbin=yes"]
    lines += [f"protected=yes:{p}" for p in node.protected_paths]
    return "\n".join(lines) + "\n"


def dry_replies(inv: Inventory) -> list[Reply]:
    """What the nodes and this machine answer in a dry run: preflight finds every node as it
    wants it, the flux CLI is the pinned version and the GitOps repository has its branch and
    path; the old cluster runs K3s (the backup finds its units and a datastore: embedded etcd
    when there are several servers, SQLite otherwise); ``k3s.yaml`` is there at once; the drill's
    HTTP checks answer the status they expect. Every other command succeeds with empty output."""
    srv = k3s.server_dir(inv)
    replies = [Reply(r'echo "os=\$\(uname -s\)"', node=n.name, stdout=_facts(inv, n)) for n in inv.nodes]
    replies += [Reply(re.escape(k3s.installed_units_command()), node=n.name,
                      stdout="k3s\n" if n.role == "server" else "k3s-agent\n") for n in inv.nodes]
    etcd = len(inv.servers) > 1
    replies += [
        Reply(r"test -d \S*/db/etcd", exit_code=0 if etcd else 1),
        Reply(r"k3s etcd-snapshot save", stdout=f"{srv}/db/snapshots/{PLACEHOLDER}\n"),
        Reply(r"drtool-datastore: none", stdout="drtool-datastore: sqlite3-backup\n"),
        Reply(rf"cat {k3s.KUBECONFIG}", stdout=PLACEHOLDER_K3S_YAML),
        # The agent join token a runbook's join-agent reads, base64 on the wire.
        Reply(r"base64 \S*/node-token", stdout=_B64 + "\n"),
        # fluxcd/flux2 cmd/flux/version.go: `flux version --client` prints `flux: <version>`.
        Reply(r" version --client$", node="local", stdout=f"flux: {inv.flux.version}\n"),
        # git ls-remote prints `<sha>\t<ref>` per head (git-ls-remote(1)); ls-tree names what is
        # under the path; `git show` of a flux-system file not there yet (bootstrap writes it)
        # exits 128, git's die() (usage.c). Checked against real git in
        # tests/unit/test_recorded_phases.py::test_the_dry_runs_git_answers_have_the_shape_of_real_gits.
        Reply(r"^git ls-remote ", node="local", stdout=f"{'0' * 40}\trefs/heads/{inv.flux.branch}\n"),
        Reply(r"^git ls-tree ", node="local", stdout=f"{inv.flux.path.removeprefix('./').strip('/')}/flux-system\n"),
        Reply(r"^git show ", node="local", exit_code=128),
    ]
    replies += [Reply(rf"^GET {re.escape(c.url)}$", node="local", stdout=str(c.status)) for c in inv.drill.http_checks]
    return replies


def _ready(kind: str, api_version: str, namespace: str, name: str, **status) -> dict:
    return {"apiVersion": api_version, "kind": kind,
            "metadata": {"name": name, "namespace": namespace, "generation": 1, "resourceVersion": "1"},
            "status": {"observedGeneration": 1, **status,
                       "conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded"}]}}


def _listed(items: list[dict]) -> dict:
    return {"kind": "List", "metadata": {"resourceVersion": "1"}, "items": items}


def _node(node) -> dict:
    taints = []
    for taint in node.taints:  # key=value:Effect or key:Effect (inventory.Node._taints)
        head, _, effect = taint.rpartition(":")
        key, _, value = head.partition("=")
        taints.append({"key": key, "effect": effect, **({"value": value} if value else {})})
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node.name, "labels": dict(node.labels), "resourceVersion": "1"},
            "spec": {"taints": taints} if taints else {},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}}


def dry_api_replies(inv: Inventory, kustomizations: Sequence[str] = (),
                    helmreleases: Sequence[tuple[str, str, str | None]] = ()) -> list[ApiReply]:
    """What the API answers in a dry run: ready at once, every inventory node Ready with its labels
    and taints, the expected Kustomizations and HelmReleases Ready (the inventory's, and
    ``kustomizations`` ``namespace/name`` and ``helmreleases`` (namespace, name, version) more),
    nothing else pending."""
    from drtool.kube.recording import ApiReply
    from drtool.kube.watcher import DEFAULT_KINDS, FLUX_HELM, FLUX_KUSTOMIZE

    refs = dict.fromkeys([*inv.expectations.kustomizations, *kustomizations])
    ks = [_ready("Kustomization", f"{FLUX_KUSTOMIZE}/v1", *ref.partition("/")[::2]) for ref in refs]
    wanted = {(h.namespace, h.name): h.version for h in inv.expectations.helmreleases}
    for ns, name, version in helmreleases:
        wanted[(ns, name)] = version or wanted.get((ns, name))
    # helm-controller v2 keeps the released chart version in status.history, newest first.
    releases = [_ready("HelmRelease", f"{FLUX_HELM}/v2", ns, name,
                       history=[{"chartName": name, "chartVersion": version, "status": "deployed"}])
                for (ns, name), version in wanted.items()]
    # kube-apiserver's /readyz answers "ok" when every check passes (kubernetes
    # staging/src/k8s.io/apiserver/pkg/server/healthz/healthz.go, handleRootHealth).
    replies = [ApiReply(r"^GET /readyz", body="ok"),
               # A watch the server ends after a while with nothing to report; the watcher reconnects.
               ApiReply(r"[?&]watch=true", body="", delay=0.02),
               ApiReply(r"^GET /api/v1/nodes(\?|$)", body=_listed([_node(n) for n in inv.nodes])),
               ApiReply(rf"^GET /apis/{FLUX_KUSTOMIZE}/[^/]+/kustomizations(\?|$)", body=_listed(ks)),
               ApiReply(rf"^GET /apis/{FLUX_HELM}/[^/]+/helmreleases(\?|$)", body=_listed(releases))]
    # API group discovery (meta/v1 APIGroup): the version drtool prefers is served.
    for group, version in {(s.group, s.versions[0]) for s in DEFAULT_KINDS if s.group}:
        replies.append(ApiReply(rf"^GET /apis/{group}$", body={
            "kind": "APIGroup", "apiVersion": "v1", "name": group,
            "versions": [{"groupVersion": f"{group}/{version}", "version": version}],
            "preferredVersion": {"groupVersion": f"{group}/{version}", "version": version}}))
    replies.append(ApiReply(r"^GET /api", body=_listed([])))  # every other list is empty
    return replies


def _server_of(kubeconfig: Path, fallback: str) -> str:
    """The server URL of a kubeconfig's current context."""
    try:
        cfg = yaml.safe_load(kubeconfig.read_text()) or {}
        context = next(c["context"] for c in cfg["contexts"] if c["name"] == cfg["current-context"])
        return next(c["cluster"]["server"] for c in cfg["clusters"] if c["name"] == context["cluster"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, StopIteration):
        return fallback


def dry_context(inv: Inventory, options: Options = Options(), *, kustomizations: Sequence[str] = (),
                helmreleases: Sequence[tuple[str, str, str | None]] = ()) -> Context:
    """A Context with a recording runner, a recording API client and a throwaway run directory;
    ``kustomizations`` and ``helmreleases`` are Ready besides the inventory's expectations."""
    tmp = tempfile.TemporaryDirectory(prefix="drtool-dry-run-")
    run = Run.placeholder(Path(tmp.name))
    run.tmp = tmp  # type: ignore[attr-defined]  # removed with the context's run
    environ = dict(os.environ)
    token = inv.k3s.token
    for var in (token.token_env if token is not None else None, inv.flux.token_variable):
        if var and not environ.get(var):
            environ[var] = PLACEHOLDER
    runner = RecordingRunner(inv, dry_replies(inv), sequential=True)

    def api_factory(kubeconfig: Path) -> RecordingApiClient:
        from drtool.kube.recording import RecordingApiClient

        server = _server_of(kubeconfig, inv.cluster.api_endpoint)
        target = f"api {urlsplit(server).netloc or server}"

        def note(call: ApiCall) -> None:
            runner.recorded.append(Recorded(target, call.summary(), api="read" if call.read_only else "write"))

        return RecordingApiClient(dry_api_replies(inv, kustomizations, helmreleases), host=server, on_call=note)

    return Context(inv, runner, run, replace(options, dry_run=True), RunProgress(quiet=True),
                   environ=environ, api_factory=api_factory)


def _reads(entries: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """API reads shown once each, sorted, a list and the watch that follows it on one line."""
    folded = set(entries)
    for target, what in entries:
        if what.startswith("watch ") and (target, "list " + what[6:]) in entries:
            folded -= {(target, what), (target, "list " + what[6:])}
            folded.add((target, "list, then watch " + what[6:]))
    return sorted(folded)


def _shown(recorded: list[Recorded]) -> list[tuple[str, str]]:
    """(target, what) in the order sent. API reads that follow one another (a wait's polls,
    converge's lists and watches from its watcher threads) are folded and sorted: their order
    carries no meaning and, across threads, is not repeatable."""
    lines: list[tuple[str, str]] = []
    for is_read, group in groupby(recorded, key=lambda r: r.api == "read"):
        entries = [(r.node, r.describe()) for r in group]
        lines += _reads(set(entries)) if is_read else entries
    return lines


def plan_call(ctx: Context, name: str, fn: Callable[[], object]) -> list[tuple[str, str]]:
    """(target, what) for each command and API request ``fn`` sends when run against the dry
    context; a ``DrtoolError`` it raises (what would stop the real run) ends the list with a
    line saying why, and when it sends nothing, a line says what it made of that (its result's
    message: a phase skipped, an action with nothing to do)."""
    runner = ctx.runner
    if not isinstance(runner, RecordingRunner):
        raise TypeError("plan_call needs a dry_context()")
    mark = len(runner.recorded)
    ctx.phase_name = name
    stopped: list[tuple[str, str]] = []
    try:
        result = fn()
    except DrtoolError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        stopped.append(("local", f"(the dry run of {name} stops here: {first})"))
    else:
        if len(runner.recorded) == mark:   # sends nothing: say why (a phase's result, an action's message)
            said = getattr(result, "message", result)
            stopped.append(("local", f"(nothing to send: {said})" if isinstance(said, str) and said else "(nothing to send)"))
    return _shown(runner.recorded[mark:]) + stopped


def plan_phase(phase: Phase, ctx: Context) -> list[tuple[str, str]]:
    """(target, what) for each command and API request the phase sends: what it recorded when
    run against the dry context."""
    return plan_call(ctx, phase.NAME, lambda: phase.run(ctx))
