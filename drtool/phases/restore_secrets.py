"""Restore secrets: create flux-system and the inventory's out-of-Git Secrets before bootstrap.

Kustomizations that decrypt with SOPS fail with ``Secret "sops-age" not found``
until this exists, and the key is never in Git: it comes from the operator's file.
Existing Secrets are replaced, so a re-run converges on the file's content.
"""
from __future__ import annotations

import base64

from drtool.errors import BadInput, PermanentError
from drtool.phases.backup import SEALED_SECRETS_FILE
from drtool.phases.context import Context
from drtool.phases.result import PhaseResult, noop, ok
from drtool.secret import Secret

NAME = "restore_secrets"


def secret_manifest(name: str, namespace: str, key: str, value: bytes) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "drtool"}},
            "data": {key: base64.b64encode(value).decode()}}


def _transient(exc: BaseException) -> bool:
    """Connection trouble, 429 and 5xx right after install are worth retrying; 4xx are not."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        return exc.status in (0, 429) or exc.status >= 500
    return isinstance(exc, OSError) or type(exc).__module__.startswith("urllib3")


def _retrying(ctx: Context):
    """Bounded retries (tenacity) for one API call."""
    from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential

    return Retrying(stop=stop_after_attempt(8) | stop_after_delay(60), wait=wait_exponential(0.2, max=5),
                    retry=retry_if_exception(_transient), reraise=True)


def _put(ctx: Context, core, namespace: str, name: str, body: dict) -> None:
    """Create a Secret, or replace it when it exists; bounded retries on transient errors."""
    from kubernetes.client.exceptions import ApiException

    try:
        for attempt in _retrying(ctx):
            with attempt:
                core.create_namespaced_secret(namespace, body, _request_timeout=(5, 10))
    except ApiException as exc:
        if exc.status != 409:
            raise PermanentError(f"creating Secret {namespace}/{name}: HTTP {exc.status} {exc.reason}") from None
        for attempt in _retrying(ctx):
            with attempt:
                core.replace_namespaced_secret(name, namespace, body, _request_timeout=(5, 10))


def _restore_sealed_secrets_keys(ctx: Context, core) -> int:
    """Put back the sealed-secrets controller keys the backup phase saved, before Flux installs the
    controller: at start it adopts every Secret labelled sealedsecrets.bitnami.com/sealed-secrets-key=active
    in its namespace (bitnami-labs/sealed-secrets pkg/controller/main.go initKeyRegistry) instead of
    generating a new key that cannot decrypt the SealedSecrets in Git."""
    import json

    from kubernetes.client.exceptions import ApiException

    saved = ctx.run.dir / "backup" / "flux-secrets" / SEALED_SECRETS_FILE
    if not saved.is_file():
        return 0
    items = json.loads(saved.read_text()).get("items") or []
    for obj in items:
        meta = obj.get("metadata") or {}
        name, namespace = meta.get("name", ""), meta.get("namespace", "kube-system")
        for value in (obj.get("data") or {}).values():
            Secret(value, "sealed-secrets-key")
        try:
            core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
                                  _request_timeout=(5, 10))
        except ApiException as exc:
            if exc.status != 409:
                raise PermanentError(f"creating namespace {namespace}: HTTP {exc.status} {exc.reason}") from None
        _put(ctx, core, namespace, name, obj)
    return len(items)


def run(ctx: Context) -> PhaseResult:
    from kubernetes import client as kclient
    from kubernetes.client.exceptions import ApiException

    api_client = ctx.api_client()
    core = kclient.CoreV1Api(api_client)
    created = []
    try:
        namespaces = {"flux-system"} | {s.namespace for s in ctx.inv.secrets}
        for ns in sorted(namespaces):
            try:
                for attempt in _retrying(ctx):
                    with attempt:
                        # A dict body is sent as it is (ApiClient.sanitize_for_serialization).
                        core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},  # type: ignore[arg-type]
                                              _request_timeout=(5, 10))
            except ApiException as exc:
                if exc.status != 409:
                    raise PermanentError(f"creating namespace {ns}: HTTP {exc.status} {exc.reason}") from None
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
            _put(ctx, core, spec.namespace, spec.name, body)
            created.append(f"{spec.namespace}/{spec.name}")
        keys = _restore_sealed_secrets_keys(ctx, core)
        if keys:
            created.append(f"{keys} sealed-secrets key(s)")
    finally:
        api_client.close()
    if not created:
        return noop("restored no secrets (none in the inventory)")
    return ok(f"restored {', '.join(created)}", secrets=created)
