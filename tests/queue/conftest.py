"""The queue backends every store test runs against (test_store_contract.py, test_store_leases.py)."""

from __future__ import annotations

import pytest

from mailboat.queue.memory import MemoryQueueStore
from mailboat.queue.sqlite import SqliteQueueStore

T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "sqlite", "sqlite-shared", "sqlite-spooled"])
def backend(request, tmp_path):
    """(factory, persistent, clock): factory() opens the backend's queue (reopens for sqlite).

    factory(node=..., release_leases=True) opens it as that node, dropping the node's leases
    at open (sqlite); the memory store is one store in one process: the same store each time."""
    clock = Clock()
    if request.param == "memory":
        store = MemoryQueueStore(clock=clock, lease=60, node="n1")
        return (lambda **_: store), False, clock
    path = str(tmp_path / "queue.sqlite")
    shared = request.param == "sqlite-shared"  # as each process opens it with [server] workers > 1
    # sqlite-spooled: every body a file of its own (bodies.py), however small
    spool_min = 1 if request.param == "sqlite-spooled" else 1 << 30

    def factory(node: str = "n1", release_leases: bool = False) -> SqliteQueueStore:
        return SqliteQueueStore(path, clock=clock, lease=60, shared=shared, spool_min=spool_min, node=node,
                                release_leases=release_leases)

    return factory, True, clock
