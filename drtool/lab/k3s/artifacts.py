"""The K3s "release artifacts" of the lab, and the node-OS programs K3s needs.

``build_artifacts`` writes what drtool uploads for an air-gapped install:
``install.sh`` (with the killall/uninstall scripts embedded, as upstream's is),
``k3s`` (a Python script that runs :mod:`drtool.lab.k3s.main`) and
``k3s-airgap-images.tar`` (a small docker-save-shaped placeholder).
``systemctl_program`` / ``journalctl_program`` give the text of the node-local
stand-ins ``inv lab.up`` drops into each node's ``/usr/local/bin``.
"""
from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

from drtool.lab.k3s import K3S_VERSION
from drtool.lab.k3s.images import tar_member

TEMPLATES = Path(__file__).with_name("templates")
REPO = Path(__file__).resolve().parents[3]

IMAGES = (
    "docker.io/rancher/klipper-helm:v0.9.3-build20241008",
    "docker.io/rancher/klipper-lb:v0.4.9",
    "docker.io/rancher/local-path-provisioner:v0.0.30",
    "docker.io/rancher/mirrored-coredns-coredns:1.11.3",
    "docker.io/rancher/mirrored-library-busybox:1.36.1",
    "docker.io/rancher/mirrored-library-traefik:2.11.10",
    "docker.io/rancher/mirrored-metrics-server:v0.7.2",
    "docker.io/rancher/mirrored-pause:3.6",
)


def _python_launcher(python: str, lab_dir: Path | None, module: str, call: str) -> str:
    lab = repr(str(lab_dir)) if lab_dir else "None"
    return (
        f"#!{python}\n"
        f"# Lab build: runs {module} from the drtool checkout.\n"
        "import sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        f"from {module} import main\n"
        f"sys.exit({call.format(lab=lab)})\n"
    )


def k3s_program(lab_dir: str | os.PathLike, python: str) -> str:
    """Text of the ``k3s`` binary stand-in; it knows the lab directory to find lab.json."""
    return _python_launcher(python, Path(lab_dir).resolve(), "drtool.lab.k3s.main", "main(sys.argv, lab_dir={lab})")


def systemctl_program(lab_dir: str | os.PathLike, python: str) -> str:
    """Text of the node-local ``systemctl`` stand-in (put it in each node's bin dir, mode 0755)."""
    return _python_launcher(python, None, "drtool.lab.k3s.systemctl", "main(sys.argv[1:], prog='systemctl')")


def journalctl_program(lab_dir: str | os.PathLike, python: str) -> str:
    """Text of the node-local ``journalctl`` stand-in (reads the unit logs systemctl writes)."""
    return _python_launcher(python, None, "drtool.lab.k3s.systemctl", "main(sys.argv[1:], prog='journalctl')")


def node_os_programs(lab_dir: str | os.PathLike, python: str) -> dict[str, str]:
    """Every node-local program the lab's "OS" needs in /usr/local/bin: name -> text."""
    return {"systemctl": systemctl_program(lab_dir, python), "journalctl": journalctl_program(lab_dir, python)}


def install_script() -> str:
    """The install script with the killall and uninstall scripts embedded."""
    text = (TEMPLATES / "install.sh").read_text(encoding="utf-8")
    killall = (TEMPLATES / "killall.sh").read_text(encoding="utf-8").rstrip("\n")
    uninstall = (TEMPLATES / "uninstall.sh").read_text(encoding="utf-8").rstrip("\n")
    return text.replace("@KILLALL_SH@", killall).replace("@UNINSTALL_SH@", uninstall)


def images_tarball() -> bytes:
    """A small, reproducible docker-save-shaped tarball naming the K3s system images."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        def add(name: str, data: bytes) -> None:
            tar_member(tar, name, data)
        manifest = [{"Config": f"{i}.json", "RepoTags": [img], "Layers": []} for i, img in enumerate(IMAGES)]
        add("manifest.json", json.dumps(manifest, indent=1).encode())
        for i, img in enumerate(IMAGES):
            add(f"{i}.json", json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {
                "io.drtool.lab.image": img}}}).encode())
        add("k3s-version", f"{K3S_VERSION}\n".encode())
    return buf.getvalue()


def _write(path: Path, data: bytes, mode: int) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return path


def build_artifacts(lab_dir: str | os.PathLike, python: str) -> dict[str, Path]:
    """Write ``<lab_dir>/artifacts/{install.sh,k3s,k3s-airgap-images.tar}``; returns name -> path."""
    out = Path(lab_dir).resolve() / "artifacts"
    out.mkdir(parents=True, exist_ok=True)
    return {
        "install.sh": _write(out / "install.sh", install_script().encode(), 0o755),
        "k3s": _write(out / "k3s", k3s_program(lab_dir, python).encode(), 0o755),
        "k3s-airgap-images.tar": _write(out / "k3s-airgap-images.tar", images_tarball(), 0o644),
    }
