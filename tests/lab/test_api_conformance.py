"""The lab API against the official kubernetes client and real kubectl.

The server runs in a background thread with its own event loop, on a free port of
127.0.0.1; every client talks to it over real HTTPS with the kubeconfig it writes.
"""
from __future__ import annotations

import asyncio
import base64
import json
import shutil
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from drtool.lab.api import LabApiServer

pytestmark = pytest.mark.lab

TOKEN = "lab-test-token-0123456789"
KUBECTL = shutil.which("kubectl")


class ServerThread:
    """Runs a LabApiServer in a daemon thread's event loop."""

    def __init__(self, **kwargs):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = LabApiServer("127.0.0.1", 0, **kwargs)
        self.call(self.server.start)

    def call(self, fn, *args, **kwargs):
        """Run fn (sync or async) in the server's loop and return its result."""
        async def run():
            result = fn(*args, **kwargs)
            return await result if asyncio.iscoroutine(result) else result
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def close(self):
        self.call(self.server.stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    state = tmp_path_factory.mktemp("api")
    st = ServerThread(state_dir=state, tokens=[TOKEN], bookmark_interval=0.2)
    st.kubeconfig = state / "kubeconfig.yaml"
    yield st
    st.close()


@pytest.fixture(scope="module")
def api_client(lab):
    return config.new_client_from_config(config_file=str(lab.kubeconfig))


@pytest.fixture(scope="module")
def core(api_client):
    v1 = client.CoreV1Api(api_client)
    for ns in ("conf", "other"):
        v1.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    return v1


def pod(name, ns="conf", labels=None, node=None):
    spec = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": spec}


def test_create_get_list_with_selectors(core):
    core.create_namespaced_pod("conf", pod("web-1", labels={"app": "web", "tier": "front"}, node="node1"))
    core.create_namespaced_pod("conf", pod("web-2", labels={"app": "web"}, node="node2"))
    core.create_namespaced_pod("other", pod("db-1", "other", labels={"app": "db"}, node="node1"))

    got = core.read_namespaced_pod("web-1", "conf")
    assert got.metadata.uid and got.metadata.creation_timestamp and got.metadata.generation == 1
    assert got.status.phase == "Pending"

    names = lambda lst: sorted(p.metadata.name for p in lst.items)  # noqa: E731
    assert names(core.list_namespaced_pod("conf", label_selector="app=web")) == ["web-1", "web-2"]
    assert names(core.list_namespaced_pod("conf", label_selector="app=web,tier!=front")) == ["web-2"]
    assert names(core.list_pod_for_all_namespaces(label_selector="app in (web,db),!tier")) == ["db-1", "web-2"]
    assert names(core.list_pod_for_all_namespaces(field_selector="spec.nodeName=node1")) == ["db-1", "web-1"]
    assert names(core.list_pod_for_all_namespaces(field_selector="metadata.namespace!=conf")) == ["db-1"]
    listed = core.list_pod_for_all_namespaces()
    assert int(listed.metadata.resource_version) >= int(got.metadata.resource_version)

    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod("conf", pod("web-1"))
    assert exc.value.status == 409 and json.loads(exc.value.body)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod("nope", "conf")
    assert exc.value.status == 404 and json.loads(exc.value.body)["kind"] == "Status"
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod("conf", pod(""))
    assert exc.value.status == 422 and json.loads(exc.value.body)["reason"] == "Invalid"


def test_pagination(core):
    for i in range(5):
        core.create_namespaced_config_map("conf", {"metadata": {"name": f"cm-{i}"}, "data": {"i": str(i)}})
    first = core.list_namespaced_config_map("conf", limit=2)
    assert [c.metadata.name for c in first.items] == ["cm-0", "cm-1"] and first.metadata._continue
    rest = core.list_namespaced_config_map("conf", limit=10, _continue=first.metadata._continue)
    assert [c.metadata.name for c in rest.items] == ["cm-2", "cm-3", "cm-4"] and not rest.metadata._continue


def test_merge_and_json_patch(core):
    core.create_namespaced_pod("conf", pod("patched", labels={"a": "1"}))
    out = core.patch_namespaced_pod("patched", "conf", {"metadata": {"labels": {"b": "2", "a": None}}})
    assert out.metadata.labels == {"b": "2"}
    out = core.patch_namespaced_pod("patched", "conf", [{"op": "add", "path": "/metadata/labels/c", "value": "3"}])
    assert out.metadata.labels == {"b": "2", "c": "3"}
    with pytest.raises(ApiException) as exc:
        core.patch_namespaced_pod("patched", "conf", [{"op": "test", "path": "/metadata/labels/c", "value": "x"}])
    assert exc.value.status == 422


def test_replace_with_stale_resource_version_conflicts(core):
    created = core.create_namespaced_config_map("conf", {"metadata": {"name": "cfg"}, "data": {"k": "v1"}})
    created.data = {"k": "v2"}
    updated = core.replace_namespaced_config_map("cfg", "conf", created)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    created.data = {"k": "stale"}              # still carries the old resourceVersion
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("cfg", "conf", created)
    assert exc.value.status == 409 and json.loads(exc.value.body)["reason"] == "Conflict"
    assert core.read_namespaced_config_map("cfg", "conf").data == {"k": "v2"}


def test_status_subresource_and_generation(api_client):
    apps = client.AppsV1Api(api_client)
    dep = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "llama", "namespace": "conf"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "llama"}},
                    "template": {"metadata": {"labels": {"app": "llama"}},
                                 "spec": {"containers": [{"name": "c", "image": "llama"}]}}},
           "status": {"readyReplicas": 5}}
    created = apps.create_namespaced_deployment("conf", dep)
    assert created.metadata.generation == 1 and not (created.status and created.status.ready_replicas)

    st = apps.patch_namespaced_deployment_status("llama", "conf", {"status": {"readyReplicas": 1, "observedGeneration": 1}})
    assert st.metadata.generation == 1 and st.status.ready_replicas == 1

    # A main-resource write ignores status but bumps generation on a spec change.
    scaled = apps.patch_namespaced_deployment("llama", "conf", {"spec": {"replicas": 2}, "status": {"readyReplicas": 9}})
    assert scaled.metadata.generation == 2 and scaled.status.ready_replicas == 1
    labelled = apps.patch_namespaced_deployment("llama", "conf", {"metadata": {"labels": {"x": "y"}}})
    assert labelled.metadata.generation == 2


def test_delete_waits_for_finalizers(core):
    obj = pod("guarded")
    obj["metadata"]["finalizers"] = ["example.com/hold"]
    core.create_namespaced_pod("conf", obj)
    core.delete_namespaced_pod("guarded", "conf")
    marked = core.read_namespaced_pod("guarded", "conf")
    assert marked.metadata.deletion_timestamp is not None
    core.patch_namespaced_pod("guarded", "conf", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod("guarded", "conf")
    assert exc.value.status == 404


def test_watch_from_resource_version_gets_only_later_events(core):
    core.create_namespaced_config_map("conf", {"metadata": {"name": "w-before"}})
    rv = core.list_namespaced_config_map("conf").metadata.resource_version
    core.create_namespaced_config_map("conf", {"metadata": {"name": "w-after"}})
    core.patch_namespaced_config_map("w-after", "conf", {"data": {"x": "1"}})
    core.delete_namespaced_config_map("w-before", "conf")
    seen = []
    for ev in watch.Watch().stream(core.list_namespaced_config_map, "conf", resource_version=rv, timeout_seconds=1):
        seen.append((ev["type"], ev["object"].metadata.name))
    assert seen == [("ADDED", "w-after"), ("MODIFIED", "w-after"), ("DELETED", "w-before")]


def test_watch_without_resource_version_starts_with_current_state(core, lab):
    core.create_namespaced_secret("other", {"metadata": {"name": "s1", "labels": {"w": "1"}}, "stringData": {"k": "v"}})
    events = []
    w = watch.Watch()
    for ev in w.stream(core.list_namespaced_secret, "other", label_selector="w=1", timeout_seconds=3):
        events.append((ev["type"], ev["object"].metadata.name))
        if len(events) == 1:
            lab.call(lab.server.store.create, {"apiVersion": "v1", "kind": "Secret",
                                              "metadata": {"name": "s2", "namespace": "other", "labels": {"w": "1"}}})
        if len(events) == 2:
            w.stop()
    assert events == [("ADDED", "s1"), ("ADDED", "s2")]


def test_expired_watch_gets_410(core, lab):
    rv = core.list_namespaced_pod("conf").metadata.resource_version
    core.create_namespaced_pod("conf", pod("late"))
    lab.call(lab.server.expire_watches)
    with pytest.raises(ApiException) as exc:
        for _ in watch.Watch().stream(core.list_namespaced_pod, "conf", resource_version=rv, timeout_seconds=2):
            pass
    assert exc.value.status == 410


def test_bookmarks_carry_the_current_version(lab, api_client):
    core = client.CoreV1Api(api_client)
    rv = core.list_namespaced_pod("conf").metadata.resource_version
    resp = core.list_namespaced_pod("conf", watch=True, resource_version=rv, allow_watch_bookmarks=True,
                                    timeout_seconds=1, _preload_content=False)
    lines = [json.loads(line) for line in resp.read().splitlines() if line.strip()]
    assert lines and all(e["type"] == "BOOKMARK" for e in lines)
    assert int(lines[-1]["object"]["metadata"]["resourceVersion"]) >= int(rv)


def _https_get(lab, path, token=None):
    ctx = ssl.create_default_context(cadata=lab.server.pki.ca_pem.decode())
    req = urllib.request.Request(lab.server.url + path)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_authentication(lab):
    code, body = _https_get(lab, "/api/v1/namespaces")
    assert code == 401 and json.loads(body)["reason"] == "Unauthorized"
    assert _https_get(lab, "/api/v1/namespaces", token="wrong-token-value")[0] == 401
    assert _https_get(lab, "/api/v1/namespaces", token=TOKEN)[0] == 200
    # As on K3s, health and version are readable anonymously.
    assert _https_get(lab, "/readyz") == (200, b"ok")
    assert json.loads(_https_get(lab, "/version")[1])["gitVersion"].endswith("+k3s1")


def test_faults_503_and_refused(lab):
    lab.call(lab.server.fail_requests, count=2)
    assert [_https_get(lab, "/readyz")[0] for _ in range(3)] == [503, 503, 200]
    lab.call(lab.server.refuse_connections, 0.5)
    with pytest.raises(urllib.error.URLError) as exc:
        _https_get(lab, "/readyz")
    assert isinstance(exc.value.reason, ConnectionRefusedError)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if _https_get(lab, "/readyz")[0] == 200:
                break
        except urllib.error.URLError:
            time.sleep(0.1)
    else:
        pytest.fail("the server did not listen again after the refusal window")


KUSTOMIZATION_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "kustomizations.kustomize.toolkit.fluxcd.io"},
    "spec": {"group": "kustomize.toolkit.fluxcd.io", "scope": "Namespaced",
             "names": {"kind": "Kustomization", "plural": "kustomizations", "singular": "kustomization",
                       "shortNames": ["ks"], "listKind": "KustomizationList"},
             "versions": [
                 {"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                  "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                  "additionalPrinterColumns": [
                      {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                      {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                      {"name": "Status", "type": "string",
                       "jsonPath": ".status.conditions[?(@.type==\"Ready\")].message"}]},
                 {"name": "v1beta2", "served": True, "storage": False, "subresources": {"status": {}}}]},
}


@pytest.fixture(scope="module")
def flux_crd(api_client, core):
    ext = client.ApiextensionsV1Api(api_client)
    crd = ext.create_custom_resource_definition(KUSTOMIZATION_CRD)
    assert {c.type for c in crd.status.conditions if c.status == "True"} >= {"Established", "NamesAccepted"}
    custom = client.CustomObjectsApi(api_client)
    custom.create_namespaced_custom_object(
        "kustomize.toolkit.fluxcd.io", "v1", "conf", "kustomizations",
        {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
         "metadata": {"name": "apps"}, "spec": {"path": "./apps", "interval": "10m"}})
    return custom


def test_custom_objects_after_crd(flux_crd):
    custom = flux_crd
    group = "kustomize.toolkit.fluxcd.io"
    got = custom.get_namespaced_custom_object(group, "v1", "conf", "kustomizations", "apps")
    assert got["metadata"]["generation"] == 1
    # Every served version reads the same object.
    old = custom.get_namespaced_custom_object(group, "v1beta2", "conf", "kustomizations", "apps")
    assert old["apiVersion"] == f"{group}/v1beta2" and old["metadata"]["uid"] == got["metadata"]["uid"]
    st = custom.patch_namespaced_custom_object_status(
        group, "v1", "conf", "kustomizations", "apps",
        {"status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True",
                                                             "reason": "ReconciliationSucceeded", "message": "ok"}]}})
    assert st["metadata"]["generation"] == 1 and st["status"]["observedGeneration"] == 1
    listed = custom.list_cluster_custom_object(group, "v1", "kustomizations")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["apps"]


# ----------------------------------------------------------------- kubectl

needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")


def kubectl(lab, *args, timeout=20, check=True):
    proc = subprocess.run([KUBECTL, "--kubeconfig", str(lab.kubeconfig), *args], capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


@needs_kubectl
def test_kubectl_get_patch_and_json(lab, core):
    core.create_namespaced_pod("other", pod("kx", "other", labels={"app": "x"}))
    out = kubectl(lab, "get", "pods", "-A", "-l", "app=x").stdout
    assert out.split("\n")[0].split()[:3] == ["NAMESPACE", "NAME", "READY"] and "kx" in out and "Pending" in out
    kubectl(lab, "patch", "pod", "kx", "-n", "other", "-p", '{"metadata":{"labels":{"patched":"yes"}}}')
    got = json.loads(kubectl(lab, "get", "pod", "kx", "-n", "other", "-o", "json").stdout)
    assert got["metadata"]["labels"] == {"app": "x", "patched": "yes"}


@needs_kubectl
def test_kubectl_wait_for_ready_condition(lab, core):
    core.create_namespaced_pod("other", pod("waiter", "other"))
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", str(lab.kubeconfig), "wait", "--for=condition=Ready",
                             "pod/waiter", "-n", "other", "--timeout=10s"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        core.patch_namespaced_pod_status("waiter", "other", {"status": {
            "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 0, err
    assert "condition met" in out


@needs_kubectl
def test_kubectl_get_watch_sees_an_event(lab, core):
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", str(lab.kubeconfig), "get", "configmaps", "-n", "other",
                             "-w", "--request-timeout=5s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.7)
        core.create_namespaced_config_map("other", {"metadata": {"name": "seen-by-watch"}})
        time.sleep(0.7)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=5)
    assert "seen-by-watch" in out


@needs_kubectl
def test_kubectl_lists_crd_kind(lab, flux_crd):
    out = kubectl(lab, "get", "kustomizations.kustomize.toolkit.fluxcd.io", "-A").stdout
    header = out.splitlines()[0].split()
    assert header[:2] == ["NAMESPACE", "NAME"] and "READY" in header
    assert "apps" in out
    assert "apps" in kubectl(lab, "get", "ks", "-n", "conf", "-o", "name").stdout


@needs_kubectl
def test_kubectl_create_from_file(lab, tmp_path):
    manifest = tmp_path / "cm.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-file, namespace: other}\n"
                        "data: {a: b}\n")
    kubectl(lab, "create", "-f", str(manifest))
    kubectl(lab, "apply", "-f", str(manifest))
    got = json.loads(kubectl(lab, "get", "cm", "from-file", "-n", "other", "-o", "json").stdout)
    assert got["data"] == {"a": "b"}


@needs_kubectl
def test_kubectl_create_secret_generic(lab, tmp_path):
    # kubectl's generators send protobuf bodies; the Flux docs restore sops-age this way.
    key = tmp_path / "age.agekey"
    key.write_text("AGE-SECRET-KEY-1LABTEST")
    kubectl(lab, "create", "namespace", "flux-system")
    kubectl(lab, "create", "secret", "generic", "sops-age", "-n", "flux-system", f"--from-file=age.agekey={key}")
    got = json.loads(kubectl(lab, "get", "secret", "sops-age", "-n", "flux-system", "-o", "json").stdout)
    assert base64.b64decode(got["data"]["age.agekey"]) == b"AGE-SECRET-KEY-1LABTEST"
