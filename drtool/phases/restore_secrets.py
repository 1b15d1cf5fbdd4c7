"""Restore secrets: create flux-system and the inventory's out-of-Git Secrets before bootstrap.

Kustomizations that decrypt with SOPS fail with ``Secret "sops-age" not found``
until this exists, and the key is never in Git: it comes from the operator's file.
Existing Secrets are replaced, so a re-run converges on the file's content.
"""
from __future__ import annotations

import base64
from pathlib import Path
from typing import TYPE_CHECKING

from drtool.errors import BadInput, PermanentError
from drtool.phases.backup import SEALED_SECRETS_FILE
from drtool.phases.context import Context
from drtool.phases.result import PhaseResult, noop, ok
from drtool.secret import Secret

if TYPE_CHECKING:
    from drtool.kube.client import KubePermanent, KubeTransport

NAME = "restore_secrets"


def secret_manifest(name: str, namespace: str, key: str, value: bytes) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "drtool"}},
            "data": {key: base64.b64encode(value).decode()}}


def _retrying():
    """Bounded retries (tenacity) for one API call: connection trouble, 429 and 5xx right after
    install (``KubeRetryable``) are worth retrying; 4xx are not."""
    from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, stop_after_delay, wait_exponential

    from drtool.kube.client import KubeRetryable

    return Retrying(stop=stop_after_attempt(8) | stop_after_delay(60), wait=wait_exponential(0.2, max=5),
                    retry=retry_if_exception_type(KubeRetryable), reraise=True)


def create_namespace(api: KubeTransport, namespace: str) -> None:
    """Create a namespace unless it exists (409 AlreadyExists)."""
    from drtool.kube.client import KubePermanent

    try:
        for attempt in _retrying():
            with attempt:
                api.post_json("/api/v1/namespaces",
                              {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    except KubePermanent as exc:
        if exc.status != 409:
            raise PermanentError(f"creating namespace {namespace}: {_http(exc)}") from None


def put_secret(api: KubeTransport, namespace: str, name: str, body: dict) -> None:
    """Create a Secret, or replace it when it exists (409); bounded retries on transient errors."""
    from drtool.kube.client import KubePermanent

    collection = f"/api/v1/namespaces/{namespace}/secrets"
    try:
        try:
            for attempt in _retrying():
                with attempt:
                    api.post_json(collection, body)
        except KubePermanent as exc:
            if exc.status != 409:
                raise
            for attempt in _retrying():
                with attempt:
                    api.put_json(f"{collection}/{name}", body)
    except KubePermanent as exc:
        raise PermanentError(f"creating Secret {namespace}/{name}: {_http(exc)}") from None


def _http(exc: KubePermanent) -> str:
    """``HTTP 403: secrets is forbidden: ...`` from the transport's ``VERB /path: HTTP ...`` message."""
    text = str(exc)
    return text[text.index("HTTP "):] if "HTTP " in text else text


def restore_sealed_secrets_keys(api: KubeTransport, saved: Path) -> int:
    """Put back the sealed-secrets controller keys a backup saved in ``saved`` (a List), before Flux
    installs the controller: at start it adopts every Secret labelled sealedsecrets.bitnami.com/sealed-secrets-key=active
    in its namespace (bitnami-labs/sealed-secrets pkg/controller/main.go initKeyRegistry) instead of
    generating a new key that cannot decrypt the SealedSecrets in Git."""
    import json

    if not saved.is_file():
        return 0
    items = json.loads(saved.read_text()).get("items") or []
    for obj in items:
        meta = obj.get("metadata") or {}
        name, namespace = meta.get("name", ""), meta.get("namespace", "kube-system")
        for value in (obj.get("data") or {}).values():
            Secret(value, "sealed-secrets-key")
        create_namespace(api, namespace)
        put_secret(api, namespace, name, obj)
    return len(items)


def run(ctx: Context) -> PhaseResult:
    from drtool.kube.client import KubeTransport

    api_client = ctx.api_client()
    # Raw JSON requests (KubeTransport), not the generated CoreV1Api, whose import alone costs
    # most of a second: these are four small POSTs on the recovery path.
    api = KubeTransport(api_client, timeout=(5, 10))
    created = []
    try:
        for ns in sorted({"flux-system"} | {s.namespace for s in ctx.inv.secrets}):
            create_namespace(api, ns)
        for i, spec in enumerate(ctx.inv.secrets):
            ctx.check_stop()
            path = ctx.inv.resolve(spec.from_file)
            assert path is not None  # from_file is a required Path
            try:
                value = path.read_bytes()
            except OSError as exc:
                raise BadInput(str(ctx.inv.path), f"secrets[{i}].from_file", f"cannot read {path}: {exc.strerror}") from None
            Secret(value.decode(errors="replace").strip(), spec.name)  # registered with the redactor
            body = secret_manifest(spec.name, spec.namespace, spec.data_key, value)
            put_secret(api, spec.namespace, spec.name, body)
            created.append(f"{spec.namespace}/{spec.name}")
        keys = restore_sealed_secrets_keys(api, ctx.run.dir / "backup" / "flux-secrets" / SEALED_SECRETS_FILE)
        if keys:
            created.append(f"{keys} sealed-secrets key(s)")
    finally:
        api_client.close()
    if not created:
        return noop("restored no secrets (none in the inventory)")
    return ok(f"restored {', '.join(created)}", secrets=created)
