"""In-memory QueueStore: the reference implementation of the contract, for tests and dev.

Nothing survives the process, so only the durability points of the contract do not apply.
Writes are still grouped like a real backend: every enqueue() issued in the same event-loop turn
is applied in one "commit" (counted in `stats.commits`), so group-commit tests run on it too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from mailboat.delivery.outcome import RecipientOutcome
from mailboat.mail.envelope import Envelope
from mailboat.queue.bodies import BodyCorrupt, checksum, verify
from mailboat.queue.codec import finished_detail, queued_detail
from mailboat.queue.model import QueueEvent, QueueItem, apply_outcomes, initial_recipients
from mailboat.queue.store import (
    DEFAULT_LEASE,
    DuplicateQueueIdError,
    LeaseLostError,
    LeaseTokens,
    QueueError,
    StoreStats,
    default_node,
)

log = logging.getLogger("mailboat.queue")
_FREE = (0.0, None)  # the lease of a message nobody claimed


class MemoryQueueStore:
    """QueueStore kept in dicts. See store.QueueStore for the meaning of every method.

    `node` names the claimer in lease tokens (one process: there is no other node to share with).
    """

    def __init__(self, *, clock: Callable[[], float] = time.time, lease: float = DEFAULT_LEASE,
                 node: str | None = None) -> None:
        self.stats = StoreStats()
        self._clock = clock
        self._lease = lease
        self._tokens = LeaseTokens(node or default_node())
        self._items: dict[str, QueueItem] = {}
        self._bodies: dict[str, bytes] = {}
        self._checksums: dict[str, bytes] = {}  # checked at load_message(), as the SQLite store does
        self._corrupt: dict[str, QueueItem] = {}  # set aside: kept for the operator, never delivered
        self._leases: dict[str, tuple[float, str]] = {}  # queue id -> (until, token)
        self._events: dict[str, list[QueueEvent]] = {}
        self._pending: list[tuple[str, Envelope, bytes, asyncio.Future[None]]] = []
        self._closed = False

    async def enqueue(self, queue_id: str, envelope: Envelope, message: bytes, *,
                      claim: bool = False) -> QueueItem | None:
        self._check_open()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._commit)
        self._pending.append((queue_id, envelope, bytes(message), future))
        await future
        if not claim:
            return None
        token = self._tokens()
        item = replace(self._items[queue_id], lease=token)
        self._leases[queue_id] = (item.arrival + self._lease, token)
        return item

    def _commit(self) -> None:
        batch, self._pending = self._pending, []
        self.stats.commits += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        now = self._clock()
        for queue_id, envelope, message, future in batch:
            if queue_id in self._items or queue_id in self._corrupt:
                error: Exception | None = DuplicateQueueIdError(f"{queue_id}: queue id already in use")
            else:
                error = None
                self._items[queue_id] = QueueItem(
                    queue_id, envelope, len(message), now, now, recipients=initial_recipients(envelope)
                )
                self._bodies[queue_id] = message
                self._checksums[queue_id] = checksum(message)
                self._add_event(queue_id, now, "queued", queued_detail(envelope, len(message), message))
                self.stats.enqueued += 1
            if not future.done():
                future.set_exception(error) if error else future.set_result(None)

    async def claim_due(self, now: float, limit: int) -> list[QueueItem]:
        self._check_open()
        due = [
            item for item in self._items.values()
            if not item.held and item.next_attempt <= now and self._leases.get(item.queue_id, _FREE)[0] <= now
            and not item.is_done
        ]
        due.sort(key=lambda item: (item.next_attempt, item.arrival))
        token = self._tokens()
        claimed = [replace(item, lease=token) for item in due[:limit]]
        for item in claimed:
            self._leases[item.queue_id] = (now + self._lease, token)
        return claimed

    async def renew(self, queue_id: str, lease: str, now: float) -> bool:
        self._check_open()
        if queue_id not in self._items or self._leases.get(queue_id, _FREE)[1] != lease:
            return False
        self._leases[queue_id] = (now + self._lease, lease)
        return True

    async def record_outcomes(
        self, queue_id: str, outcomes: list[RecipientOutcome], next_attempt: float | None,
        claimed: QueueItem | None = None, lease: str | None = None,
    ) -> None:
        self._check_open()
        item = self._items.get(queue_id)
        if item is None:
            return
        if lease is not None and self._leases.get(queue_id, _FREE)[1] != lease:
            raise LeaseLostError(f"{queue_id}: lease {lease} lost; outcomes not recorded")
        self.stats.commits += 1
        recipients = apply_outcomes(item.recipients, outcomes)
        at = max((o.at for o in outcomes), default=self._clock())
        item = replace(item, recipients=recipients, attempts=item.attempts + 1,
                       next_attempt=at if next_attempt is None else next_attempt)
        self._items[queue_id] = item
        self._leases.pop(queue_id, None)
        if item.is_done:
            await self.finish(queue_id, at)

    async def finish(self, queue_id: str, at: float) -> None:
        item = self._items.pop(queue_id, None)
        if item is None:
            return  # gone, or set aside (it waits for the operator)
        self._bodies.pop(queue_id, None)
        self._checksums.pop(queue_id, None)
        self._leases.pop(queue_id, None)
        self._add_event(queue_id, at, "finished", finished_detail(item))

    async def load_message(self, queue_id: str) -> bytes:
        self._check_open()
        if queue_id in self._corrupt:
            raise KeyError(queue_id)
        try:
            return verify(queue_id, self._bodies[queue_id], self._checksums.get(queue_id))
        except BodyCorrupt as exc:
            self._set_aside(queue_id, str(exc))
            raise KeyError(queue_id) from None

    def _set_aside(self, queue_id: str, reason: str) -> None:
        log.warning("%s: corrupt queue record set aside: %s", queue_id, reason)
        item = self._items.pop(queue_id, None)
        if item is not None:
            self._corrupt[queue_id] = item
            self._leases.pop(queue_id, None)
        self._add_event(queue_id, self._clock(), "corrupt", {"reason": reason})

    async def get(self, queue_id: str) -> QueueItem | None:
        self._check_open()
        return self._items.get(queue_id)

    async def delete(self, queue_id: str, at: float) -> bool:
        if self._items.pop(queue_id, None) is None and self._corrupt.pop(queue_id, None) is None:
            return False
        self._bodies.pop(queue_id, None)
        self._checksums.pop(queue_id, None)
        self._leases.pop(queue_id, None)
        self._add_event(queue_id, at, "deleted", {})
        return True

    async def hold(self, queue_id: str, at: float) -> bool:
        return self._update(queue_id, at, "hold", held=True)

    async def release(self, queue_id: str, at: float) -> bool:
        return self._update(queue_id, at, "release", held=False, next_attempt=at)

    async def retry_now(self, queue_id: str, at: float) -> bool:
        item = self._items.get(queue_id)
        if item is None or item.held:
            return False
        return self._update(queue_id, at, "retry", next_attempt=at)

    def _update(self, queue_id: str, at: float, kind: str, **changes: Any) -> bool:
        item = self._items.get(queue_id)
        if item is None:
            return False
        self._items[queue_id] = replace(item, **changes)
        self._add_event(queue_id, at, kind, {})
        return True

    async def mark_delay_warned(self, queue_id: str, at: float) -> bool:
        item = self._items.get(queue_id)
        if item is None:
            return False
        self._items[queue_id] = replace(item, delay_warned=True)
        return True

    async def record_event(self, queue_id: str, at: float, kind: str, detail: dict[str, Any]) -> None:
        self._add_event(queue_id, at, kind, dict(detail))

    def _add_event(self, queue_id: str, at: float, kind: str, detail: dict[str, Any]) -> None:
        self._events.setdefault(queue_id, []).append(QueueEvent(queue_id, at, kind, detail))

    async def prune_events(self, before: float, limit: int = 1000) -> int:
        self._check_open()
        old = sorted((e.at, qid, i) for qid, events in self._events.items()
                     if qid not in self._items and qid not in self._corrupt
                     for i, e in enumerate(events) if e.at < before)[:limit]
        doomed: dict[str, set[int]] = {}
        for _, qid, i in old:
            doomed.setdefault(qid, set()).add(i)
        for qid, indexes in doomed.items():
            kept = [e for i, e in enumerate(self._events[qid]) if i not in indexes]
            if kept:
                self._events[qid] = kept
            else:
                del self._events[qid]
        return len(old)

    async def events(self, queue_id: str) -> list[QueueEvent]:
        return sorted(self._events.get(queue_id, []), key=lambda e: e.at)

    async def sweep_bodies(self) -> int:
        return 0

    async def close(self) -> None:
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise QueueError("queue store is closed")

    # Last in the class so that `list[...]` annotations above mean the builtin.
    async def list(self) -> list[QueueItem]:
        self._check_open()
        return sorted(self._items.values(), key=lambda item: (item.arrival, item.queue_id))
