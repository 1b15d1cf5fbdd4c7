from drtool.tasks import ns  # noqa: F401  (Invoke finds the collection by this name)
