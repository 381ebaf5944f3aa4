"""SQLite QueueStore: the single-node durable queue (stdlib sqlite3, WAL, group commit).

Theory of operation
-------------------
Every write (enqueue, claim, outcomes, hold, events, ...) is a small function handed to the
group-commit writer (`groupcommit.py`): ONE connection on which everything submitted in one turn
of the event loop runs in a single transaction, and one sync thread whose fsync of the WAL
answers every durable commit that finished before it began: 20 sessions finishing DATA together
cost one fsync rather than twenty. Claims are writes too (they set the lease), so they are serialised
with everything else and a message can never be claimed twice at once.

Durability: `journal_mode=WAL`; the writer commits with synchronous=NORMAL and fsyncs the WAL
itself, outside the write lock, before it answers an enqueue or an operator action (see
groupcommit.py; records of delivery, leases and journey events are lazy writes that skip the
fsync: losing one costs a duplicate delivery at worst). (NORMAL alone would skip that fsync and
survive a process crash but not a power cut, which would make our 250 untruthful.) The bytes of
a message under SPOOL_MIN are a BLOB in the same transaction as the envelope, so one fsync
covers both and a failed write leaves neither behind. Larger ones are spooled: a file of their
own beside the database, written before the row and made durable with it by one syncfs
(bodies.py says why and how a crash is handled).

Failures: a batch that fails with a disk-level error is replayed one operation per transaction
(groupcommit.py), so a caller fails only for its own message, with QueueFullError
(SQLITE_FULL) or QueueWriteError (I/O error, read-only, corrupt file) and nothing stored.

Reads (get, list, load_message, events) use separate read-only connections in worker threads;
WAL lets them run beside the writer. A record that fails to decode is set aside
(status 'corrupt', a "corrupt" event, one warning log line) and never stops the queue.

Schema (sqlite_schema.py) is versioned with PRAGMA user_version; an unknown newer version refuses to open.
What a write does to the rows (recording outcomes, finishing a message, events) is in
sqlite_ops.py; this module keeps the store around those statements.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue as threadqueue
import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

from mailboat.delivery.outcome import RecipientOutcome
from mailboat.mail.envelope import Envelope
from mailboat.queue import codec
from mailboat.queue.bodies import BodyMissing, BodySpool, checksum, verify
from mailboat.queue.checkpoint import Checkpointer
from mailboat.queue.groupcommit import GroupCommitWriter
from mailboat.queue.model import QueueEvent, QueueItem, initial_recipients
from mailboat.queue.sqlite_ops import COLUMNS, INSERT_EVENT, delete_body, finish_row, insert_event, record
from mailboat.queue.sqlite_schema import SCHEMA_VERSION, migrate
from mailboat.queue.store import (
    DEFAULT_LEASE,
    LeaseLostError,
    LeaseTokens,
    QueueError,
    QueueSyncError,
    StoreStats,
    default_node,
)

log = logging.getLogger("mailboat.queue")
T = TypeVar("T")
__all__ = ["SCHEMA_VERSION", "SPOOL_MIN", "SqliteQueueStore"]

# Messages of this size and larger are spooled to files (bodies.py). Measured side by side here
# (20 sessions, delivery to Maildir, messages/s file vs BLOB): 32 KB 0.72-0.83x, 100 KB even,
# 256 KB 1.33x, 1 MB 1.8-2.2x with half the CPU per message. A BLOB costs SQLite page copies
# (WAL, checkpoint) per byte; a file costs an inode created and freed, which is dear on ext4
# (every inode freed in the last minutes is skipped, one by one, by each new allocation).
SPOOL_MIN = 128 * 1024
PREFETCH_MAX_MESSAGE = 1 << 20  # claim_due() reads the bytes of messages up to this size...
PREFETCH_BYTES = 32 << 20  # ... and of at most this much in one claim
PREFETCH_ENTRIES = 1000

class SqliteQueueStore:
    """QueueStore in one SQLite file. See store.QueueStore for the meaning of every method.

    Args:
        path: database file (created with its schema when missing).
        clock: stamps `arrival` at enqueue.
        lease: claim lease in seconds.
        checkpoint: "auto": SQLite checkpoints the WAL inside the commit that fills it (right for
            short-lived users such as `mailboat sendmail`); "background": a thread does it off
            the commit path (checkpoint.py; the serving process); "elsewhere": neither, because
            another process's store runs that thread (the other server workers).
        release_leases: drop this node's leases at open (and those of schema 4, which name no
            node), never another node's. The serving process sets this (its previous incarnation's
            claims died with it); `sendmail`-style enqueue-only users must not. It also removes
            spooled bodies that a crash left without a record.
        spool_min: messages of at least this many bytes are spooled to files (bodies.py).
        node: the name this store's leases carry (store.py, "Leases"); default the host name.
    """

    def __init__(self, path: str, *, clock: Callable[[], float] = time.time, lease: float = DEFAULT_LEASE,
                 release_leases: bool = False, shared: bool = False, checkpoint: str = "auto",
                 spool_min: int = SPOOL_MIN, node: str | None = None) -> None:
        if checkpoint not in ("auto", "background", "elsewhere"):
            raise ValueError(f"checkpoint must be auto, background or elsewhere, not {checkpoint!r}")
        self.stats = StoreStats()
        self.path = str(path)
        self._checkpoint = checkpoint
        self._clock = clock
        self._lease = lease
        self._spool_min = spool_min
        self._tokens = LeaseTokens(node or default_node())
        try:
            self._conn = self._connect()
            migrate(self._conn, self.path)
            self.spool = BodySpool(self.path + "-bodies")
            if release_leases:
                self._conn.execute("UPDATE message SET lease_until = 0, lease_token = NULL, lease_node = NULL "
                                   "WHERE lease_until > 0 AND (lease_node = ? OR lease_node IS NULL)",
                                   (self._tokens.node,))
                self.spool.sweep({row[0] for row in self._conn.execute("SELECT queue_id FROM body WHERE spooled")})
        except sqlite3.Error as exc:  # missing directory, not a database, permissions...
            raise QueueError(f"cannot open the queue {self.path}: {exc}") from exc
        except OSError as exc:
            raise QueueError(f"cannot open the queue's body directory {self.path}-bodies: {exc}") from exc
        self._readers: threadqueue.SimpleQueue[sqlite3.Connection] = threadqueue.SimpleQueue()
        # Bytes and checksum read by claim_due() for load_message() (popped there, or when the
        # message goes).
        self._prefetched: dict[str, tuple[bytes, bytes | None]] = {}
        self._all_readers: list[sqlite3.Connection] = []
        # shared: other processes write this queue all the time (server workers); their writer
        # threads take turns through an flock() on PATH.lock (groupcommit.py).
        self._lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600) if shared else None
        self._writer = GroupCommitWriter(self._conn, self.stats, lock_fd=self._lock_fd,
                                         wal_path=self.path + "-wal", files_dir=self.spool.directory)
        self.checkpointer = Checkpointer(self._connect) if checkpoint == "background" else None

    def expect_company(self, company: Callable[[], int]) -> None:
        """`company()`: how many writes are about to be submitted in this process
        (`Intake.coming`: SMTP transactions whose message is not put yet). While it is above zero, the group
        commit waits a few milliseconds for them (groupcommit.py, "Lingering for company")."""
        self._writer.company = company

    @classmethod
    def prepare(cls, path: str) -> None:
        """Create or upgrade the queue file without starting the sync thread (before forking)."""
        self = cls.__new__(cls)
        self.path = str(path)
        self._checkpoint = "auto"
        try:
            conn = self._connect()
            try:
                migrate(conn, self.path)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise QueueError(f"cannot open the queue {self.path}: {exc}") from exc

    # -- connections and schema -------------------------------------------------------------

    def _connect(self, readonly: bool = False) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (the module's implicit
        # transactions would commit at surprising points).
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        if self._checkpoint != "auto":
            conn.execute("PRAGMA wal_autocheckpoint=0")  # checkpoint.py does it, off the commit path
        if readonly:
            conn.execute("PRAGMA query_only=1")
        return conn

    async def _write(self, fn: Callable[[sqlite3.Connection], T], size: int = 0, durable: bool = True,
                     files: bool = False) -> T:
        future = self._writer.submit(fn, size, durable=durable, files=files)
        assert future is not None  # submit(wait=True) from the loop thread
        result: T = await future
        return result

    # -- reads --------------------------------------------------------------------------------

    async def _read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        if self._writer.closed:
            raise QueueError("queue store is closed")

        def run() -> Any:
            try:
                conn = self._readers.get_nowait()
            except threadqueue.Empty:
                conn = self._connect(readonly=True)
                self._all_readers.append(conn)
            try:
                return fn(conn)
            finally:
                self._readers.put(conn)

        try:
            return await asyncio.to_thread(run)
        except sqlite3.Error as exc:
            raise QueueError(f"queue read failed: {exc}") from exc

    def _decode_row(self, row: tuple[Any, ...], lease: str | None = None) -> QueueItem | None:
        queue_id, envelope, recipients, size, arrival, next_attempt, attempts, status, warned = row
        try:
            env = codec.decode_envelope(envelope)
            rcpts = codec.decode_recipients(recipients) if recipients is not None else initial_recipients(env)
        except codec.CorruptRecordError as exc:
            self._set_aside(queue_id, str(exc))
            return None
        return QueueItem(queue_id, env, size, arrival, next_attempt, attempts, status == "held", rcpts,
                         bool(warned), lease)

    def _set_aside(self, queue_id: str, reason: str) -> None:
        log.warning("%s: corrupt queue record set aside: %s", queue_id, reason)

        def mark(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE message SET status = 'corrupt' WHERE queue_id = ?", (queue_id,))
            insert_event(conn, queue_id, self._clock(), "corrupt", {"reason": reason})

        if self._writer.in_writer_thread():
            mark(self._conn)  # already inside the writer's transaction
        elif not self._writer.closed:
            self._writer.submit(mark, wait=False)

    # -- QueueStore ---------------------------------------------------------------------------

    async def enqueue(self, queue_id: str, envelope: Envelope, message: bytes, *,
                      claim: bool = False) -> QueueItem | None:
        # Encode before the operation: it runs inside the transaction, which other sessions wait for.
        env = codec.encode_envelope(envelope)
        arrival = self._clock()
        lease_until, token, node = (arrival + self._lease, self._tokens(), self._tokens.node) if claim \
            else (0.0, None, None)
        event = codec.dumps_text(codec.queued_detail(envelope, len(message), message))
        digest = checksum(message)
        spooled = len(message) >= self._spool_min
        if spooled:
            self.spool.write(queue_id, message)  # before the row: see bodies.py (removed below on failure)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO message (queue_id, envelope, size, arrival, next_attempt, lease_until, "
                         "lease_token, lease_node) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (queue_id, env, len(message), arrival, arrival, lease_until, token, node))
            conn.execute("INSERT INTO body (queue_id, data, spooled, checksum) VALUES (?, ?, ?, ?)",
                         (queue_id, b"" if spooled else message, spooled, digest))
            conn.execute("INSERT INTO event (queue_id, at, kind, detail) VALUES (?, ?, 'queued', ?)",
                         (queue_id, arrival, event))

        try:
            await self._write(op, 0 if spooled else len(message), files=spooled)
        except QueueSyncError:
            raise  # the row committed: the file stays with it (not acknowledged, maybe delivered)
        except QueueError:
            if spooled:
                self.spool.remove(queue_id)  # no row was stored
            raise
        self.stats.enqueued += 1
        if not claim:
            return None
        return QueueItem(queue_id, envelope, len(message), arrival, arrival,
                         recipients=initial_recipients(envelope), lease=token)

    async def claim_due(self, now: float, limit: int) -> list[QueueItem]:
        token, node = self._tokens(), self._tokens.node  # one token for the batch: unique per message and claim

        def op(conn: sqlite3.Connection) -> list[QueueItem]:
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM message WHERE status = 'active' AND next_attempt <= ? "
                "AND lease_until <= ? ORDER BY next_attempt, arrival LIMIT ?", (now, now, limit)).fetchall()
            items = [item for row in rows if (item := self._decode_row(row, token)) is not None and not item.is_done]
            conn.executemany("UPDATE message SET lease_until = ?, lease_token = ?, lease_node = ? WHERE queue_id = ?",
                             [(now + self._lease, token, node, item.queue_id) for item in items])
            # The bytes of small messages come with the claim (same transaction, same thread): the
            # runner's load_message() then needs no reader thread hop. Bounded by PREFETCH_BYTES.
            small = [item.queue_id for item in items if item.size <= PREFETCH_MAX_MESSAGE]
            if len(self._prefetched) > 4 * PREFETCH_ENTRIES:  # claimed by a caller that never loads
                self._prefetched.clear()
            budget = PREFETCH_BYTES
            sizes = {item.queue_id: item.size for item in items}
            for start in range(0, len(small), 200):
                chunk = small[start:start + 200]
                for queue_id, data, spooled, digest in conn.execute(
                        f"SELECT queue_id, data, spooled, checksum FROM body WHERE queue_id IN "
                        f"({','.join('?' * len(chunk))})", chunk):
                    if budget <= 0:
                        break
                    if spooled:
                        try:  # (at most PREFETCH_MAX_MESSAGE, from the page cache most likely)
                            data = self.spool.read(queue_id, sizes[queue_id])
                        except (BodyMissing, OSError):
                            continue  # load_message() says what is wrong with it
                    budget -= len(data)
                    self._prefetched[queue_id] = (bytes(data), digest)  # checked by load_message()
            return items

        # A lease lost in a crash is a lease that ended: no fsync.
        return await self._write(op, durable=False)

    async def renew(self, queue_id: str, lease: str, now: float) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute("UPDATE message SET lease_until = ? WHERE queue_id = ? AND lease_token = ? "
                                "AND status != 'corrupt'", (now + self._lease, queue_id, lease)).rowcount > 0

        return await self._write(op, durable=False)

    async def record_outcomes(self, queue_id: str, outcomes: list[RecipientOutcome],
                              next_attempt: float | None, claimed: QueueItem | None = None,
                              lease: str | None = None) -> None:
        at = max((o.at for o in outcomes), default=self._clock())
        self._prefetched.pop(queue_id, None)  # delivered from it (or it was never loaded)
        # The lease is checked in the WHERE of the write, no read first (see the end of op).
        check, params = ("", ()) if lease is None else (" AND lease_token = ?", (lease,))

        def op(conn: sqlite3.Connection) -> bool | None:
            return record(conn, queue_id, claimed, self._decode_row, outcomes, at, next_attempt, check, params)

        # Lazy: a lost outcome means the message is delivered (or bounced) again, never lost.
        spooled = await self._write(op, durable=False)
        if spooled is None:
            raise LeaseLostError(f"{queue_id}: lease {lease} lost to another claim; outcomes not recorded")
        if spooled:
            self._drop_spooled(queue_id)

    async def finish(self, queue_id: str, at: float) -> None:
        self._prefetched.pop(queue_id, None)

        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute(f"SELECT {COLUMNS} FROM message WHERE queue_id = ? AND status != 'corrupt'",
                               (queue_id,)).fetchone()
            item = self._decode_row(row) if row is not None else None
            return item is not None and bool(finish_row(conn, item, at))

        if await self._write(op, durable=False):
            self._drop_spooled(queue_id)

    async def load_message(self, queue_id: str) -> bytes:
        def read(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute("SELECT body.data, body.spooled, body.checksum, message.size FROM body "
                               "JOIN message USING (queue_id) WHERE queue_id = ? AND message.status != 'corrupt'",
                               (queue_id,)).fetchone()
            if row is None:
                return None
            data, spooled, digest, size = row
            return verify(queue_id, self.spool.read(queue_id, size) if spooled else bytes(data), digest)

        try:
            prefetched = self._prefetched.pop(queue_id, None)
            data = verify(queue_id, *prefetched) if prefetched is not None else await self._read(read)
        except BodyMissing as exc:  # never acknowledged, damaged or changed on disk: bodies.py
            self._set_aside(queue_id, str(exc))
            raise KeyError(queue_id) from None
        if data is None:
            raise KeyError(queue_id)
        return data

    async def sweep_bodies(self) -> int:
        """Remove body files without a record and older than bodies.ORPHAN_AGE (a file written
        after the SELECT below is younger than that, so it is safe); returns how many."""
        keep = await self._read(lambda c: {row[0] for row in c.execute("SELECT queue_id FROM body WHERE spooled")})
        return await asyncio.to_thread(self.spool.sweep, keep)

    def _drop_spooled(self, queue_id: str) -> None:
        """Unlink a finished message's body file once the DELETE of its row is durable (the
        caller does not wait: the next fsync, shared with the enqueues going on, does it)."""
        try:
            synced = self._writer.after_next_sync()
        except QueueError:
            return  # closing: sweep() removes it at the next start
        def remove(done: asyncio.Future[Any]) -> None:
            if not done.cancelled() and done.exception() is None:
                self.spool.remove(queue_id)

        synced.add_done_callback(remove)

    async def get(self, queue_id: str) -> QueueItem | None:
        row = await self._read(lambda c: c.execute(
            f"SELECT {COLUMNS} FROM message WHERE queue_id = ? AND status != 'corrupt'", (queue_id,)).fetchone())
        return self._decode_row(row) if row is not None else None

    async def delete(self, queue_id: str, at: float) -> bool:
        self._prefetched.pop(queue_id, None)
        def op(conn: sqlite3.Connection) -> bool | None:
            """None: no such message; else whether its body was a spooled file."""
            if conn.execute("DELETE FROM message WHERE queue_id = ?", (queue_id,)).rowcount == 0:
                return None
            spooled = delete_body(conn, queue_id)
            insert_event(conn, queue_id, at, "deleted", {})
            return spooled

        spooled = await self._write(op)
        if spooled:
            self.spool.remove(queue_id)  # (a durable write: the DELETE is on disk)
        return spooled is not None

    async def hold(self, queue_id: str, at: float) -> bool:
        return await self._set(queue_id, at, "hold", "status = 'held'", "status = 'active'", ())

    async def release(self, queue_id: str, at: float) -> bool:
        return await self._set(queue_id, at, "release", "status = 'active', next_attempt = ?",
                               "status = 'held'", (at,))

    async def retry_now(self, queue_id: str, at: float) -> bool:
        return await self._set(queue_id, at, "retry", "next_attempt = ?", "status = 'active'", (at,))

    async def _set(self, queue_id: str, at: float, kind: str, assignment: str, condition: str,
                   params: tuple[Any, ...]) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            # hold on a held message, release of an active one: a no-op that still reports found.
            if conn.execute(f"UPDATE message SET {assignment} WHERE queue_id = ? AND {condition}",
                            (*params, queue_id)).rowcount:
                insert_event(conn, queue_id, at, kind, {})
                return True
            row = conn.execute("SELECT status FROM message WHERE queue_id = ?", (queue_id,)).fetchone()
            return row is not None and kind != "retry" and row[0] != "corrupt"

        return await self._write(op)

    async def mark_delay_warned(self, queue_id: str, at: float) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute("UPDATE message SET delay_warned = 1 WHERE queue_id = ?", (queue_id,)).rowcount > 0

        return await self._write(op)

    async def record_event(self, queue_id: str, at: float, kind: str, detail: dict[str, Any]) -> None:
        self._writer.append(INSERT_EVENT, (queue_id, at, kind, codec.dumps_text(detail)))

    async def prune_events(self, before: float, limit: int = 1000) -> int:
        def op(conn: sqlite3.Connection) -> int:
            # Ids grow with time: the first id at or after `before` bounds the old ones, found by
            # walking the primary key from the oldest (no index on `at` to keep up at every
            # insert); then the oldest `limit` of them whose message has left the queue.
            row = conn.execute("SELECT id FROM event WHERE at >= ? ORDER BY id LIMIT 1", (before,)).fetchone()
            cut = row[0] if row is not None else (1 << 62)
            return conn.execute(
                "DELETE FROM event WHERE id IN (SELECT id FROM event WHERE id < ? "
                "AND queue_id NOT IN (SELECT queue_id FROM message) ORDER BY id LIMIT ?)", (cut, limit)).rowcount

        return await self._write(op, durable=False)

    async def events(self, queue_id: str) -> list[QueueEvent]:
        rows = await self._read(lambda c: c.execute(
            "SELECT at, kind, detail FROM event WHERE queue_id = ? ORDER BY at, id", (queue_id,)).fetchall())
        return [QueueEvent(queue_id, at, kind, json.loads(detail)) for at, kind, detail in rows]

    async def close(self) -> None:
        await self._writer.close()  # runs what is already queued, then stops
        if self.checkpointer is not None:
            await asyncio.to_thread(self.checkpointer.close)
            self.checkpointer = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        for conn in self._all_readers:
            conn.close()

    # Last in the class so that `list[...]` annotations above mean the builtin.
    async def list(self) -> list[QueueItem]:
        rows = await self._read(lambda c: c.execute(
            f"SELECT {COLUMNS} FROM message WHERE status != 'corrupt' ORDER BY arrival, queue_id").fetchall())
        return [item for item in map(self._decode_row, rows) if item is not None]
