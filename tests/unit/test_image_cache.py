"""The image cache: the export/give-back scripts run by a real shell against the lab's ``k3s ctr``,
and the phases' commands and skip paths against the recording runner."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from drtool.errors import BadInput
from drtool.inventory import parse_inventory
from drtool.lab.k3s import images as lab_images
from drtool.lab.k3s.artifacts import k3s_program
from drtool.lab.k3s.rootfs import RootFS
from drtool.phases import backup, image_cache, join
from drtool.phases.dry_run import dry_context, plan_phase
from drtool.remote import image_cache as remote
from drtool.remote.recording import RecordingRunner, Reply

from .test_recorded_phases import REPO, context

REFS = ["docker.io/library/nginx:1.27", "ghcr.io/example/app:v2"]


def _inv(tmp_path: Path, **images) -> object:
    data = yaml.safe_load((REPO / "inventory" / "lab.yaml").read_text())
    data["k3s"]["install"] = {"method": "online"}
    data["k3s"]["data_dir"] = str(tmp_path / "k3s")
    data["images"] = {"cache_dir": str(tmp_path / "cache"), **images}
    return parse_inventory(data, REPO / "inventory" / "lab.yaml")


@pytest.fixture
def node(tmp_path, monkeypatch):
    """A shell with the lab's ``k3s`` on PATH and a store holding REFS plus a digest name."""
    monkeypatch.setenv("DRTOOL_RUNS_DIR", str(tmp_path / "runs"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    k3s = bin_dir / "k3s"
    k3s.write_text(k3s_program(tmp_path / "lab", sys.executable))
    k3s.chmod(0o755)
    store = tmp_path / "k3s" / lab_images.STORE
    store.parent.mkdir(parents=True)
    store.write_text(json.dumps(REFS + ["docker.io/library/nginx@sha256:" + "a" * 64, "sha256:" + "b" * 64]))
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "K3S_DATA_DIR": str(tmp_path / "k3s"), "HOME": str(tmp_path)}

    def sh(command: str) -> subprocess.CompletedProcess:
        return subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, timeout=60)
    return sh


def test_export_keeps_named_images_0700_with_a_sha256_manifest(tmp_path, node):
    inv = _inv(tmp_path)
    res = node(remote.export_command(inv))
    assert res.returncode == 0, res.stderr
    out = remote.parse(res.stdout)
    assert sorted(out.refs("kept")) == sorted(REFS)            # digest-only names are not exported twice
    cache = tmp_path / "cache"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    rows = [line.split("\t") for line in (cache / remote.MANIFEST).read_text().splitlines()]
    assert sorted(r[3] for r in rows) == sorted(REFS)
    for digest, size, name, ref in rows:
        data = (cache / name).read_bytes()
        import hashlib
        assert hashlib.sha256(data).hexdigest() == digest and len(data) == int(size)
        assert lab_images.import_file(cache / name) == [ref]   # a .tar K3s imports as is
    assert not (cache / ".partial").exists()


def test_give_back_places_verified_archives_where_k3s_imports_them_and_skips_a_corrupt_one(tmp_path, node):
    inv = _inv(tmp_path)
    node(remote.export_command(inv))
    first = (tmp_path / "cache" / remote.MANIFEST).read_text().splitlines()[0].split("\t")
    (tmp_path / "cache" / first[2]).write_bytes(b"not the archive that was kept")
    (tmp_path / "k3s").rename(tmp_path / "wiped")                # the uninstall removes the data dir
    res = node(remote.give_back_command(inv))
    assert res.returncode == 0, res.stderr
    out = remote.parse(res.stdout)
    assert out.refs("corrupt") == [first[3]]
    assert out.refs("reused") == [r for r in REFS if r != first[3]]
    placed = sorted(p.name for p in (tmp_path / "k3s" / "agent" / "images").iterdir())
    assert all(p.startswith(remote.PREFIX) and p.endswith(".tar") for p in placed) and len(placed) == 1
    # K3s at start (the lab follows preloadFile): only the good archive's image is back.
    assert lab_images.preload(RootFS(), str(tmp_path / "k3s")) == out.refs("reused")


def test_short_disk_and_size_bound_skip_with_exit_0(tmp_path, node):
    res = node(remote.export_command(_inv(tmp_path, min_free_bytes=2**62)))
    assert res.returncode == 0
    assert sorted(remote.parse(res.stdout).refs("short")) == sorted(REFS)
    res = node(remote.export_command(_inv(tmp_path, max_bytes=1)))
    assert res.returncode == 0 and sorted(remote.parse(res.stdout).refs("over")) == sorted(REFS)
    assert (tmp_path / "cache" / remote.MANIFEST).read_text() == ""


def test_unreadable_free_space_counts_as_short(tmp_path, node):
    df = tmp_path / "bin" / "df"
    df.write_text("#!/bin/sh\necho 'df: cannot read table of mounted file systems' >&2; exit 1\n")
    df.chmod(0o755)
    res = node(remote.export_command(_inv(tmp_path)))
    assert res.returncode == 0 and sorted(remote.parse(res.stdout).refs("short")) == sorted(REFS)


def test_no_k3s_or_no_manifest_is_a_quiet_skip(tmp_path):
    inv = _inv(tmp_path)
    env = {"PATH": "/usr/bin:/bin"}
    res = subprocess.run(["sh", "-c", remote.export_command(inv)], env=env, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and remote.parse(res.stdout).notes == ["k3s is not installed"]
    res = subprocess.run(["sh", "-c", remote.give_back_command(inv)], env=env, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and remote.parse(res.stdout).notes == ["none"]


def test_lab_ctr_export_fails_like_the_real_one(tmp_path, node):
    res = node(f"k3s ctr -n k8s.io images export {tmp_path}/x.tar docker.io/library/absent:1")
    assert res.returncode == 1 and 'image "docker.io/library/absent:1": not found' in res.stderr
    assert (tmp_path / "x.tar").read_bytes() == b""          # created before the export
    res = node(f"k3s ctr -n k8s.io images export --platform bad-platform {tmp_path}/y.tar {REFS[0]}")
    assert res.returncode == 1 and "invalid platform" in res.stderr
    assert node("k3s ctr -n default images ls -q").stdout.strip() == ""


# -- phases, recording runner ---------------------------------------------------------------


def test_backup_exports_on_every_node_with_quoted_paths_and_reports_counts(tmp_path):
    inv = _inv(tmp_path / "with space")
    kept = "drtool-images: kept 1000 docker.io/library/nginx:1.27\ndrtool-images: short ghcr.io/example/app:v2\n"
    runner = RecordingRunner(inv, [Reply("images export", stdout=kept)])
    ctx = context(inv, runner)
    result = backup.run(ctx)
    sent = [r for r in runner.recorded if "images export" in r.command]
    assert sorted(r.node for r in sent) == ["node1", "node2"]
    assert all("with space/cache" in r.command and r.command.startswith("sudo -n -- sh -c ") for r in sent)
    assert "images kept: node1: 1 (1000 B), disk short: 1 left to pull" in result.message
    assert ctx.state[image_cache.KEPT]["node2"] == {"images": 1, "bytes": 1000, "not_kept": ["ghcr.io/example/app:v2"]}


def test_export_failure_never_fails_the_backup(tmp_path):
    inv = _inv(tmp_path)
    runner = RecordingRunner(inv, [Reply("images export", exit_code=255, stderr="Connection reset")])
    result = backup.run(context(inv, runner))
    assert result.outcome == "ok" and "export exited 255" in result.message


def test_opt_out_sends_no_image_command(tmp_path):
    inv = _inv(tmp_path, keep=False)
    runner = RecordingRunner(inv)
    ctx = context(inv, runner)
    assert "images not kept (images.keep: false)" in backup.run(ctx).message
    ctx.state[image_cache.KEPT] = {"node2": {"images": 1, "bytes": 1, "not_kept": []}}
    join.run(ctx)
    assert not [r for r in runner.recorded if "drtool-images" in r.command]


def test_join_gives_back_before_the_install_and_reports_reused_and_pulled(tmp_path):
    inv = _inv(tmp_path)
    runner = RecordingRunner(inv, [Reply(remote.MANIFEST, stdout=(
        "drtool-images: reused 2048 docker.io/library/nginx:1.27\ndrtool-images: corrupt 10 ghcr.io/example/app:v2\n"))])
    ctx = context(inv, runner)
    ctx.state[image_cache.KEPT] = {"node2": {"images": 2, "bytes": 2058, "not_kept": ["quay.io/x/y:1"]}}
    result = join.run(ctx)
    cmds = [r.command for r in runner.recorded]
    assert len(cmds) == 2 and remote.MANIFEST in cmds[0] and "install" in cmds[1]
    assert result.details["images_reused"]["node2"]["images"] == 1
    assert result.details["images_reused"]["node2"]["pulled"] == ["ghcr.io/example/app:v2", "quay.io/x/y:1"]
    assert "images reused: node2 1 (2.0 KiB), pulled instead: ghcr.io/example/app:v2, quay.io/x/y:1" in result.message


def test_dry_run_shows_the_give_back(tmp_path):
    inv = _inv(tmp_path)
    steps = plan_phase(join, dry_context(inv))
    assert any(remote.MANIFEST in what for _, what in steps)
    assert any("images export" in what for _, what in plan_phase(backup, dry_context(inv)))


@pytest.mark.parametrize("cache", ["/var/lib/rancher/k3s/images", "/etc/rancher/k3s/x", "/var/lib", "relative"])
def test_cache_dir_inside_a_wiped_dir_or_too_broad_is_refused(cache):
    data = yaml.safe_load((REPO / "inventory" / "lab.yaml").read_text())
    data["images"] = {"cache_dir": cache}
    with pytest.raises(BadInput, match=r"images\.cache_dir"):
        parse_inventory(data, "inv.yaml")


@pytest.mark.parametrize("image, name", [
    # distribution/reference v0.6.0 normalize.go: docker.io by default, library/ for one component.
    ("nginx", "docker.io/library/nginx:latest"),
    ("nginx:1.27", "docker.io/library/nginx:1.27"),
    ("bitnami/redis:7.2", "docker.io/bitnami/redis:7.2"),
    ("index.docker.io/library/nginx:1", "docker.io/library/nginx:1"),
    ("ghcr.io/fluxcd/helm-controller:v1.1.0", "ghcr.io/fluxcd/helm-controller:v1.1.0"),
    ("quay.io/prometheus/node-exporter", "quay.io/prometheus/node-exporter:latest"),
    ("localhost/app", "localhost/app:latest"),
    ("registry.lan:5000/team/app:2", "registry.lan:5000/team/app:2"),
    ("Registry/app:1", "Registry/app:1"),                      # upper case: a registry name
    ("nginx@sha256:" + "a" * 64, "docker.io/library/nginx@sha256:" + "a" * 64),
    ("nginx:1.27@sha256:" + "a" * 64, "docker.io/library/nginx:1.27"),   # the tagged name is exported
])
def test_pod_images_are_named_as_containerd_names_them(image, name):
    assert remote.normalized(image) == name
    assert remote.normalized(name) == name


def test_images_in_use_are_grouped_by_node_from_spec_and_status():
    pods = {"items": [
        {"spec": {"nodeName": "node1", "initContainers": [{"image": "busybox:1.36"}],
                  "containers": [{"image": "nginx:1.27"}, {"image": "ghcr.io/x/app:v2"}]},
         "status": {"containerStatuses": [{"image": "docker.io/library/nginx:1.27"}]}},
        {"spec": {"nodeName": "node2", "containers": [{"image": "ghcr.io/x/app:v2"}]}},
        {"spec": {"containers": [{"image": "pending:1"}]}},         # not scheduled: nothing pulled
    ]}
    assert remote.images_in_use(pods) == {
        "node1": ["docker.io/library/busybox:1.36", "docker.io/library/nginx:1.27", "ghcr.io/x/app:v2"],
        "node2": ["ghcr.io/x/app:v2"]}


def test_export_keeps_only_images_in_use_and_pinned_ones(tmp_path, node):
    """Leftovers of old pods are not kept; what K3s imported (pinned) is, even with no pod using it."""
    old, pinned = "docker.io/library/nginx:1.25", "docker.io/rancher/mirrored-pause:3.6"
    store = tmp_path / "k3s" / lab_images.STORE
    store.write_text(json.dumps(json.loads(store.read_text()) + [old, pinned]))
    (tmp_path / "k3s" / lab_images.PINNED).write_text(json.dumps([pinned]))
    res = node(remote.export_command(_inv(tmp_path), in_use=[REFS[0], "docker.io/library/absent:1"]))
    assert res.returncode == 0, res.stderr
    out = remote.parse(res.stdout)
    assert sorted(out.refs("kept")) == sorted([REFS[0], pinned])
    assert sorted(out.refs("unused")) == sorted([REFS[1], old])
    rows = (tmp_path / "cache" / remote.MANIFEST).read_text().splitlines()
    assert sorted(r.split("\t")[3] for r in rows) == sorted([REFS[0], pinned])


def test_lab_ctr_lists_pinned_images_with_the_label_filter(tmp_path, node):
    (tmp_path / "k3s" / lab_images.PINNED).write_text(json.dumps([REFS[1]]))
    res = node("k3s ctr -n k8s.io images ls -q 'labels.\"io.cri-containerd.pinned\"==pinned'")
    assert res.returncode == 0 and res.stdout.split() == [REFS[1]]
    res = node("k3s ctr -n k8s.io images ls -q 'labels.\"other\"==x'")
    assert res.returncode == 1 and "not modelled" in res.stderr
