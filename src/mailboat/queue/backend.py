"""Opening the queue a configuration names: the one place that knows which QueueStore class a
`[queue] backend` means and where its data lives, so nothing outside `queue/` names a backend.

The caller passes its `[queue]` section (anything with `backend` and `dsn`) and the data directory;
`queue/` does not import `config`, it only reads those two settings.
"""

from __future__ import annotations

import os
from typing import Protocol

from mailboat.queue.store import DEFAULT_LEASE, QueueStore, default_node


class QueueSettings(Protocol):
    """What opening a queue reads from the configuration's `[queue]` section."""

    @property
    def backend(self) -> str: ...

    @property
    def dsn(self) -> str: ...


def queue_location(settings: QueueSettings, data_dir: str) -> str:
    """Where the queue lives, for messages to the operator (a file for the single-node backend)."""
    return os.path.join(data_dir, "queue.db")


def queue_exists(settings: QueueSettings, data_dir: str) -> bool:
    """Whether a queue was ever made here (so that `queue list` need not create one)."""
    return os.path.exists(queue_location(settings, data_dir))


def prepare_store(settings: QueueSettings, data_dir: str) -> None:
    """Create or upgrade the queue's schema without opening it for work (before forking the
    workers, so that they never race to do it). QueueError when it cannot be done."""
    from mailboat.queue.sqlite import SqliteQueueStore

    SqliteQueueStore.prepare(queue_location(settings, data_dir))


def open_store(settings: QueueSettings, data_dir: str, *, node: str | None = None, runner: bool = False,
               shared: bool = False, lease: float = DEFAULT_LEASE) -> QueueStore:
    """Open the queue for work. QueueError (one line) when it cannot be opened.

    Args:
        node: the name this process's leases carry (SPEC `[cluster] node`; None: the host name).
        runner: this process runs the queue runner: it releases its node's leases left by its
            previous incarnation at open, and does the queue's background maintenance
            (checkpoints of the SQLite write-ahead log).
        shared: other processes of this node write the queue at the same time (`[server]
            workers`); one that is not the runner leaves that maintenance to the runner's.
            Neither flag: a short-lived tool (`mailboat queue`, `sendmail`), which maintains what
            it writes itself and never releases a lease.
        lease: how long a claim lasts, in seconds.
    """
    # backend = "postgresql" is not built yet: the single-node queue serves it meanwhile.
    from mailboat.queue.sqlite import SqliteQueueStore

    checkpoint = "background" if runner else "elsewhere" if shared else "auto"
    return SqliteQueueStore(queue_location(settings, data_dir), release_leases=runner, lease=lease,
                            shared=shared, checkpoint=checkpoint, node=node or default_node())
