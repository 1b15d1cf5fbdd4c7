"""drtool.gitops: Flux's build of a Kustomization path (generated kustomization, source
ignore rules, spec overlays through the real kustomize) and its postBuild substitution."""
from __future__ import annotations

from pathlib import Path

import pytest

from drtool.gitops import envsubst
from drtool.gitops.kustomize import BuildError, build_kustomization, substitute
from drtool.gitops.sourceignore import included_files

DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: ${REPLICAS:=1}
  template:
    spec:
      containers:
      - name: web
        image: nginx:1.25
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def names(objects: list[dict]) -> list[str]:
    return [f"{o['kind']}/{o['metadata'].get('namespace', '')}/{o['metadata']['name']}" for o in objects]


def cm(obj_name: str, **data: str) -> str:
    body = "".join(f"\n  {k}: {v}" for k, v in data.items()) or " {}"
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {obj_name}\ndata:{body}\n"


# ---------------------------------------------------------------- generated kustomization


def test_generated_kustomization_takes_every_manifest_and_kustomized_subfolders(tmp_path: Path) -> None:
    write(tmp_path, {
        "clusters/lab/a.yaml": cm("a"),
        "clusters/lab/nested/b.yml": cm("b"),
        "clusters/lab/nested/notes.md": "not a manifest",
        "clusters/lab/old.yaml.backup": "kind: [broken",
        "clusters/lab/app/kustomization.yaml": "resources: [c.yaml]\nnamePrefix: app-\n",
        "clusters/lab/app/c.yaml": cm("c"),
        "clusters/lab/app/unlisted.yaml": cm("unlisted"),
    })
    got = names(build_kustomization(tmp_path, "./clusters/lab"))
    # The kustomized subfolder is one unit (its prefix applies, its unlisted file does not).
    assert sorted(got) == ["ConfigMap//a", "ConfigMap//app-c", "ConfigMap//b"]


def test_generated_kustomization_fails_on_a_file_that_is_not_kubernetes_yaml(tmp_path: Path) -> None:
    write(tmp_path, {"apps/good.yaml": cm("good"), "apps/bad.yaml": "kind: [unclosed\n"})
    with pytest.raises(BuildError, match=r"^failed to decode Kubernetes YAML from apps/bad.yaml"):
        build_kustomization(tmp_path, "apps")


def test_missing_path_and_a_path_climbing_out_stay_in_the_checkout(tmp_path: Path) -> None:
    write(tmp_path, {"apps/a.yaml": cm("a")})
    with pytest.raises(BuildError, match=r"^kustomization path not found: stat ./nope: no such file"):
        build_kustomization(tmp_path, "./nope")
    # securejoin clamps "../../apps" to "apps" inside the artifact, as in kustomize-controller.
    assert names(build_kustomization(tmp_path, "../../apps")) == ["ConfigMap//a"]


def test_folder_without_manifests_builds_nothing(tmp_path: Path) -> None:
    write(tmp_path, {"docs/README.md": "no manifests here"})
    assert build_kustomization(tmp_path, "docs") == []


# ---------------------------------------------------------------- source ignore rules


def test_source_ignore_defaults_sourceignore_files_and_spec_ignore(tmp_path: Path) -> None:
    write(tmp_path, {
        "apps/keep.yaml": cm("keep"),
        "apps/.sops.yaml": "creation_rules: []\n",
        "apps/drafts/draft.yaml": cm("draft"),
        "apps/local/dev.yaml": cm("dev"),
        "apps/.sourceignore": "# drafts stay out\ndrafts/\n",
        ".github/workflows/ci.yaml": "on: push\n",
        "logo.png": "x",
        "ignored-by-spec.yaml": cm("spec"),
    })
    kept = list(included_files(tmp_path, extra="/ignored-by-spec.yaml\n**/local/\n"))
    assert kept == ["apps/.sourceignore", "apps/keep.yaml"]
    assert names(build_kustomization(tmp_path, "apps", ignore="**/local/")) == ["ConfigMap//keep"]


def test_sourceignore_negation_and_anchoring(tmp_path: Path) -> None:
    write(tmp_path, {
        ".sourceignore": "*.yaml\n!/keep/*.yaml\n",
        "keep/a.yaml": "", "deep/keep/b.yaml": "", "c.txt": "",
    })
    assert list(included_files(tmp_path)) == [".sourceignore", "c.txt", "keep/a.yaml"]


# ---------------------------------------------------------------- kustomize features (real tool)

BASE = {
    "base/kustomization.yaml": ("resources: [deploy.yaml]\n"
                                "configMapGenerator:\n- name: settings\n  literals: [LOG_LEVEL=info]\n"),
    "base/deploy.yaml": DEPLOY,
    "comp/kustomization.yaml": ("apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
                                "labels:\n- pairs: {tier: edge}\n"),
    "app/kustomization.yaml": "resources: [../base]\ncomponents: [../comp]\nnamePrefix: demo-\n",
}


def test_generators_components_and_prefix_as_kustomize_builds_them(tmp_path: Path) -> None:
    objs = build_kustomization(write(tmp_path, BASE), "app")
    # Recorded from kubectl kustomize (Kustomize v5.8.1) on the same files: the hash suffix
    # is kustomize's, and the component's label reaches every object.
    assert names(objs) == ["ConfigMap//demo-settings-hf678c7m2b", "Deployment//demo-web"]
    assert all(o["metadata"]["labels"] == {"tier": "edge"} for o in objs)


def test_flux_spec_fields_are_written_into_the_kustomization(tmp_path: Path) -> None:
    spec = {
        "targetNamespace": "apps",
        "nameSuffix": "-x",
        "images": [{"name": "nginx", "newTag": "1.27"}],
        "patches": [{"patch": "- op: add\n  path: /metadata/annotations\n  value: {team: web}",
                     "target": {"kind": "Deployment", "name": "web"}}],
        "patchesStrategicMerge": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                   "metadata": {"name": "web"}, "spec": {"minReadySeconds": 5}}],
    }
    objs = build_kustomization(write(tmp_path, BASE), "app", spec)
    # Patch targets select by the name before namePrefix/nameSuffix, as kustomize does.
    deploy = next(o for o in objs if o["kind"] == "Deployment")
    assert names(objs) == ["ConfigMap/apps/demo-settings-x-hf678c7m2b", "Deployment/apps/demo-web-x"]
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert deploy["metadata"]["annotations"] == {"team": "web"}
    assert deploy["spec"]["minReadySeconds"] == 5


def test_spec_components_must_be_local(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="component path 'https://example.invalid/c' must be local and relative"):
        build_kustomization(write(tmp_path, BASE), "app", {"components": ["https://example.invalid/c"]})


def test_kustomize_errors_name_the_file_on_one_line(tmp_path: Path) -> None:
    write(tmp_path, {"app/kustomization.yaml": "resources:\n- missing.yaml\n"})
    with pytest.raises(BuildError) as info:
        build_kustomization(tmp_path, "app")
    message = str(info.value)
    assert message.startswith("kustomize build failed: accumulating resources")
    assert "app/missing.yaml" in message and "\n" not in message and "/tmp/" not in message


def test_remote_bases_are_refused_offline(tmp_path: Path) -> None:
    write(tmp_path, {"app/kustomization.yaml": "resources:\n- github.com/example/repo//deploy?ref=v1\n"})
    with pytest.raises(BuildError, match=r"^app/kustomization.yaml: resources: remote .* offline"):
        build_kustomization(tmp_path, "app")


# ---------------------------------------------------------------- postBuild substitution

# Cases from fluxcd/pkg envsubst v1.1.0's own table (eval_test.go), re-stated.
@pytest.mark.parametrize("text, params, want", [
    ("${var01}", {"var01": "abc"}, "abc"),
    ("$var01", {"var01": "abc"}, "$var01"),
    ("${var=xyz}", {"var": "abc"}, "abc"),
    ("${var=xyz}", {}, "xyz"),
    ("${var:=xyz}", {}, "xyz"),
    ("${var:-xyz}", {"var": ""}, "xyz"),
    ("something ${var=${default_var}}", {"default_var": "foo"}, "something foo"),
    ("foo: ${var=prefix${default_var}-suffix}", {"default_var": "foo1"}, "foo: prefixfoo1-suffix"),
    ("$${var01}", {"var01": "abc"}, "${var01}"),
    ("some text ${var01}$${var$${var01}$var01${var01}", {"var01": "abcdEFGH28ij"},
     "some text abcdEFGH28ij${var${var01}$var01abcdEFGH28ij"),
    ("something $${var=${default_var}}", {"default_var": "foo"}, "something ${var=foo}"),
    ("${#var01}", {"var01": "abcdEFGH28ij"}, "12"),
    ("${var01^^}", {"var01": "abcdEFGH28ij"}, "ABCDEFGH28IJ"),
    ("${var01,,}", {"var01": "abcdEFGH28ij"}, "abcdefgh28ij"),
    ("${var01^}", {"var01": "abcdEFGH28ij"}, "AbcdEFGH28ij"),
    ("${path_name:11:5}", {"path_name": "/home/user/docs/file"}, "docs/"),
    ("${missing}", {}, ""),
])
def test_envsubst_dialect(text: str, params: dict, want: str) -> None:
    assert envsubst.render(text, lambda n: (params.get(n, ""), n in params)) == want


def test_envsubst_strict_mode_rejects_unset_without_default() -> None:
    with pytest.raises(envsubst.SubstitutionError, match='variable not set'):
        envsubst.render("${missing}", lambda n: ("", False), strict=True)
    assert envsubst.render("${missing:=d}", lambda n: ("", False), strict=True) == "d"


def test_substitute_types_follow_the_built_yaml(tmp_path: Path) -> None:
    write(tmp_path, {"app/d.yaml": DEPLOY, "app/c.yaml": cm("c", port='"${PORT}"', name="${NAME:=web}")})
    objs = build_kustomization(tmp_path, "app")
    out = {o["kind"]: o for o in substitute(objs, {"REPLICAS": "3", "PORT": "8080"})}
    assert out["Deployment"]["spec"]["replicas"] == 3
    # kustomize prints the quoted "${PORT}" unquoted, so after substitution it is a number,
    # exactly what Flux hands to the API (a known postBuild pitfall).
    assert out["ConfigMap"]["data"] == {"port": 8080, "name": "web"}


def test_substitute_skips_disabled_objects_and_does_nothing_without_variables() -> None:
    plain = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "${X:=d}"}}
    off_label = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "b", "labels": {"kustomize.toolkit.fluxcd.io/substitute": "disabled"}},
                 "data": {"k": "${X}"}}
    off_annotation = {"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "c", "annotations": {"kustomize.toolkit.fluxcd.io/substitute": "disabled"}},
                      "data": {"k": "${X}"}}
    assert substitute([plain], {}) == [plain]
    got = substitute([plain, off_label, off_annotation], {"X": "v\n"})
    assert [o["data"]["k"] for o in got] == ["v", "${X}", "${X}"]


def test_substitute_rejects_bad_variable_names() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}
    with pytest.raises(BuildError, match=r"^post build failed for 'a': envsubst error: '1x' var name is invalid"):
        substitute([obj], {"1x": "v"})


def test_secret_generator_common_labels_and_json6902_in_the_kustomization(tmp_path: Path) -> None:
    write(tmp_path, {
        "app/kustomization.yaml": ("commonLabels: {team: web}\nresources: [deploy.yaml]\n"
                                   "secretGenerator:\n- name: creds\n  literals: [token=abc]\n"
                                   "patchesJson6902:\n- target: {group: apps, version: v1, kind: Deployment, name: web}\n"
                                   "  patch: |\n    - op: replace\n      path: /spec/replicas\n      value: 4\n"),
        "app/deploy.yaml": DEPLOY.replace("${REPLICAS:=1}", "1"),
    })
    objs = {o["kind"]: o for o in build_kustomization(tmp_path, "app")}
    # Recorded from kubectl kustomize (Kustomize v5.5.0 and v5.8.1 agree): the Secret's hash suffix.
    assert objs["Secret"]["metadata"]["name"] == "creds-dbdgd77ct8"
    assert objs["Secret"]["metadata"]["labels"] == {"team": "web"}
    assert objs["Deployment"]["spec"]["replicas"] == 4
    # commonLabels also reaches selectors and templates (unlike `labels` without includeSelectors).
    assert objs["Deployment"]["spec"]["template"]["metadata"]["labels"] == {"team": "web"}
