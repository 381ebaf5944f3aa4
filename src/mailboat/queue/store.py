"""The QueueStore protocol: the one surface every queue backend implements, and its errors.

Backends: `memory.py` (tests, dev), `sqlite.py` (single node), `postgres.py` (cluster, later).
`tests/queue/test_store_contract.py` runs one suite over all of them, so they cannot drift.

Durability contract (the text for docs/architecture.md)
-------------------------------------------------------
1. `enqueue()` returns only after the envelope and the message bytes are on stable storage
   (fsync'd, in one transaction). The SMTP session sends "250 ... queued as ID" only after it
   returns; RFC 5321 §6.1 makes that 250 a promise not to lose the message. (A large message
   for local mailboxes only may be delivered before it is queued, runner.deliver_first: its
   250 then follows the durable Maildir copies, and it is enqueued only if one is missing.)
2. If enqueue() raises, nothing of that message is stored: the client gets a 4xx and retries.
   QueueFullError (disk or quota full) maps to 452 4.3.1, QueueWriteError (I/O error, read-only
   or corrupt database) to 451 4.3.0, DuplicateQueueIdError to 451 4.3.0 with a new id.
3. Group commit: concurrent enqueue() calls share one transaction and one fsync. A caller waits
   for the commit holding its message, never for later ones; latency stays one commit.
4. A recipient is marked delivered only after its transport reported success (the transport
   fsyncs first). A crash between the two re-delivers it: at worst a duplicate, never a loss
   (the same trade-off as qmail and Postfix; RFC 5321 §6.1 accepts it).
5. `claim_due()` hands out a lease; until it expires, no other caller gets that message. A
   runner that crashes holding leases loses nothing: the lease expires and the message is
   claimed again (the serving process of a node drops that node's stale leases at start-up,
   and only those: another node's may be live).
6. `record_outcomes()` is atomic: all outcomes of one run and the next attempt time commit
   together; when no recipient is left open, the message leaves the queue in the same
   transaction and a compact "finished" event remains for `mailboat journey`. Given the lease
   token of the claim, it changes nothing when the message was claimed again since (the lease
   expired and another runner took it): LeaseLostError, and the other runner's outcomes stand.
7. A record that cannot be decoded is set aside (never delivered, never fatal) with a log line.
8. Journey events (`record_event`) are written in the next group commit without making the
   caller wait; an event recorded before an enqueue() by the same task commits no later.

Leases
------
Every claim (claim_due, enqueue with claim=True) makes a lease token, unique to that claim, and
returns it as `QueueItem.lease`; the store keeps it with the message, with the name of the node
that claimed (`node`, a constructor argument of every backend: the `[cluster] node` name, the
host name by default). The writes that follow a claim (record_outcomes, renew) name the token,
and the backend checks it in the same statement that writes (a condition of its UPDATE or
DELETE, no read first), so a runner that lost its lease cannot overwrite the outcomes of the
runner that holds it now. A lease that expired but was not claimed again is still its holder's:
its outcomes are recorded (nobody else delivered meanwhile).
"""

from __future__ import annotations

import itertools
import secrets
import socket
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from mailboat.delivery.outcome import RecipientOutcome
from mailboat.mail.envelope import Envelope
from mailboat.queue.model import QueueEvent, QueueItem

DEFAULT_LEASE = 300.0  # seconds; longer than any single delivery run (SMTP DATA timeout is 10 min
# on the client side, but our runner bounds a run well below this: see runner.py)


class QueueError(Exception):
    """Base of queue failures. The message is for logs, never for SMTP clients."""


class QueueFullError(QueueError):
    """No space left (ENOSPC, EDQUOT, SQLITE_FULL): 452 4.3.1 Insufficient system storage."""


class QueueWriteError(QueueError):
    """The write failed for another reason (EIO, read-only, corrupt database): 451 4.3.0."""


class QueueSyncError(QueueWriteError):
    """The write committed but the sync that was to make it durable failed: nothing may be
    promised (451 4.3.0), yet the record may survive (a retry may duplicate it)."""


class DuplicateQueueIdError(QueueError):
    """enqueue() with an id already in the queue; the stored message is left untouched."""


class LeaseLostError(QueueError):
    """A write named a lease that is no longer the message's: it expired and another claim took
    the message. Nothing was written; the current holder's outcomes stand."""


def default_node() -> str:
    """This node's name when none is configured: the host name (SPEC `[cluster] node = ""`)."""
    return socket.gethostname() or "localhost"


class LeaseTokens:
    """Lease tokens of one store instance: "NODE/RANDOM/N", unique to each claim (the random part
    tells this instance from the node's other processes and from its earlier incarnations)."""

    def __init__(self, node: str) -> None:
        self.node = node
        self._prefix = f"{node}/{secrets.token_hex(4)}/"
        self._count = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._count)}"


@dataclass(slots=True)
class StoreStats:
    """Counters for /metrics and for tests that check group commit."""

    commits: int = 0  # write transactions committed
    enqueued: int = 0  # messages enqueued
    largest_batch: int = 0  # most operations in one transaction


@runtime_checkable
class QueueStore(Protocol):
    """A durable queue of messages with per-recipient state.

    All methods are coroutines and safe to call concurrently from many tasks of one event loop.
    Times are Unix seconds (float) supplied by the caller where the contract depends on them
    (`now`, `at`), so tests and the runner control the clock; the store stamps `arrival` with
    its own clock (constructor argument) at enqueue.
    """

    stats: StoreStats

    async def enqueue(self, queue_id: str, envelope: Envelope, message: bytes, *,
                      claim: bool = False) -> QueueItem | None:
        """Store a new message durably; return only once it is on stable storage.

        Every recipient starts PENDING and the message is due at once. Also records a "queued"
        journey event (sender, size, client, and the header section bounded to
        codec.MAX_EVENT_HEADERS, so the Received chain outlives the message) in the same
        transaction.

        claim=True stores the message already leased to the caller, exactly as if claim_due()
        had returned it at its arrival, and returns that QueueItem (with its lease token): the
        process that accepted
        the message delivers it at once from the bytes it still holds (no claim query, no
        re-read), and no other runner takes it while the lease runs. claim=False returns None.

        Raises:
            QueueFullError, QueueWriteError: nothing of this message was stored.
            DuplicateQueueIdError: the id exists; the existing message is untouched.
        """
        ...

    async def claim_due(self, now: float, limit: int) -> list[QueueItem]:
        """Lease up to `limit` messages that have open recipients, are due (next_attempt <= now),
        not held, and not leased to someone else; oldest due first.

        The lease lasts until `now + lease` (backend setting, default DEFAULT_LEASE) or until
        record_outcomes() for that message. A message is never returned to two callers while a
        lease runs; after expiry (e.g. the claimer crashed) it is claimable again. Each item
        carries the claim's lease token (`QueueItem.lease`).
        """
        ...

    async def record_outcomes(
        self, queue_id: str, outcomes: list[RecipientOutcome], next_attempt: float | None,
        claimed: QueueItem | None = None, lease: str | None = None,
    ) -> None:
        """Record one delivery run atomically and release the lease.

        `lease`: the token of the caller's claim (`QueueItem.lease`). When the message has been
        claimed again since, nothing is written and LeaseLostError is raised. None: no check (an
        operator's or a test's write; a runner always names its lease).

        `claimed`: the item as the caller claimed it. Its lease means nobody else has written
        outcomes since, so a backend may use its recipients instead of reading and decoding the
        stored record (it must still ignore a message deleted or set aside meanwhile).

        Each outcome updates its recipient's state and appends to its attempt history (see
        model.apply_outcomes for alias expansions). The run counter goes up by one. If open
        recipients remain, the message is due again at `next_attempt` (None: the caller must
        have made every outcome final; open ones are then left due at once). If none remain,
        the message is finished in the same transaction (see finish()).
        Unknown queue_id: ignored (the message was deleted while being delivered).
        """
        ...

    async def renew(self, queue_id: str, lease: str, now: float) -> bool:
        """Extend the lease `lease` on a message to `now` + the backend's lease time (a delivery
        that runs long). False, and nothing changed, when the lease is no longer the message's
        (claimed again, recorded, or the message is gone). Lazy like the claim itself."""
        ...

    async def finish(self, queue_id: str, at: float) -> None:
        """Remove the message and its bytes, keeping a "finished" event with each recipient's
        final state for the journey. Idempotent."""
        ...

    async def load_message(self, queue_id: str) -> bytes:
        """The message bytes exactly as enqueued. KeyError if the message is not queued."""
        ...

    async def get(self, queue_id: str) -> QueueItem | None:
        """The message's current state, or None (never queued, finished, deleted or set aside)."""
        ...

    async def delete(self, queue_id: str, at: float) -> bool:
        """Remove a message without delivering it (operator action). False if not queued."""
        ...

    async def hold(self, queue_id: str, at: float) -> bool:
        """Put a message on hold: never claimed until released. False if not queued."""
        ...

    async def release(self, queue_id: str, at: float) -> bool:
        """Take a message off hold; it becomes due at once. False if not queued."""
        ...

    async def retry_now(self, queue_id: str, at: float) -> bool:
        """Make a queued (not held) message due at once. False if not queued or held."""
        ...

    async def mark_delay_warned(self, queue_id: str, at: float) -> bool:
        """Remember durably that the delay-warning DSN was sent (QueueItem.delay_warned), so a
        restart never sends it twice. Returns once committed. False if not queued."""
        ...

    async def record_event(self, queue_id: str, at: float, kind: str, detail: dict[str, Any]) -> None:
        """Append a journey event (detail must be JSON-serialisable). Does not wait for disk."""
        ...

    async def prune_events(self, before: float, limit: int = 1000) -> int:
        """Forget up to `limit` journey events older than `before` of messages no longer queued,
        oldest first; returns how many went (call again while it returns `limit`). Bounded so
        that one call never holds the queue for long."""
        ...

    async def events(self, queue_id: str) -> list[QueueEvent]:
        """All journey events of a message, oldest first, also after it finished."""
        ...

    async def sweep_bodies(self) -> int:
        """Remove stored message bodies that no record refers to any more (what a crash between
        writing a body and its record leaves); returns how many. 0 for backends that keep the
        bytes in the record's transaction."""
        ...

    async def close(self) -> None:
        """Finish pending writes and release resources. Idempotent."""
        ...

    # Last in the class so that `list[...]` annotations above mean the builtin.
    async def list(self) -> list[QueueItem]:
        """Every queued message (held ones included), in arrival order."""
        ...
