"""``flux bootstrap github|gitlab|git`` against the lab: the steps and output of the real CLI.

1. read the token from GITHUB_TOKEN / GITLAB_TOKEN only (else prompt, and fail at EOF with
   "could not read token"), authenticate to the Git provider (the scenario's bad tokens get a
   401, its ``rate_limited_times`` GitHub's rate-limit 403, its ``bootstrap_fail_times`` a
   transient 502);
2. clone the repo (a local one, found through lab.json's URL map), commit
   ``<path>/flux-system/{gotk-components,gotk-sync,kustomization}.yaml`` when they are
   missing or stale, and push;
3. install the components (Namespace, CRDs, controller Deployments) and wait for them;
4. create the source Secret (deploy key, or token credentials with ``--token-auth``);
5. apply the sync objects and wait until GitRepository and Kustomization ``flux-system``
   are Ready, bounded by ``--timeout``.

Every run is idempotent. Secrets (tokens, private keys) are never printed.
"""
from __future__ import annotations

import base64
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from drtool.lab.gitops_repo import GitError, git, resolve_repo

from . import install_options, manifests
from .install_options import InstallOptions
from .kube import Kube, KubeError
from .labenv import LabEnv
from .output import say

POLL = 0.1
GITHUB_KNOWN_HOSTS = ("github.com ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEe"
                      "zOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg=")


class BootstrapError(Exception):
    """Bootstrap failed; ``str()`` is the line printed after ``✗``."""


@dataclass(frozen=True)
class BootstrapSpec:
    """The parsed command line of one bootstrap."""

    provider: str                    # github | gitlab | git
    repo_url: str                    # as the provider names it (https://github.com/O/R)
    sync_url: str                    # what the GitRepository fetches
    host: str
    branch: str
    path: str
    token_env: str | None
    token: str | None
    token_auth: bool
    private_key_file: str | None
    password: str | None
    username: str
    silent: bool
    components_extra: tuple[str, ...]
    version: str
    namespace: str
    timeout: float
    kubeconfig: str | None
    context: str | None
    install: InstallOptions = InstallOptions()
    """The flags gotk-components.yaml is generated from (components include the extras)."""


class Bootstrap:
    def __init__(self, spec: BootstrapSpec, lab: LabEnv, stdin: Callable[[], str] = lambda: sys.stdin.readline()):
        self.spec, self.lab, self.stdin = spec, lab, stdin
        self.deadline = time.monotonic() + spec.timeout

    # ------------------------------------------------------------------ provider

    def read_token(self) -> None:
        """flux2 v2.4.0 cmd/flux/bootstrap_github.go / bootstrap_gitlab.go: the token comes only from
        GITHUB_TOKEN / GITLAB_TOKEN; otherwise flux prompts on stdout and reads one line of stdin
        (cmd/flux/main.go readPasswordFromStdin), failing with "could not read token" at EOF.
        bootstrap_git.go does the same for --token-auth without --password or GIT_PASSWORD."""
        s = self.spec
        needs = s.provider in ("github", "gitlab") or (s.token_auth and s.password is None)
        if not needs or (s.token if s.provider != "git" else s.password):
            return
        prompt = {"github": "Please enter your GitHub personal access token (PAT): ",
                  "gitlab": "Please enter your GitLab personal access token (PAT): "}.get(
                      s.provider, "Please enter your Git repository password: ")
        print(prompt, end="", flush=True)
        line = self.stdin()
        if not line:
            raise BootstrapError("could not read token: could not read from stdin: EOF")
        value = line.rstrip("\r\n")
        self.spec = replace(s, **({"password": value} if s.provider == "git" else {"token": value}))

    def authenticate(self) -> None:
        s = self.spec
        if s.provider in ("github", "gitlab"):
            if self.lab.flux.rate_limited_times and self.lab.bump("rate_limited_attempts") < self.lab.flux.rate_limited_times:
                # go-github's RateLimitError text, as flux prints it (the limit resets: retrying helps).
                api = f"https://api.github.com/repos/{s.repo_url.split('/', 3)[-1]}"
                raise BootstrapError(f"failed to get Git repository \"{s.repo_url}\": provider error: "
                                     f"GET {api}: 403 API rate limit exceeded for user ID 1. [rate reset in 4m12s]")
            if s.token in self.lab.flux.bad_tokens:
                api = "https://api.github.com/user" if s.provider == "github" else "https://gitlab.com/api/v4/user"
                raise BootstrapError(f"failed to get Git repository \"{s.repo_url}\": provider error: "
                                     f"GET {api}: 401 Bad credentials []")
        elif s.private_key_file:
            try:
                Path(s.private_key_file).read_bytes()
            except OSError as exc:
                raise BootstrapError(f"failed to open private key file: {exc.strerror}: {s.private_key_file}") from None
        elif s.password is None and s.sync_url.startswith("ssh://"):
            raise BootstrapError("for SSH URLs --private-key-file is required unless a deploy key is generated; "
                                 "use --silent to accept the generated key")
        if self.lab.flux.bootstrap_fail_times and self.lab.bump("bootstrap_attempts") < self.lab.flux.bootstrap_fail_times:
            raise BootstrapError(f"failed to clone repository: unexpected client error: unexpected requirement: "
                                 f"502 Bad Gateway ({s.repo_url})")

    def repo_path(self) -> Path:
        repo = resolve_repo(self.lab.url_map, self.spec.repo_url)
        if repo is None or not repo.exists():
            raise BootstrapError(f"failed to clone repository: repository not found: {self.spec.repo_url}")
        return repo

    # ------------------------------------------------------------------ git

    def sync_repo(self, repo: Path) -> None:
        s = self.spec
        say("►", f"cloning branch \"{s.branch}\" from Git repository \"{s.repo_url}.git\"")
        work = Path(tempfile.mkdtemp(prefix="flux-bootstrap-"))
        try:
            try:
                git(work, "clone", "--quiet", "--branch", s.branch, "--single-branch", str(repo), "repo")
            except GitError as exc:
                raise BootstrapError(f"failed to clone repository: {exc}") from None
            checkout = work / "repo"
            say("✔", "cloned repository")
            base = checkout / s.path.strip("/").removeprefix("./") / s.namespace
            say("►", "generating component manifests")
            # Regenerated from the flags alone, whatever the repository had (flux2 v2.4.0
            # pkg/bootstrap/bootstrap_plain_git.go ReconcileComponents → install.Generate).
            components = install_options.components_yaml(s.version, s.install)
            say("✔", "generated component manifests")
            self._commit(checkout, {base / "gotk-components.yaml": components}, "component manifests",
                         f"Add Flux {s.version} component manifests")
            say("►", "generating sync manifests")
            files = {base / "gotk-sync.yaml": manifests.sync_yaml(s.sync_url, s.branch, s.path, s.namespace)}
            # pkg/manifestgen/kustomization Generate writes kustomization.yaml only when there is
            # none: an existing one (and the patches in it) is kept.
            if not (base / "kustomization.yaml").exists():
                files[base / "kustomization.yaml"] = ("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                                                      "resources:\n- gotk-components.yaml\n- gotk-sync.yaml\n")
            say("✔", "generated sync manifests")
            self._commit(checkout, files, "sync manifests", "Add Flux sync manifests")
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _commit(self, checkout: Path, files: dict[Path, str], what: str, message: str) -> None:
        s = self.spec
        if all(p.is_file() and p.read_text() == text for p, text in files.items()):
            say("✔", f"{what} are up to date")
            return
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        try:
            git(checkout, "add", "-A")
            git(checkout, "commit", "--quiet", "-m", message)
            sha = git(checkout, "rev-parse", "HEAD").strip()
            say("✔", f"committed {what} to \"{s.branch}\" (\"{sha}\")")
            say("►", f"pushing {what} to \"{s.repo_url}.git\"")
            git(checkout, "push", "--quiet", "origin", f"HEAD:refs/heads/{s.branch}")
        except GitError as exc:
            raise BootstrapError(f"failed to push {what}: {exc}") from None

    # ------------------------------------------------------------------ cluster

    def install(self, kube: Kube) -> None:
        s = self.spec
        say("►", f"installing components in \"{s.namespace}\" namespace")
        for obj in install_options.component_objects(s.version, s.install):
            kube.apply(obj)
        say("✔", "installed components")
        for name in s.install.components:
            self._wait(f"Deployment \"{s.namespace}/{name}\"", lambda n=name: _deployment_ready(kube.get_deployment(s.namespace, n)))
        say("✔", "reconciled components")

    def source_secret(self, kube: Kube) -> None:
        s = self.spec
        say("►", f"determining if source secret \"{s.namespace}/{s.namespace}\" exists")
        existing = kube.get_secret(s.namespace, s.namespace)
        data = self._secret_data()
        if existing is not None and set((existing.get("data") or {})) == set(data):
            say("✔", "source secret up to date")
            return
        say("►", "generating source secret")
        if "identity.pub" in data:
            public = base64.b64decode(data["identity.pub"]).decode().strip()
            say("✔", f"public key: {public[:44]}...")
            if s.provider != "git":
                say("✔", f"configured deploy key \"{s.namespace}-{s.branch}-{s.namespace}-./{s.path}\" "
                          f"for \"{s.repo_url}\"")
            elif not s.silent:
                print("Please give the key access to your repository: y/N ", end="", file=sys.stderr, flush=True)
                if self.stdin().strip().lower() not in ("y", "yes"):
                    raise BootstrapError("aborting")
        say("►", f"applying source secret \"{s.namespace}/{s.namespace}\"")
        kube.apply({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": {"name": s.namespace, "namespace": s.namespace}, "data": data})
        say("✔", "reconciled source secret")

    def _secret_data(self) -> dict[str, str]:
        s = self.spec
        b64 = lambda text: base64.b64encode(text.encode()).decode()  # noqa: E731
        if s.token_auth and s.token:
            return {"username": b64(s.username), "password": b64(s.token)}
        if s.password is not None:
            return {"username": b64(s.username), "password": b64(s.password)}
        if s.private_key_file:
            private = Path(s.private_key_file).read_text()
            public_file = Path(s.private_key_file + ".pub")
            public = public_file.read_text() if public_file.is_file() else "ssh-ed25519 AAAA(lab) flux"
        else:
            private, public = _new_deploy_key()
        return {"identity": b64(private), "identity.pub": b64(public), "known_hosts": b64(GITHUB_KNOWN_HOSTS)}

    def sync(self, kube: Kube) -> None:
        s = self.spec
        say("►", "applying sync manifests")
        objects = manifests.sync_objects(s.sync_url, s.branch, s.path, s.namespace)
        for obj in objects:
            obj["metadata"]["namespace"] = s.namespace
            obj["metadata"]["name"] = s.namespace
        for obj in objects:
            kube.apply(obj)
        say("✔", "reconciled sync configuration")
        for obj in objects:
            group, _, version = obj["apiVersion"].rpartition("/")
            kind = obj["kind"]
            say("◎", f"waiting for {kind} \"{s.namespace}/{s.namespace}\" to be reconciled")
            self._wait_reconciled(kind, lambda g=group, v=version, k=kind: kube.get_custom(g, v, k, s.namespace, s.namespace))
            say("✔", f"{kind} reconciled successfully")

    def confirm(self, kube: Kube) -> None:
        s = self.spec
        say("►", "confirming components are healthy")
        # flux2 v2.4.0 ReportComponentsHealth: a status checker polls until every controller is
        # Current or --timeout runs out (a patch in kustomization.yaml rolls a Deployment again).
        for name in sorted(s.install.components):
            self._wait(f"{name}: deployment", lambda n=name: _deployment_ready(kube.get_deployment(s.namespace, n)))
            say("✔", f"{name}: deployment ready")
        say("✔", "all components are healthy")

    def _wait_reconciled(self, kind: str, get: Callable[[], dict[str, Any] | None]) -> None:
        """flux2 v2.4.0 pkg/bootstrap/bootstrap.go objectReconciled + bootstrap_plain_git.go
        ReportGitRepoHealth/ReportKustomizationHealth: Ready=True ends the wait; Ready=False ends it
        at once with the condition's message; past --timeout the Ready message is the reason.
        (The lab wants Ready=False on two polls in a row, POLL apart, so a controller that has not
        yet seen the source it was just given does not fail the run on a race the real one also has.)"""
        ns = self.spec.namespace
        failing = ""
        last: dict[str, Any] | None = None
        while True:
            try:
                last = get()
            except KubeError:     # a blip of the API is retried until the deadline
                last = None
            ready, message, status = _flux_condition(last)
            if ready:
                return
            if status == "False":
                if failing == message:
                    say("✗", message)
                    raise BootstrapError(f"error while waiting for {kind} to be ready: '{message}'")
                failing = message
            else:
                failing = ""
            if time.monotonic() >= self.deadline:
                err = "context deadline exceeded"
                if status and status != "True":
                    err = f"{kind.lower()} '{ns}/{ns}' not ready: '{message}'"
                say("✗", err)
                raise BootstrapError(f"error while waiting for {kind} to be ready: '{err}'")
            time.sleep(POLL)

    def _wait(self, what: str, check: Callable[[], tuple[bool, str]]) -> None:
        """Poll ``check`` until it passes or ``--timeout`` runs out."""
        last = ""
        while True:
            try:
                ok, last = check()
            except KubeError as exc:     # a blip of the API is retried until the deadline
                ok, last = False, str(exc)
            if ok:
                return
            if time.monotonic() >= self.deadline:
                raise BootstrapError(f"timeout waiting for {what} to be ready: {last or 'context deadline exceeded'}")
            time.sleep(POLL)

    def run(self) -> None:
        s = self.spec
        self.read_token()
        say("►", f"connecting to {s.host}")
        self.authenticate()
        repo = self.repo_path()
        self.sync_repo(repo)
        kube = Kube(s.kubeconfig, s.context)
        try:
            self.install(kube)
            self.source_secret(kube)
            self.sync(kube)
            self.confirm(kube)
        finally:
            kube.close()


def _deployment_ready(dep: dict[str, Any] | None) -> tuple[bool, str]:
    if dep is None:
        return False, "not found"
    want = int((dep.get("spec") or {}).get("replicas", 1))
    status = dep.get("status") or {}
    have = int(status.get("availableReplicas") or 0)
    gen_ok = int(status.get("observedGeneration") or 0) >= int(dep["metadata"].get("generation") or 1)
    return gen_ok and have >= want, f"{have}/{want} replicas available"


def _flux_condition(obj: dict[str, Any] | None) -> tuple[bool, str, str]:
    """(reconciled, Ready message, Ready status) as objectReconciled sees them: a stale
    observedGeneration means "keep waiting" whatever the condition says."""
    if obj is None:
        return False, "not found", ""
    status = obj.get("status") or {}
    if "observedGeneration" in status and int(status["observedGeneration"]) != int(obj["metadata"].get("generation") or 1):
        return False, "", ""
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True", cond.get("message", ""), cond.get("status", "")
    return False, "", ""


def _new_deploy_key() -> tuple[str, str]:
    """A fresh ECDSA P-384 key pair in OpenSSH format, as ``flux bootstrap`` generates."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP384R1())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return private, public


__all__ = ["Bootstrap", "BootstrapSpec", "BootstrapError"]
