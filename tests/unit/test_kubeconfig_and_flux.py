"""Kubeconfig rewrite/merge and the flux bootstrap command."""
from __future__ import annotations

from pathlib import Path

import yaml

from drtool.flux import bootstrap_argv, is_permanent, parse_version
import pytest

from drtool.inventory import load_inventory, parse_inventory
from drtool.kubeconfig import merge, rewrite

REPO = Path(__file__).resolve().parents[2]
K3S_YAML = """apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: TkVXQ0E=
    server: https://127.0.0.1:6443
  name: default
contexts:
- context: {cluster: default, user: default}
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user: {client-certificate-data: TkVXQ0VSVA==, client-key-data: TkVXS0VZ}
"""


def test_rewrite_points_at_endpoint_and_renames():
    cfg = rewrite(K3S_YAML, "https://192.168.1.10:6443", "homelab")
    assert cfg["clusters"][0] == {"name": "homelab", "cluster": {"certificate-authority-data": "TkVXQ0E=", "server": "https://192.168.1.10:6443"}}
    assert cfg["current-context"] == "homelab"
    assert cfg["contexts"][0]["context"] == {"cluster": "homelab", "user": "homelab"}


def test_merge_replaces_old_ca_and_credentials_keeps_others():
    old = {"apiVersion": "v1", "kind": "Config",
           "clusters": [{"name": "homelab", "cluster": {"certificate-authority-data": "T0xEQ0E=", "server": "https://x"}},
                        {"name": "work", "cluster": {"server": "https://work"}}],
           "users": [{"name": "homelab", "user": {"client-key-data": "T0xES0VZ"}}, {"name": "work", "user": {}}],
           "contexts": [{"name": "homelab", "context": {}}, {"name": "work", "context": {}}], "current-context": "work"}
    new = rewrite(K3S_YAML, "https://192.168.1.10:6443", "homelab")
    merged = merge(old, new)
    text = yaml.safe_dump(merged)
    assert "T0xEQ0E=" not in text and "T0xES0VZ" not in text
    assert [c["name"] for c in merged["clusters"]] == ["work", "homelab"]
    assert merged["current-context"] == "homelab"


def test_bootstrap_argv_github():
    inv = load_inventory(REPO / "inventory" / "homelab.yaml")
    argv = bootstrap_argv(inv, "flux", "/tmp/kc")
    assert argv[:3] == ["flux", "bootstrap", "github"]
    assert "--owner=my-github-user" in argv and "--repository=k8s-slm-log-agent" in argv and "--personal" in argv
    assert "--path=clusters/homelab" in argv and "--context=homelab" in argv
    assert not any("token" in a.lower() for a in argv)


def test_failure_classification_and_version():
    assert is_permanent("✗ GET https://api.github.com/repos/x/y: 401 Bad credentials")
    assert is_permanent("✗ GITHUB_TOKEN environment variable not set")
    assert not is_permanent("✗ context deadline exceeded")
    assert parse_version("flux: v2.4.0\n") == "v2.4.0"
    assert parse_version("flux: 2.3.1") == "v2.3.1"
    assert parse_version("nothing") is None


def test_no_token_is_permanent_and_githubs_rate_limit_403_is_transient():
    # flux2 v2.4.0 bootstrap_github.go: no GITHUB_TOKEN and no terminal -> "could not read token".
    assert is_permanent("✗ could not read token: could not read from stdin: EOF")
    # go-github RateLimitError / AbuseRateLimitError: a 403 that passes once the limit resets.
    assert not is_permanent('✗ failed to get Git repository "https://github.com/o/r": provider error: '
                            "GET https://api.github.com/repos/o/r: 403 API rate limit exceeded for user ID 1.")
    assert not is_permanent("✗ 403 You have exceeded a secondary rate limit. Please wait a few minutes")
    assert is_permanent("✗ GET https://api.github.com/repos/o/r: 403 Resource not accessible by integration")


def test_token_reaches_flux_under_the_name_the_provider_reads():
    from drtool.flux import bootstrap_env

    base = yaml.safe_load((REPO / "inventory" / "lab.yaml").read_text())
    for provider, extra, flux_name in (("github", {"owner": "o", "repository": "r"}, "GITHUB_TOKEN"),
                                       ("gitlab", {"owner": "o", "repository": "r"}, "GITLAB_TOKEN"),
                                       ("git", {"url": "https://git.example/r.git"}, "GIT_PASSWORD")):
        data = dict(base, flux={**{k: v for k, v in base["flux"].items() if k not in ("owner", "repository", "personal")},
                                "provider": provider, "token_env": "MY_GIT_TOKEN", **extra})
        inv = parse_inventory(data, "inv.yaml")
        env = bootstrap_env(inv, {"MY_GIT_TOKEN": "t0k", "PATH": "/bin"})
        assert env[flux_name] == "t0k" and env["PATH"] == "/bin", provider
    with pytest.raises(KeyError, match="MY_GIT_TOKEN"):
        bootstrap_env(inv, {})


def test_flux_and_git_get_no_secret_variable_they_do_not_need():
    from drtool.flux import bootstrap_env
    from drtool.gitrepo import git_env

    data = yaml.safe_load((REPO / "inventory" / "lab.yaml").read_text())
    data["k3s"]["token"] = {"token_env": "K3S_TOKEN"}
    data["drill"]["notify"] = [{"name": "chat", "type": "slack", "url_env": "SLACK_URL"}]
    inv = parse_inventory(data, REPO / "inventory" / "lab.yaml")
    assert inv.secret_variables == {"GITHUB_TOKEN", "K3S_TOKEN", "SLACK_URL"}
    environ = {"GITHUB_TOKEN": "ghp_x", "K3S_TOKEN": "K10y", "SLACK_URL": "https://hooks/z", "PATH": "/bin"}
    # flux bootstrap github reads GITHUB_TOKEN; the K3s token and a webhook URL are not its business.
    assert bootstrap_env(inv, environ) == {"GITHUB_TOKEN": "ghp_x", "PATH": "/bin"}
    # git gets the token in an HTTP header (GIT_CONFIG_*), not as a variable it never reads.
    env = git_env(inv, environ)
    assert not {"GITHUB_TOKEN", "K3S_TOKEN", "SLACK_URL"} & set(env) and env["PATH"] == "/bin"
    assert env["GIT_CONFIG_KEY_0"] == "http.https://github.com/.extraHeader"
    assert env["GIT_CONFIG_VALUE_0"].startswith("Authorization: Basic ")
