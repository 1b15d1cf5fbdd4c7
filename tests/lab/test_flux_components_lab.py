"""The lab's `flux bootstrap` installs Flux v2.4.0's component set, image automation on request."""
from __future__ import annotations

import pytest

from tests.lab.test_flux_sim import BOOTSTRAP, cluster  # noqa: F401  (module-scoped fixture)

pytestmark = pytest.mark.lab

EXTRA = "--components-extra=image-reflector-controller,image-automation-controller"


def test_unknown_extra_component_is_refused_like_flux(cluster):  # noqa: F811
    res = cluster.run_flux(*BOOTSTRAP, "--components-extra=tf-controller")
    assert res.returncode == 1
    assert "✗ component tf-controller is not available" in res.stderr


def test_bootstrap_applies_the_component_set_and_image_automation(cluster):  # noqa: F811
    res = cluster.run_flux(*BOOTSTRAP, EXTRA)
    assert res.returncode == 0, res.stderr
    assert "image-automation-controller: deployment ready" in res.stderr
    names = lambda g, k: {o["metadata"]["name"] for o in cluster.objects(g, k)}  # noqa: E731
    assert {"crd-controller-flux-system", "flux-edit-flux-system", "flux-view-flux-system"} <= \
        names("rbac.authorization.k8s.io", "ClusterRole")
    assert {"allow-egress", "allow-scraping", "allow-webhooks"} <= names("networking.k8s.io", "NetworkPolicy")
    assert "critical-pods-flux-system" in names("", "ResourceQuota")
    assert {"source-controller", "notification-controller", "webhook-receiver"} <= names("", "Service")
    info = cluster.server.threadsafe(lambda: cluster.server.store.kinds.by_kind("image.toolkit.fluxcd.io",
                                                                                  "ImageUpdateAutomation"))
    assert info is not None and info.versions == ("v1beta2", "v1beta1")
