"""Kubernetes access for drtool: readiness rules, the list+watch watcher, the dependency graph.

Import-light on purpose: import the submodule you need (``drtool.kube.readiness`` has no
dependency on the ``kubernetes`` package).
"""
