"""What drtool knows about a Flux GitOps repository read from a local checkout.

``check`` finds, before a wipe, what Git alone cannot rebuild (``inv gitops.check`` and the
preflight of ``inv rebuild`` / ``inv drill``). ``sources`` is the one place that reaches the
kustomize builder, the API surface and the chart catalog the check relies on.
"""
