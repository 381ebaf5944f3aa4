"""The one way into the queue: a message a client finished sending is `put()` here.

Theory of operation. A receiving session announces each transaction when its MAIL is accepted
(`expect()`, an `Expected` it closes when the transaction ends without a message), and hands
the finished message to `put()` with the queue id its Received header names. Everything after
that is the queue's business, decided here and nowhere else (chasquid's `queue.Put`):

1. the journey's "connect" event is recorded (a lazy write: it rides the next group commit);
2. deliver first: a message of DELIVER_FIRST_MIN bytes or more whose recipients are all local
   mailboxes is delivered before it is queued (runner.deliver_first), and queued only if some
   copy is missing (its bytes are then written once, to the mailbox, instead of twice);
3. enqueue: `store.enqueue()` returns once envelope and bytes are on stable storage (the group
   commit shares one fsync among the sessions finishing together). It is enqueued already
   claimed when this process's runner can deliver it at once, or after a first attempt (whose
   outcomes are recorded under that lease);
4. `accepted()` is called: the message is safe (durable, or in every mailbox), and the caller
   logs and answers its 250 there, before any delivery of it can log a line;
5. hand-off: the runner records the first attempt, or delivers the message from the bytes in
   memory (no claim query, no re-read), or is woken to claim it (`wake`: this process's
   runner, or a byte on the pipe to the process that runs the queue).

Group commit company. The store's group commit waits a few milliseconds for writes it knows
are coming (queue/groupcommit.py, "Lingering for company"); `coming()` is that count: the
transactions announced whose message has not been put (or whose transaction ended) yet. An
`Expected` is closed by `put()` before its first write, so the last one expected ends the wait.

Errors: `put()` raises QueueFullError (disk or quota full: 452 4.3.1) or another QueueError
(451 4.3.0); nothing of the message was then stored, and `accepted()` was not called.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol, Self

from mailboat.mail.envelope import Envelope
from mailboat.queue.model import QueueItem
from mailboat.queue.runner import DELIVER_FIRST_MIN, FirstAttempt
from mailboat.queue.store import QueueError, QueueFullError, QueueStore

__all__ = ["DeliverFirst", "Expected", "Handoff", "Intake", "QueueError", "QueueFullError"]

# The lines below are the receiving side's, as they were when the session wrote them.
log = logging.getLogger("mailboat.smtpd")


class Handoff(Protocol):
    """Who delivers a message the moment it is queued (QueueRunner, in the process that runs
    the queue): `has_room` says whether it would start at once, `deliver_now` starts it."""

    def has_room(self, size: int = 0) -> bool: ...

    def deliver_now(self, item: QueueItem, message: bytes) -> None: ...


class DeliverFirst(Protocol):
    """Who delivers a large message to local mailboxes before it is queued (QueueRunner, in
    every process; see runner.py, "Delivering before queueing")."""

    async def deliver_first(self, queue_id: str, envelope: Envelope, message: bytes) -> FirstAttempt | None: ...

    async def finish_first(self, attempt: FirstAttempt) -> None: ...

    def record_first(self, item: QueueItem, attempt: FirstAttempt) -> None: ...


class Expected:
    """A transaction under way (MAIL accepted) whose message the intake is waiting for.

    Counted in `Intake.coming()` until closed: by `Intake.put()`, or by `close()` when the
    transaction ends any other way (RSET, a refused message, a client gone). Closing twice is
    harmless; `with intake.expect():` closes it at the end of the block.
    """

    __slots__ = ("_intake",)

    def __init__(self, intake: Intake) -> None:
        self._intake: Intake | None = intake
        intake.transactions += 1

    def close(self) -> None:
        intake = self._intake
        if intake is not None:
            self._intake = None
            intake.transactions -= 1

    @property
    def closed(self) -> bool:
        return self._intake is None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Intake:
    """The single entrance to the queue (see the module docstring for the steps of `put`).

    Args:
        store: the QueueStore messages are enqueued in.
        handoff: this process's runner when this process runs the queue: a message it has room
            for is enqueued claimed and handed to it with its bytes. None: other processes'.
        deliver_first: who delivers large local messages before they are queued (the runner;
            every process has one). None: every message is queued first.
        wake: called after an enqueue that was not handed over (runner.wake, or a wake-up of
            the process that runs the queue).
    """

    __slots__ = ("deliver_first", "handoff", "store", "transactions", "wake")

    def __init__(self, store: QueueStore, *, handoff: Handoff | None = None,
                 deliver_first: DeliverFirst | None = None, wake: Callable[[], None] | None = None) -> None:
        self.store = store
        self.handoff = handoff
        self.deliver_first = deliver_first
        self.wake = wake
        # Transactions announced (expect()) whose message is not put yet: see coming().
        self.transactions = 0

    def expect(self) -> Expected:
        """Announce a transaction: its message may follow (close the result if it does not)."""
        return Expected(self)

    def coming(self) -> int:
        """How many messages are announced and not put yet: what the store's group commit
        lingers for (SqliteQueueStore.expect_company)."""
        return self.transactions

    async def put(self, queue_id: str, envelope: Envelope, message: bytes, *,
                  accepted: Callable[[], None], expected: Expected | None = None,
                  connect: dict[str, Any] | None = None, connected_at: float = 0.0) -> None:
        """Take a finished message in: deliver it first, or enqueue it durably, then hand it on.

        Args:
            queue_id: the message's id (already in its Received header).
            envelope, message: what to deliver; `message` is the bytes as they will be stored.
            accepted: called once the message is safe, before the runner is handed it; the
                caller logs and answers its 250 there.
            expected: the announcement of this transaction, closed before the first write.
            connect, connected_at: the journey's "connect" event (who sent it, from when).

        Raises:
            QueueFullError: no room (452 4.3.1); nothing stored, `accepted` not called.
            QueueError: a write failed (451 4.3.0); likewise.
        """
        if expected is not None:
            expected.close()  # its writes follow now: nobody need wait for this transaction any more
        store = self.store
        if connect is not None:
            await store.record_event(queue_id, connected_at, "connect", connect)
        first = await self._deliver_first(queue_id, envelope, message)
        if first is not None and first.complete:  # every copy is in its mailbox: never queued
            accepted()
            try:
                assert self.deliver_first is not None  # the first attempt came from it
                await self.deliver_first.finish_first(first)
            except Exception:  # delivered and durable: the 250 stands; only the records suffer
                log.exception("%s: recording the delivery failed", queue_id)
            return
        handoff = self.handoff
        # (claimed after a first attempt too: record_first records it under the lease)
        claim = first is not None or (handoff is not None and handoff.has_room(len(message)))
        item = await store.enqueue(queue_id, envelope, message, claim=claim)
        accepted()
        if first is not None and item is not None:
            # Some copies were delivered before queueing: that was its first run, recorded
            # now; the others are due at their retry time (nothing for a runner to do sooner).
            assert self.deliver_first is not None  # the first attempt came from it
            self.deliver_first.record_first(item, first)
        elif item is not None and handoff is not None:
            handoff.deliver_now(item, message)
        elif self.wake is not None:
            self.wake()

    async def _deliver_first(self, queue_id: str, envelope: Envelope, message: bytes) -> FirstAttempt | None:
        """A large message for local mailboxes delivered before it is queued; None when that
        does not apply (size, routes) or failed (it is then queued as usual)."""
        if self.deliver_first is None or len(message) < DELIVER_FIRST_MIN:
            return None
        try:
            return await self.deliver_first.deliver_first(queue_id, envelope, message)
        except Exception:  # a bug: queue it as usual (a duplicate at worst)
            log.exception("%s: delivery before queueing failed; queueing it", queue_id)
            return None
