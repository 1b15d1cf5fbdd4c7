"""Where the lab follows real K3s and Flux closely enough that drtool's old shortcuts fail.

One 2-node lab for the module; each test runs `inv rebuild` (or a slice of it) the way an
operator would and checks what the operator sees: exit codes, messages, files, the cluster.
"""
from __future__ import annotations

import gzip
import json
import subprocess

import pytest
import yaml

from drtool.lab.scenarios import builtin_scenario_path

from .fulllab import GIT_TOKEN, FullLab, start_full_lab, stop_full_lab_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab2():
    full = start_full_lab("127.0.150", nodes=2)
    yield full
    stop_full_lab_dir(full.lab)


def _ssh(full: FullLab, node: str, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ssh", "-F", str(full.lab.ssh_config_path), "-o", "BatchMode=yes", node, command],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


def _inventory(full: FullLab, name: str, mutate) -> str:
    data = yaml.safe_load(full.inventory.read_text())
    mutate(data)
    path = full.inventory.with_name(name)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def test_airgap_images_keep_their_suffix_so_k3s_imports_them(lab2):
    # A gzip-compressed bundle, as the K3s release ships k3s-airgap-images-amd64.tar.gz.
    plain = lab2.lab.root / "artifacts" / "k3s-airgap-images.tar"
    bundle = lab2.lab.root / "artifacts" / "k3s-airgap-images-amd64.tar.gz"
    bundle.write_bytes(gzip.compress(plain.read_bytes()))
    inv = _inventory(lab2, "airgap-gz.yaml", lambda d: d["k3s"]["install"].update(images=str(bundle)))
    res = lab2.inv("rebuild", "-i", inv, "--yes", "--skip-backup", "--to", "join_agents")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    for node in ("node1", "node2"):
        listed = _ssh(lab2, node, "ls /var/lib/rancher/k3s/agent/images/ && sudo -n k3s crictl images")
        assert listed.returncode == 0, listed.stderr
        assert "k3s-airgap-images.tar.gz" in listed.stdout
        assert "docker.io/rancher/mirrored-coredns-coredns" in listed.stdout, (node, listed.stdout)


def test_airgap_images_with_an_unknown_suffix_are_refused_as_bad_input(lab2):
    odd = lab2.lab.root / "artifacts" / "images.bin"
    odd.write_bytes(b"x")
    inv = _inventory(lab2, "airgap-odd.yaml", lambda d: d["k3s"]["install"].update(images=str(odd)))
    res = lab2.inv("inventory.check", inv)
    assert res.returncode == 2
    assert "k3s.install.images" in res.stdout + res.stderr and "images.bin" in res.stdout + res.stderr


def test_git_token_from_another_variable_reaches_flux_as_github_token(lab2):
    # flux2 v2.4.0 bootstrap_github.go reads only GITHUB_TOKEN; the operator keeps it elsewhere.
    inv = _inventory(lab2, "token-env.yaml", lambda d: d["flux"].update(token_env="FLUX_GIT_TOKEN"))
    env = lab2.env(FLUX_GIT_TOKEN=GIT_TOKEN)
    env.pop("GITHUB_TOKEN")
    res = lab2.inv("rebuild", "-i", inv, "--yes", "--from", "bootstrap", "--to", "bootstrap", env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "could not read token" not in res.stdout + res.stderr
    assert GIT_TOKEN not in res.stdout + res.stderr


def test_github_rate_limit_is_retried_not_fatal(lab2, tmp_path):
    # The lab's flux reads its scenario from DRTOOL_LAB: one run that hits GitHub's rate limit.
    config = json.loads((lab2.lab.root / "lab.json").read_text())
    config.update(root=str(tmp_path), scenario=str(builtin_scenario_path("fault-rate-limit")))
    (tmp_path / "lab.json").write_text(json.dumps(config))
    res = lab2.inv("rebuild", "-i", str(lab2.inventory), "--yes", "--from", "bootstrap", "--to", "bootstrap",
                   env=lab2.env(DRTOOL_LAB=str(tmp_path)))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "after 2 attempts" in res.stdout
    log = (lab2.runs_list()[-1] / "bootstrap.log").read_text()
    assert "403 API rate limit exceeded" in log


def _api(full: FullLab):
    from kubernetes import client as kclient

    from drtool.kube.client import api_client_from_kubeconfig

    kubeconfig = next(r / "kubeconfig" for r in reversed(full.runs_list()) if (r / "kubeconfig").exists())
    return kclient.CoreV1Api(api_client_from_kubeconfig(str(kubeconfig)))


def test_backup_keeps_the_sealed_secrets_keys_and_restore_puts_them_back(lab2):
    # What the sealed-secrets controller writes at first start (bitnami-labs/sealed-secrets
    # pkg/controller/keys.go writeKey): a kubernetes.io/tls Secret labelled ...sealed-secrets-key=active.
    key_material = "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLWxhYnNlYWxlZGtleQ=="
    api = _api(lab2)
    try:
        api.create_namespaced_secret("kube-system", {
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "sealed-secrets-key7x2bq", "namespace": "kube-system",
                         "labels": {"sealedsecrets.bitnami.com/sealed-secrets-key": "active"}},
            "data": {"tls.crt": "Y2VydA==", "tls.key": key_material}})
    finally:
        api.api_client.close()
    res = lab2.inv("rebuild", "-i", str(lab2.inventory), "--yes", "--to", "restore_secrets", timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    run = lab2.runs_list()[-1]
    saved = run / "backup" / "flux-secrets" / "sealed-secrets-keys.json"
    assert oct(saved.stat().st_mode & 0o777) == "0o600"
    assert "flux-secrets/sealed-secrets-keys.json" in (run / "backup" / "manifest.json").read_text()
    assert "sealed-secrets keys (1)" in res.stdout and "1 sealed-secrets key(s)" in res.stdout
    assert key_material not in res.stdout + (run / "commands.log").read_text() + (run / "report.md").read_text()
    api = _api(lab2)       # the rebuilt cluster: a new datastore, the old key back in place
    try:
        back = api.read_namespaced_secret("sealed-secrets-key7x2bq", "kube-system")
    finally:
        api.api_client.close()
    assert back.data["tls.key"] == key_material and back.type == "kubernetes.io/tls"
    assert back.metadata.labels["sealedsecrets.bitnami.com/sealed-secrets-key"] == "active"


def test_preflight_refuses_to_let_bootstrap_rewrite_what_the_repository_declares(lab2):
    # A repository bootstrapped with image automation and a toleration (flux2 v2.4.0 flags
    # --components-extra, --toleration-keys): the next bootstrap regenerates gotk-components.yaml
    # from its own flags, and flux-system (prune: true) would delete what they leave out.
    from drtool.lab.flux.install_options import EXTRA_COMPONENTS, InstallOptions, components_yaml
    from drtool.lab.flux.manifests import COMPONENTS

    declared = components_yaml("v2.4.0", InstallOptions(components=COMPONENTS + EXTRA_COMPONENTS,
                                                        toleration_keys=("heavy",)))
    before = lab2.tree_digest("node2", "var/lib/rancher", "etc/rancher")
    with _Commit(lab2, "clusters/homelab/flux-system/gotk-components.yaml", declared):
        res = lab2.inv("rebuild", "-i", str(lab2.inventory), "--yes")
        out = res.stdout + res.stderr
        assert res.returncode == 3, out[-3000:]
        assert "flux.components_extra" in out and "image-automation-controller" in out, out[-3000:]
        assert "flux.toleration_keys" in out and "would prune" in out
        assert lab2.tree_digest("node2", "var/lib/rancher", "etc/rancher") == before     # nothing wiped
        journal = json.loads((lab2.runs_list()[-1] / "journal.json").read_text())
        assert journal["stopped_at"] == "preflight"

        def carry(d):
            d["flux"].update(components_extra=list(EXTRA_COMPONENTS), toleration_keys=["heavy"])
        ok = lab2.inv("preflight", "-i", _inventory(lab2, "carries-options.yaml", carry))
        assert ok.returncode == 0, ok.stdout[-3000:]
        assert "matches the inventory" in ok.stdout


@pytest.mark.parametrize("field,value,expect", [
    ("repository", "homelab-gitop", "cannot read repository https://github.com/lab/homelab-gitop.git"),
    ("owner", "labb", "cannot read repository https://github.com/labb/homelab-gitops.git"),
    ("branch", "mian", "branch mian does not exist"),
    ("path", "clusters/homelba", "path clusters/homelba does not exist on branch main"),
])
def test_preflight_checks_repository_branch_and_path_exist(lab2, field, value, expect):
    # A typo would make real bootstrap create a new repository or branch (bootstrap_provider.go).
    inv = _inventory(lab2, f"typo-{field}.yaml", lambda d: d["flux"].update({field: value}))
    res = lab2.inv("preflight", "-i", inv)
    out = res.stdout + res.stderr
    assert res.returncode == 3, out[-3000:]
    assert expect in " ".join(out.split()), out[-3000:]


SERVICE_MONITOR = """apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: loki
  namespace: logging
spec:
  selector: {matchLabels: {app: loki}}
  endpoints: [{port: http}]
"""


class _Commit:
    """A commit in the lab's GitOps repo (the remote flux clones), undone afterwards."""

    def __init__(self, full: FullLab, path: str, text: str, also: tuple[str, str] | None = None):
        from drtool.lab.gitops_repo import git

        self.git, self.full = git, full
        self.repo = full.lab.root / "gitops" / "homelab-gitops"
        self.files = [(path, text)] + ([also] if also else [])

    def __enter__(self):
        for path, text in self.files:
            target = self.repo / path
            self.old = {p: (self.repo / p).read_text() if (self.repo / p).exists() else None for p, _ in self.files}
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        self.git(self.repo, "add", "-A")
        self.git(self.repo, "commit", "--quiet", "-m", "test change")
        return self

    def __exit__(self, *exc):
        for path, old in self.old.items():
            if old is None:
                (self.repo / path).unlink()
            else:
                (self.repo / path).write_text(old)
        self.git(self.repo, "add", "-A")
        self.git(self.repo, "commit", "--quiet", "-m", "undo test change")


def test_bootstrap_says_why_flux_system_failed_and_does_not_retry_it(lab2):
    kustomization = (lab2.lab.root / "gitops" / "homelab-gitops" / "clusters/homelab/kustomization.yaml")
    assert not kustomization.exists()   # flux-system builds every file under the path
    with _Commit(lab2, "clusters/homelab/servicemonitor.yaml", SERVICE_MONITOR):
        # A fresh cluster: real bootstrap also fails at once on a flux-system left Ready=False before.
        res = lab2.inv("rebuild", "-i", str(lab2.inventory), "--yes", "--skip-backup", "--to", "bootstrap")
    out = res.stdout + res.stderr
    assert res.returncode == 1, out[-3000:]
    # kustomize-controller's Ready message, read from the cluster, is in the error.
    assert "Kustomization flux-system/flux-system Ready=False ReconciliationFailed" in out, out[-3000:]
    assert 'no matches for kind "ServiceMonitor"' in out
    run = lab2.runs_list()[-1]
    assert (run / "commands.log").read_text().count('"step": "bootstrap"') == 1     # permanent: not retried
    assert "error while waiting for Kustomization to be ready" in (run / "bootstrap.log").read_text()


def test_bootstrap_timeout_keeps_flux_output_and_outlasts_flux_timeout(lab2, tmp_path):
    # A flux that stops answering: prints its first lines, then hangs past its own --timeout.
    slow = tmp_path / "flux"
    slow.write_text("#!/bin/sh\necho '► connecting to github.com' >&2\necho '► cloning branch \"main\"' >&2\n"
                    "exec sleep 120\n")
    slow.chmod(0o755)

    def mutate(d):
        d["flux"].update(cli=str(slow), timeout="2s")
        d["timeouts"]["bootstrap"] = "1s"     # shorter than flux's --timeout: drtool must not cut flux short
    inv = _inventory(lab2, "slow-flux.yaml", mutate)
    res = lab2.inv("rebuild", "-i", inv, "--yes", "--from", "bootstrap", "--to", "bootstrap")
    out = res.stdout + res.stderr
    assert res.returncode == 1, out[-3000:]
    assert "flux bootstrap did not finish within 7s" in out, out[-3000:]
    run = lab2.runs_list()[-1]
    assert "► cloning branch" in (run / "bootstrap.log").read_text()
    assert "timeout after 7s" in (run / "commands.log").read_text()


def test_converge_stops_when_nothing_can_change_and_says_why(lab2):
    def mutate(d):
        d["converge"]["stuck_grace"] = "4s"
        d["timeouts"]["converge"] = "60s"
    inv = _inventory(lab2, "stuck.yaml", mutate)
    kust = (lab2.lab.root / "gitops" / "homelab-gitops" / "infrastructure/storage/kustomization.yaml").read_text()
    with _Commit(lab2, "infrastructure/storage/servicemonitor.yaml", SERVICE_MONITOR,
                 also=("infrastructure/storage/kustomization.yaml", kust + "  - servicemonitor.yaml\n")):
        # The pre-wipe GitOps check names this deadlock; accepted, the converge phase must see it too.
        res = lab2.inv("rebuild", "-i", inv, "--yes", "--skip-backup",
                       "--accept", "crd-ordering:infrastructure:ServiceMonitor/logging/loki", timeout=200)
    out = res.stdout + res.stderr
    assert res.returncode == 4, out[-3000:]
    assert "nothing changed for" in out and 'no matches for kind "ServiceMonitor"' in out, out[-3000:]
    assert "(blocks Kustomization/flux-system/workloads)" in out
    journal = json.loads((lab2.runs_list()[-1] / "journal.json").read_text())
    converge = next(p for p in journal["phases"] if p["name"] == "converge")
    assert converge["ended_at"] - converge["started_at"] < 40, converge
    report = json.loads((lab2.runs_list()[-1] / "report.json").read_text())
    assert report["converge"]["outcome"] == "stuck"
    missing = [o for o in report["objects"] if o["state"] == "NotFound"]
    assert {o["id"] for o in missing} >= {"HelmRelease/logging/loki"}
    assert report["converge"]["objects_ready"] < report["converge"]["objects_total"]
