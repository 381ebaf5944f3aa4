"""Group commit for SQLite: many sessions' writes in one transaction, and one fsync for many
transactions.

Tasks on the event loop `submit()` a small function `fn(conn)`. Everything submitted during one
turn of the loop is run by one callback at the end of that turn (or a few milliseconds later
while more submissions are known to be coming: "Lingering for company" below), on the loop
thread, inside a single `BEGIN IMMEDIATE ... COMMIT`. Rows that nobody waits for (journey
events) are `append()`ed instead: no function, no future, one executemany per statement in that
same transaction. The
commit itself writes the WAL without an fsync (synchronous=NORMAL), so it takes
well under a millisecond. Durability comes from one sync thread that fsyncs the WAL over and over
while durable commits are waiting: each fsync covers every commit that finished before it began,
and only then are those callers answered. So N sessions finishing together cost one fsync, not
N (performance.md: one fsync per message caps a queue near 1-2k/s), and a commit never waits for
another's fsync.

Why the SQL runs on the loop thread and not in a writer thread of its own: every sqlite3 call
releases the GIL and must win it back, and while the loop thread is busy with sessions each win
can wait a whole switch interval (5 ms). A writer thread making a few calls per message turned a
1 ms commit into 15-30 ms under load (measured); on the loop thread the calls cost what they
cost, and the only hand-over left is the fsync, one per batch of commits.

Durable and lazy writes: only what a promise rests on must reach the disk before its caller
goes on (an enqueue: the 250 follows it). Recording that a message was delivered need not: if a
crash loses that record, the message is delivered again (a duplicate, never a loss), which is
also what Postfix accepts when it unlinks a delivered queue file without an fsync. Lazy
operations are answered at COMMIT; the next fsync carries their frames to disk too, since the
WAL is one file appended in order.

Why the fsync of the WAL is ours and not SQLite's (synchronous=FULL fsyncs inside COMMIT, while
holding the write lock): several worker processes write one queue, taking turns through an
flock(); with the fsync outside the lock, one process appends while another syncs. A checkpoint
cannot undo an acknowledged commit: SQLite syncs the WAL before copying frames out of it and
syncs the database file before the WAL is reused.

Lingering for company: a turn normally commits at the end of the loop turn that started it. But
under load the sessions of one process finish their messages a fraction of a millisecond apart,
in different turns, so nearly every message paid a transaction of its own (measured: 0.9
commits and 0.9 fsyncs per message at 20 sessions), and a transaction costs far more than the
rows in it (BEGIN IMMEDIATE, locks, about ten WAL pages written twice, a sync-thread hand-over;
in a micro-benchmark 300 us of CPU for one message alone against 100 us each for four
together). So when `company()` (the intake's count: SMTP transactions under way whose
message is not submitted yet, intake.py) says more submissions are coming, a new turn waits up to `LINGER`
for them, and commits at once when the last of them joins. With nobody coming (one session, a
quiet server) it commits at the end of the loop turn as before, so a lone message's 250 never
waits. The linger adds at most LINGER to a message's 250. Measured side by side (1 KB x 20
sessions, medians of 4 rounds): 3 ms against none +9 % messages per second and -12 % CPU per
message; 6 ms against 3 ms +13 % and -14 %; 12 ms against 6 ms +6 % more, but the p99 from the
final dot to the 250 at 600 messages/s open-loop reached 12 ms with 6 ms and with 12 ms alike
(3 ms: 4-6 ms). One session: no change (0.99).

Spooled bodies (bodies.py): an enqueue whose bytes went to a file of their own (written
before its row) is submitted with files=True, and the sync that answers it is one syncfs(2) of
the file system instead of the WAL fsync: the files' data, their directory entries and the WAL
in one call, still one per batch however many bodies it holds. `after_next_sync()` gives a
future answered after the next sync: a body file is unlinked only when the DELETE of its row is
durable.

A batch that fails, at the database level (SQLITE_FULL, SQLITE_IOERR, ...) or in one operation
(a duplicate queue id, a bug), is rolled back and replayed one operation per transaction, so each
caller gets its own verdict: a 100 MB message hitting a full disk must not fail the 1 KB messages
that shared its commit. (Failures are rare, so the common batch runs without a SAVEPOINT per
operation: those were two statements more per operation, a tenth of the queue's statements.) Errors reach callers
as QueueFullError / QueueWriteError / DuplicateQueueIdError (integrity violations); a failed
fsync fails the durable operations it was to cover with QueueSyncError (committed, but nothing
may be promised).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mailboat import diskio
from mailboat.queue.store import (
    DuplicateQueueIdError,
    QueueError,
    QueueFullError,
    QueueSyncError,
    QueueWriteError,
    StoreStats,
)

log = logging.getLogger("mailboat.queue")

_fsync = os.fsync  # indirections for tests
LINGER = 0.006  # seconds a turn may wait for submissions that company() says are coming
_syncfs = diskio.syncfs

MAX_BATCH_OPS = 512
MAX_BATCH_BYTES = 64 * 1024 * 1024  # bounds one transaction's WAL growth and its latency


@dataclass(slots=True)
class _Op:
    fn: Callable[[sqlite3.Connection], Any] | None  # None: a barrier (after_next_sync), no SQL
    future: asyncio.Future[Any] | None  # None: fire-and-forget (journey events)
    loop: asyncio.AbstractEventLoop | None
    size: int = 0
    durable: bool = True  # False: answered at COMMIT, without waiting for an fsync
    files: bool = False  # it wrote files of its own (spooled bodies): a syncfs makes it durable
    result: Any = None
    error: BaseException | None = None


def map_error(exc: sqlite3.Error) -> QueueError:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == sqlite3.SQLITE_FULL:
        return QueueFullError(f"queue storage full: {exc}")
    return QueueWriteError(f"queue write failed: {exc}")


class GroupCommitWriter:
    """Owns `conn` (opened with isolation_level=None, check_same_thread=False): commits on the
    loop thread, and the sync thread that fsyncs `wal_path` for durable commits."""

    def __init__(self, conn: sqlite3.Connection, stats: StoreStats, name: str = "mailboat-queue-sync",
                 lock_fd: int | None = None, wal_path: str | None = None, files_dir: str | None = None) -> None:
        self._conn = conn
        if wal_path is not None:  # COMMIT writes the WAL; the sync thread fsyncs it
            conn.execute("PRAGMA synchronous=NORMAL")
        # Several processes writing one queue ([server] workers > 1): an flock() on this file
        # around each transaction. SQLite's own busy handler polls with sleeps of 1 to 100 ms; the
        # kernel wakes a flock waiter the moment the lock is free.
        self._lock_fd = lock_fd
        self._wal_path = wal_path
        self._wal_fd: int | None = None
        # files=True ops wrote under files_dir: syncfs() on it, plus the WAL's fsync only when the
        # WAL is on another file system (syncfs covers every file of its own).
        self._files_dir = files_dir
        self._files_fd: int | None = None
        self._files_cover_wal = (files_dir is not None and wal_path is not None
                                 and os.stat(files_dir).st_dev == os.stat(os.path.dirname(wal_path) or ".").st_dev)
        self._stats = stats
        # The connection is used by the loop thread and, rarely, by another thread (a reader
        # setting a corrupt record aside): one at a time.
        self._conn_lock = threading.Lock()
        self._tx_thread: int | None = None  # the thread inside a transaction right now
        # Ops submitted on an event loop during one turn, committed together by one callback,
        # with the rows append()ed meanwhile (statement -> parameter tuples).
        self._pending: list[_Op] = []
        self._rows: dict[str, list[tuple[Any, ...]]] = {}
        self._pending_loop: asyncio.AbstractEventLoop | None = None
        # Who is about to submit (see "Lingering for company"): None, or a count; while it is
        # above zero a new turn waits up to `linger` (its timer) before it commits.
        self.company: Callable[[], int] | None = None
        self.linger = LINGER
        self._linger_timer: asyncio.TimerHandle | None = None
        # Durable ops committed and waiting for the next fsync; guarded by _cond.
        self._cond = threading.Condition()
        self._unsynced: list[_Op] = []
        self._stopping = False
        self.closed = False
        self._thread = threading.Thread(target=self._sync_loop, name=name, daemon=True)
        self._thread.start()

    def in_writer_thread(self) -> bool:
        """True inside an operation's fn (the transaction is open on this thread)."""
        return self._tx_thread == threading.get_ident()

    def submit(self, fn: Callable[[sqlite3.Connection], Any], size: int = 0,
               wait: bool = True, durable: bool = True, files: bool = False) -> asyncio.Future[Any] | None:
        """Queue `fn` for this loop turn's transaction. With wait, a future for its result
        (resolved after COMMIT, and for a durable op after the fsync that covers it); without,
        errors are only logged. `size` (bytes) bounds a transaction's growth. durable=False:
        answered at COMMIT (a lost write must cost a duplicate at worst); journey events
        (wait=False) are never durable. files=True (durable ops only): the caller also wrote
        files under `files_dir`, which the answering sync must cover."""
        running = self._running_loop()
        if running is None:  # another thread (a reader setting a record aside): run it now
            if wait:
                raise RuntimeError("submit(wait=True) needs a running event loop")
            self._commit([_Op(fn, None, None, size, False)])
            return None
        future = running.create_future() if wait else None
        op = _Op(fn, future, running if wait else None, size, durable and wait, files=files and durable and wait)
        if self._joins_turn(running):
            self._pending.append(op)
        else:  # ops of another loop are waiting for their turn: go alone
            running.call_soon(self._commit, [op])
        return future

    def append(self, sql: str, row: tuple[Any, ...]) -> None:
        """Insert `row` with `sql` in this loop turn's transaction, nobody waiting: rows of one
        statement go in one executemany, without an operation or a future each. For records that
        may be lost (journey events): never durable, and a failure is only logged."""
        running = self._running_loop()
        if running is None:  # another thread: now, in a transaction of its own
            self._commit([], {sql: [row]})
        elif self._joins_turn(running):
            self._rows.setdefault(sql, []).append(row)
        else:  # another loop's turn is pending: go alone
            running.call_soon(self._commit, [], {sql: [row]})

    def _running_loop(self) -> asyncio.AbstractEventLoop | None:
        """The caller's event loop (None on a thread without one); QueueError once closed."""
        if self.closed:
            raise QueueError("queue store is closed")
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            return None

    def _joins_turn(self, running: asyncio.AbstractEventLoop) -> bool:
        """Whether work submitted now on `running` goes in its pending turn (started here when no
        turn is pending). False: another loop's turn is pending, and the work goes alone.
        A turn lingers while company() says more is coming, and stops waiting as soon as work
        joins when nobody is coming any more (an operation or a row alike)."""
        if self._pending_loop is None:
            self._pending, self._rows, self._pending_loop = [], {}, running
            if self.company is not None and self.linger > 0 and self.company() > 0:
                self._linger_timer = running.call_later(self.linger, self._hand_over)
            else:
                running.call_soon(self._hand_over)
        elif self._linger_timer is not None and self._pending_loop is running \
                and self.company is not None and self.company() <= 0:
            self._linger_timer.cancel()  # the last one expected is here
            self._linger_timer = None
            running.call_soon(self._hand_over)
        return self._pending_loop is running

    def after_next_sync(self) -> asyncio.Future[Any]:
        """A future answered (None, or QueueSyncError) after the next sync that begins from now:
        everything committed before this call is then durable. Call on the loop thread."""
        if self.closed or self._wal_path is None:
            raise QueueError("queue store is closed")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        op = _Op(None, future, loop)
        with self._cond:
            self._unsynced.append(op)
            self._cond.notify()
        return future

    def _hand_over(self) -> None:
        if self._linger_timer is not None:  # (close() does not wait for company)
            self._linger_timer.cancel()
            self._linger_timer = None
        batch, rows = self._pending, self._rows
        self._pending, self._rows, self._pending_loop = [], {}, None
        start, nbytes = 0, 0
        for i, op in enumerate(batch):  # bounded transactions: MAX_BATCH_OPS and _BYTES
            nbytes += op.size
            if i + 1 - start >= MAX_BATCH_OPS or nbytes >= MAX_BATCH_BYTES:
                self._commit(batch[start:i + 1], rows)
                start, nbytes, rows = i + 1, 0, {}
        if start < len(batch) or rows:
            self._commit(batch[start:], rows)

    def _commit(self, batch: list[_Op], rows: dict[str, list[tuple[Any, ...]]] | None = None) -> None:
        """Run `batch` and `rows` in one transaction (each op replayed alone if that fails),
        answer the lazy ops and pass the durable ones to the sync thread."""
        with self._conn_lock:
            if self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            self._tx_thread = threading.get_ident()
            try:
                if not self._transaction(batch, rows) and (len(batch) > 1 or rows):
                    for op in batch:  # replay alone so each caller gets its own verdict
                        self._transaction([op])
                    if rows and not self._transaction([], rows):
                        count = sum(map(len, rows.values()))
                        log.warning("queue: %d background record(s) not written", count)
            finally:
                self._tx_thread = None
                if self._lock_fd is not None:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        durable = [op for op in batch if op.durable and op.error is None]
        if durable and self._wal_path is not None:
            with self._cond:
                self._unsynced.extend(durable)
                self._cond.notify()
            answer_now = [op for op in batch if not (op.durable and op.error is None)]
        else:
            answer_now = batch
        _resolve(answer_now)

    async def close(self) -> None:
        """Commit what is pending, wait for its fsync, then stop and close the connection."""
        if self.closed:
            return
        if self._pending_loop is not None:
            self._hand_over()
        self.closed = True
        with self._cond:
            self._stopping = True
            self._cond.notify()
        await asyncio.to_thread(self._thread.join)
        for fd in (self._wal_fd, self._files_fd):
            if fd is not None:
                os.close(fd)
        self._wal_fd = self._files_fd = None
        with self._conn_lock:
            self._conn.close()

    def _sync_loop(self) -> None:
        while True:
            with self._cond:
                while not self._unsynced and not self._stopping:
                    self._cond.wait()
                if not self._unsynced:
                    return  # stopping, nothing left to sync
                batch, self._unsynced = self._unsynced, []
            self._sync_wal(batch)
            _resolve(batch)

    def _sync_wal(self, batch: list[_Op]) -> None:
        """fsync the WAL (syncfs when the batch wrote files): every commit that finished before
        this call is then on disk. A failure fails the durable operations waiting for it:
        committed but not known to be on disk, so their callers must not promise anything (a
        retry may duplicate, nothing is lost)."""
        # The WAL file lives as long as a connection is open (SQLite removes it with the last
        # one), and ours is open until close(): one descriptor serves for good. Every system
        # call here is a GIL hand-over, so there is no stat() per sync to check it.
        try:
            files = any(op.files for op in batch)
            if files:
                self._sync_files()
            if not (files and self._files_cover_wal):
                if self._wal_fd is None:
                    assert self._wal_path is not None  # a store with a sync thread has a WAL
                    self._wal_fd = os.open(self._wal_path, os.O_RDONLY | os.O_CLOEXEC)
                _fsync(self._wal_fd)
        except OSError as exc:
            log.error("queue: sync of %s failed: %s", self._wal_path, exc)
            error = QueueSyncError(f"queue sync failed: {exc}")
            for op in batch:
                op.result, op.error = None, error

    def _sync_files(self) -> None:
        if _syncfs is None:  # no syncfs(2) here: sync(2) covers every file system
            os.sync()
            return
        if self._files_fd is None:
            assert self._files_dir is not None  # only ops that wrote files under it ask for this
            self._files_fd = os.open(self._files_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        _syncfs(self._files_fd)

    def _transaction(self, batch: list[_Op], rows: dict[str, list[tuple[Any, ...]]] | None = None) -> bool:
        """Run `rows` and `batch` in one transaction. False: it was rolled back and the caller
        replays it one operation per transaction: at the database level (every op then carries
        the error), or because one operation of several failed (its error is recorded again by
        the replay; the others are unanswered until then). A lone operation that fails is
        rolled back with its error, and that is its verdict (True)."""
        conn = self._conn
        alone = len(batch) == 1 and not rows
        try:
            conn.execute("BEGIN IMMEDIATE")
            if rows:
                for sql, params in rows.items():
                    conn.executemany(sql, params)
            for op in batch:
                try:
                    fn = op.fn
                    assert fn is not None  # barriers never reach a transaction
                    op.result, op.error = fn(conn), None
                except sqlite3.IntegrityError as exc:
                    op.result, op.error = None, DuplicateQueueIdError(str(exc))
                except sqlite3.Error:
                    raise  # database-level: fail the transaction
                except Exception as exc:  # a bug or a bad record in this one operation
                    op.result, op.error = None, exc
                if op.error is not None:
                    conn.execute("ROLLBACK")
                    return alone
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            log.error("queue transaction of %d operation(s) failed: %s", len(batch), exc)
            error = map_error(exc)
            for op in batch:
                op.result, op.error = None, error
            return False
        self._stats.commits += 1
        self._stats.largest_batch = max(self._stats.largest_batch, len(batch))
        return True


def _resolve(batch: list[_Op]) -> None:
    """Answer each op on its loop: directly on the loop thread, otherwise one
    call_soon_threadsafe per loop (one wake-up per batch, not one per message)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Op]] = {}
    for op in batch:
        if op.future is None:
            if op.error is not None:
                log.warning("queue: background write failed: %s", op.error)
            continue
        assert op.loop is not None  # set with the future
        by_loop.setdefault(op.loop, []).append(op)
    for loop, ops in by_loop.items():
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            _settle(ops)
            continue
        try:
            loop.call_soon_threadsafe(_settle, ops)
        except RuntimeError:
            pass  # that loop is closed: nobody is waiting any more


def _settle(ops: list[_Op]) -> None:
    for op in ops:
        if op.future is None or op.future.done():
            continue  # the waiting task was cancelled; the write itself stands
        if op.error is not None:
            op.future.set_exception(op.error)
        else:
            op.future.set_result(op.result)
