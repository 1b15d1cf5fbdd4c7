"""GitOps repository logic shared by drtool and the lab: how Flux builds and applies a repository."""
