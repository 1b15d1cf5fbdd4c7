"""Running one function per node in parallel, and the per-node results it gives back.

Like Fabric's ``GroupResult``: every node maps to its value or to the drtool error it
raised, ``failed`` holds only the errors, and ``raise_on_failure`` is the one way a
caller turns failures into an exception (``NodesFailed``, typed after the dominant node
error, so an interrupt on one node still exits 130 and a host-key error keeps its code).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Generic, Iterable, Iterator, Mapping, TypeVar

from drtool.errors import DrtoolError, NodesFailed
from drtool.inventory import Node

T = TypeVar("T")


class NodeResults(Mapping[str, "T | DrtoolError"], Generic[T]):
    """``{node name: value or DrtoolError}`` in the order the nodes were given."""

    def __init__(self, items: Mapping[str, "T | DrtoolError"]):
        self._items = dict(items)

    def __getitem__(self, name: str) -> "T | DrtoolError":
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def failed(self) -> dict[str, DrtoolError]:
        """Only the nodes whose function raised, with their errors."""
        return {k: v for k, v in self._items.items() if isinstance(v, DrtoolError)}

    @property
    def succeeded(self) -> dict[str, T]:
        """Only the nodes that succeeded, with their values."""
        return {k: v for k, v in self._items.items() if not isinstance(v, DrtoolError)}

    def raise_on_failure(self, what: str) -> dict[str, T]:
        """The values when every node succeeded; else raise ``NodesFailed`` ("{what} failed: ...")."""
        failed = self.failed
        if failed:
            raise NodesFailed.of(what, failed)
        return self.succeeded


def fan_out(nodes: Iterable[Node], fn: Callable[[Node], T], max_workers: int = 32) -> NodeResults[T]:
    """Run ``fn(node)`` for every node in parallel.

    A ``DrtoolError`` is kept as that node's result; any other exception is a programming
    error and propagates.
    """
    nodes = list(nodes)
    if not nodes:
        return NodeResults({})

    def call(node: Node) -> "T | DrtoolError":
        try:
            return fn(node)
        except DrtoolError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=min(max_workers, len(nodes))) as pool:
        futures = {n.name: pool.submit(call, n) for n in nodes}
        return NodeResults({name: f.result() for name, f in futures.items()})
