"""Knowledge about GitOps repositories that is independent of any cluster: what Helm charts install."""
