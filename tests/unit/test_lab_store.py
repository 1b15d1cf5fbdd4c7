"""The lab API's store: selectors, generation/status rules, history and 410, persistence."""
from __future__ import annotations

import asyncio
import json

import pytest

from drtool.lab.api import AlreadyExists, Conflict, Gone, Invalid, NotFound, Store
from drtool.lab.api.selectors import BadRequest, FieldSelector, LabelSelector


def pod(name, ns="default", labels=None, **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": {"containers": [{"name": "c", "image": "i"}], **spec}}


@pytest.mark.parametrize("selector, labels, expected", [
    ("app=web", {"app": "web"}, True),
    ("app==web", {"app": "db"}, False),
    ("app!=web", {}, True),
    ("app in (web, db)", {"app": "db"}, True),
    ("app notin (web,db)", {"app": "db"}, False),
    ("app", {"app": ""}, True),
    ("!app", {"app": "x"}, False),
    ("app=web,tier in (front),!canary", {"app": "web", "tier": "front"}, True),
    ("", {"anything": "x"}, True),
])
def test_label_selector(selector, labels, expected):
    assert LabelSelector.parse(selector).matches(labels) is expected


def test_bad_selectors_are_400():
    with pytest.raises(BadRequest):
        LabelSelector.parse("app in web")
    with pytest.raises(BadRequest):
        FieldSelector.parse("status.phase")


def test_field_selector_paths():
    obj = {"metadata": {"name": "a"}, "status": {"phase": "Running"}, "involvedObject": {"kind": "Pod"}}
    assert FieldSelector.parse("status.phase=Running,involvedObject.kind==Pod").matches(obj)
    assert not FieldSelector.parse("metadata.name!=a").matches(obj)
    assert FieldSelector.parse("spec.nodeName=").matches(obj)        # absent compares as ""


def test_list_filters_and_orders():
    s = Store()
    s.create(pod("b", labels={"app": "x"}, nodeName="n1"))
    s.create(pod("a", "kube-system", labels={"app": "x"}))
    s.create(pod("c", labels={"app": "y"}))
    assert [p["metadata"]["name"] for p in s.list("", "Pod")] == ["b", "c", "a"]   # default < kube-system
    assert [p["metadata"]["name"] for p in s.list("", "Pod", label_selector="app=x")] == ["b", "a"]
    assert [p["metadata"]["name"] for p in s.list("", "Pod", "default", field_selector="spec.nodeName=n1")] == ["b"]


def test_create_errors_and_defaults():
    s = Store()
    created = s.create(pod("a", ns=""))
    assert created["metadata"]["namespace"] == "default" and created["metadata"]["generation"] == 1
    assert created["status"] == {"phase": "Pending"}
    with pytest.raises(AlreadyExists):
        s.create(pod("a"))
    with pytest.raises(Invalid):
        s.create(pod(""))
    with pytest.raises(Invalid):
        s.create(pod("Bad_Name"))
    with pytest.raises(NotFound):
        s.create({"apiVersion": "example.com/v1", "kind": "Nope", "metadata": {"name": "x"}})
    generated = s.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "cm-"}})
    assert generated["metadata"]["name"].startswith("cm-") and len(generated["metadata"]["name"]) == 8


def test_generation_and_status_rules():
    s = Store()
    d = s.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 1}})
    d["spec"]["replicas"] = 2
    d["status"] = {"readyReplicas": 7}              # ignored: Deployment has a status subresource
    d = s.update(d)
    assert d["metadata"]["generation"] == 2 and "status" not in d
    d = s.update_status("apps", "Deployment", "default", "d", {"readyReplicas": 2})
    assert d["metadata"]["generation"] == 2 and d["status"] == {"readyReplicas": 2}
    d = s.patch_status("apps", "Deployment", "default", "d", {"observedGeneration": 2})
    assert d["status"] == {"readyReplicas": 2, "observedGeneration": 2}
    d["metadata"]["labels"] = {"x": "y"}
    assert s.update(d)["metadata"]["generation"] == 2


def test_noop_write_keeps_resource_version():
    s = Store()
    first = s.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}})
    again = s.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}})
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    changed = s.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "2"}})
    assert int(changed["metadata"]["resourceVersion"]) == s.resource_version > int(first["metadata"]["resourceVersion"])
    assert changed["metadata"]["generation"] == 2


def test_stale_update_conflicts():
    s = Store()
    old = s.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}})
    s.patch("", "ConfigMap", "default", "c", {"data": {"a": "2"}})
    with pytest.raises(Conflict):
        s.update(old)


def test_finalizers_delay_deletion():
    s = Store()
    obj = pod("p")
    obj["metadata"]["finalizers"] = ["x/y"]
    s.create(obj)
    marked = s.delete("", "Pod", "default", "p")
    assert marked["metadata"]["deletionTimestamp"]
    assert s.get("", "Pod", "default", "p") is not None
    marked["metadata"]["finalizers"] = []
    s.update(marked)
    assert s.get("", "Pod", "default", "p") is None
    assert s.delete("", "Pod", "default", "p") is None


def test_namespace_delete_cascades():
    s = Store()
    s.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gone"}})
    s.create(pod("p", "gone"))
    s.delete("", "Namespace", None, "gone")
    assert s.list("", "Pod", "gone") == []


def test_history_window_and_gone():
    s = Store(history=3)
    for i in range(5):
        s.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}})
    assert [e.rv for e in s.events_since(2)] == [3, 4, 5]
    with pytest.raises(Gone) as exc:
        s.events_since(1)
    assert exc.value.code == 410 and "too old resource version" in exc.value.message
    s.compact()
    with pytest.raises(Gone):
        s.events_since(4)
    assert s.events_since(5) == []


def test_subscribers_get_copies_of_every_change():
    async def scenario():
        s = Store()
        q = s.subscribe()
        created = s.create(pod("p"))
        s.delete("", "Pod", "default", "p")
        first, second = q.get_nowait(), q.get_nowait()
        first[1]["metadata"]["name"] = "mutated"         # must not reach the store's history
        s.unsubscribe(q)
        return created, first, second, s
    created, first, second, s = asyncio.run(scenario())
    assert first[0] == "ADDED" and second[0] == "DELETED"
    assert int(second[1]["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert s.events_since(0)[0].obj["metadata"]["name"] == "p"


def test_crd_registers_kind_for_all_served_versions():
    s = Store()
    s.create({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
              "metadata": {"name": "helmreleases.helm.toolkit.fluxcd.io"},
              "spec": {"group": "helm.toolkit.fluxcd.io", "scope": "Namespaced",
                       "names": {"kind": "HelmRelease", "plural": "helmreleases"},
                       "versions": [{"name": "v2beta1", "served": True, "storage": False},
                                    {"name": "v2", "served": True, "storage": True,
                                     "subresources": {"status": {}}}]}})
    hr = s.create({"apiVersion": "helm.toolkit.fluxcd.io/v2beta1", "kind": "HelmRelease",
                   "metadata": {"name": "loki", "namespace": "logging"}, "spec": {}})
    assert hr["apiVersion"] == "helm.toolkit.fluxcd.io/v2"      # stored under the storage version
    assert s.kinds.by_plural("helm.toolkit.fluxcd.io", "v2beta1", "helmreleases").kind == "HelmRelease"
    s.delete("apiextensions.k8s.io", "CustomResourceDefinition", None, "helmreleases.helm.toolkit.fluxcd.io")
    assert s.kinds.by_kind("helm.toolkit.fluxcd.io", "HelmRelease") is None


def test_persistence_reload(tmp_path):
    path = tmp_path / "state.json"
    s = Store(persist_path=str(path))
    s.register_kind("source.toolkit.fluxcd.io", "v1", "GitRepository", "gitrepositories", True)
    s.create({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
              "metadata": {"name": "flux-system", "namespace": "flux-system"}, "spec": {"url": "x"}})
    s.create(pod("p"))
    assert json.loads(path.read_text())["resourceVersion"] == s.resource_version
    again = Store(persist_path=str(path))
    assert again.resource_version == s.resource_version
    assert again.get("source.toolkit.fluxcd.io", "GitRepository", "flux-system", "flux-system")["spec"] == {"url": "x"}
    assert again.get("", "Pod", "default", "p")["metadata"]["uid"] == s.get("", "Pod", "default", "p")["metadata"]["uid"]
    with pytest.raises(Gone):                     # a restarted server has no history
        again.events_since(s.resource_version - 1)


def test_persistence_is_debounced_in_a_loop(tmp_path):
    path = tmp_path / "state.json"

    async def scenario():
        s = Store(persist_path=str(path))
        for i in range(50):
            s.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}})
        written_early = path.exists()
        await asyncio.sleep(0.35)
        return written_early
    assert asyncio.run(scenario()) is False
    assert len(json.loads(path.read_text())["objects"]) == 50


def test_secret_string_data_becomes_data():
    s = Store()
    sec = s.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}})
    assert sec["data"] == {"k": "dg=="} and "stringData" not in sec


def test_state_db_is_a_real_sqlite_database_in_kine_layout(tmp_path):
    import sqlite3

    path = tmp_path / "server" / "db" / "state.db"
    s = Store(persist_path=str(path))
    s.create(pod("p"))
    s.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}})
    with sqlite3.connect(path) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM kine")}
        columns = [row[1] for row in conn.execute("PRAGMA table_info(kine)")]
    assert columns == ["id", "name", "created", "deleted", "create_revision", "prev_revision", "lease", "value",
                       "old_value"]
    assert {"/registry/core/Pod/default/p", "/registry/core/ConfigMap/default/c"} <= names
    # The online backup API (what drtool runs on the node) gives a copy that loads again.
    copy = tmp_path / "backup.db"
    src, dst = sqlite3.connect(path), sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.close()
    again = Store(persist_path=str(copy))
    assert again.get("", "ConfigMap", "default", "c")["metadata"]["name"] == "c"
    assert again.resource_version == s.resource_version
