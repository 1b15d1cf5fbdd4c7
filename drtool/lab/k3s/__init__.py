"""The simulated K3s: the release artifacts drtool installs on lab nodes.

The lab plays the three files of an air-gapped K3s install (``install.sh``, the ``k3s``
binary and the images tarball) so that drtool installs, joins, uninstalls and backs up
lab nodes exactly as it does real ones. Behind those interfaces:

- ``k3s server`` serves the lab Kubernetes API on the node's address, writes the token
  files, the kubeconfig and the node password like K3s does (``server.py``);
- ``k3s agent`` joins with the cluster token and a node password (``agent.py``, kept
  stdlib-only so fifty of them start fast);
- ``systemctl.py`` is the node-local stand-in for systemd that the install script drives;
- ``artifacts.py`` writes the artifacts into the lab directory.

Every path the programs touch goes through ``rootfs.RootFS`` so the same code runs on a
lab node (where ``/`` is the node's own overlay) or in a test directory.
"""
from __future__ import annotations

#: The version the simulated binary reports (``k3s --version``).
K3S_VERSION = "v1.31.4+k3s1"
K3S_COMMIT = "a562d090"
