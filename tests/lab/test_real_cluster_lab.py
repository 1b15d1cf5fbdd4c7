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
