"""Group commit for SQLite: one writer thread that runs every queued write in one transaction.

Tasks on the event loop `submit()` a small function `fn(conn)`; the writer thread takes all that
has accumulated, runs it inside a single `BEGIN IMMEDIATE ... COMMIT` with each function in its own
SAVEPOINT (so one bad operation fails alone), and resolves the futures on their loop with one
call_soon_threadsafe per batch after COMMIT returns. While one commit is being fsync'd the next
batch accumulates, so N sessions finishing together cost one fsync, not N (performance.md: one
fsync per message caps a queue near 1-2k/s; 32 records per sync reach 80k+/s).

A batch that fails at the database level (SQLITE_FULL, SQLITE_IOERR, ...) is rolled back and
replayed one operation per transaction, so each caller gets its own verdict: a 100 MB message
hitting a full disk must not fail the 1 KB messages that shared its commit. Errors reach callers
as QueueFullError / QueueWriteError / DuplicateQueueIdError (integrity violations).

Durable and lazy writes: only what a promise rests on must reach the disk before its caller
goes on (an enqueue: the 250 follows it). Recording that a message was delivered need not: if a
crash loses that record, the message is delivered again (a duplicate, never a loss), which is
also what Postfix accepts when it unlinks a delivered queue file without an fsync. A batch with
no durable operation commits with `PRAGMA synchronous=NORMAL` (no fsync in WAL mode); the next
durable commit's fsync of the WAL carries its frames to disk too, since the WAL is one file
appended in order. In a busy server the lazy writes mostly ride in durable batches anyway; what
this saves is the fsync of the batches that hold only delivery records.

The fsync outside the lock (`wal_path`): SQLite's own durable commit fsyncs the WAL while it
holds the database's write lock, so with several worker processes each writer waits for the
other's fsync before it may even start writing. Given the WAL's path, the writer commits with
synchronous=NORMAL (the frames are written, the lock released at once) and then fsyncs the WAL
itself before it resolves a durable batch: the callers still hear back only once their frames
are on stable storage, while the next writer already appends, and the two fsyncs overlap. A
checkpoint cannot undo this: SQLite syncs the WAL before copying frames out of it and syncs
the database file before the WAL is reused.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import queue as threadqueue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mailboat.queue.store import DuplicateQueueIdError, QueueError, QueueFullError, QueueWriteError, StoreStats

log = logging.getLogger("mailboat.queue")

_fsync = os.fsync  # an indirection for tests

MAX_BATCH_OPS = 512
MAX_BATCH_BYTES = 64 * 1024 * 1024  # bounds one transaction's WAL growth and its latency


@dataclass(slots=True)
class _Op:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future | None  # None: fire-and-forget (journey events)
    loop: asyncio.AbstractEventLoop | None
    size: int = 0
    durable: bool = True  # False: may commit without an fsync (see the module docstring)
    result: Any = None
    error: BaseException | None = None


def map_error(exc: sqlite3.Error) -> QueueError:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == sqlite3.SQLITE_FULL:
        return QueueFullError(f"queue storage full: {exc}")
    return QueueWriteError(f"queue write failed: {exc}")


class GroupCommitWriter:
    """Owns `conn` (opened with isolation_level=None) and the thread that writes through it."""

    def __init__(self, conn: sqlite3.Connection, stats: StoreStats, name: str = "mailboat-queue-writer",
                 lock_fd: int | None = None, wal_path: str | None = None) -> None:
        self._conn = conn
        # Durable batches: fsync this file after COMMIT, outside the lock (module docstring).
        self._wal_path = wal_path
        self._wal_fd: int | None = None
        if wal_path is not None:
            conn.execute("PRAGMA synchronous=NORMAL")
        # Several processes writing one queue ([server] workers > 1): an flock() on this file
        # around each transaction. SQLite's own busy handler polls with sleeps of 1 to 100 ms; the
        # kernel wakes a flock waiter the moment the lock is free.
        self._lock_fd = lock_fd
        self._stats = stats
        self._ops: threadqueue.SimpleQueue[list[_Op] | None] = threadqueue.SimpleQueue()
        # Ops submitted on an event loop during one loop iteration, handed over together by one
        # call_soon callback: one put (one wake-up of the writer thread) per iteration, not per op.
        self._pending: list[_Op] = []
        self._pending_loop: asyncio.AbstractEventLoop | None = None
        self.closed = False
        self._synchronous = True  # the connection was opened with synchronous=FULL
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def in_writer_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def submit(self, fn: Callable[[sqlite3.Connection], Any], size: int = 0,
               wait: bool = True, durable: bool = True) -> asyncio.Future | None:
        """Queue `fn` for the next transaction. With wait, a future for its result (resolved
        after COMMIT); without, errors are only logged. `size` (bytes) bounds batch growth.
        durable=False: the commit may skip the fsync (a lost write must cost a duplicate at
        worst, see the module docstring); journey events (wait=False) are never durable."""
        if self.closed:
            raise QueueError("queue store is closed")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is None:  # another thread (a reader setting a record aside): straight in
            if wait:
                raise RuntimeError("submit(wait=True) needs a running event loop")
            self._ops.put([_Op(fn, None, None, size, False)])
            return None
        loop = running if wait else None
        future = running.create_future() if wait else None
        op = _Op(fn, future, loop, size, durable and wait)
        if self._pending_loop is running:
            self._pending.append(op)
        elif self._pending_loop is None:
            self._pending, self._pending_loop = [op], running
            running.call_soon(self._hand_over)
        else:  # ops of another loop are waiting for their hand-over: go alone
            self._ops.put([op])
        return future

    def _hand_over(self) -> None:
        batch, self._pending, self._pending_loop = self._pending, [], None
        if batch:
            self._ops.put(batch)

    async def close(self) -> None:
        """Run everything already submitted, then stop the thread and close the connection."""
        if self.closed:
            return
        self.closed = True
        self._hand_over()
        self._ops.put(None)
        await asyncio.to_thread(self._thread.join)

    def _run(self) -> None:
        stop = False
        carry: list[_Op] = []
        while not stop or carry:
            if carry:
                batch, carry = carry, []
            else:
                first = self._ops.get()
                if first is None:
                    break
                batch = first
            nbytes = sum(op.size for op in batch)
            # Take everything that queued up while the previous commit was being fsync'd.
            while not stop and len(batch) < MAX_BATCH_OPS and nbytes < MAX_BATCH_BYTES:
                try:
                    ops = self._ops.get_nowait()
                except threadqueue.Empty:
                    break
                if ops is None:
                    stop = True
                    break
                batch.extend(ops)
                nbytes += sum(op.size for op in ops)
            if len(batch) > MAX_BATCH_OPS:
                batch, carry = batch[:MAX_BATCH_OPS], batch[MAX_BATCH_OPS:]
            durable = any(op.durable for op in batch)
            if self._wal_path is None and durable != self._synchronous:
                self._conn.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=NORMAL")
                self._synchronous = durable
            if self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                if not self._transaction(batch) and len(batch) > 1:
                    for op in batch:  # replay alone so each caller gets its own verdict
                        self._transaction([op])
            finally:
                if self._lock_fd is not None:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            if durable and self._wal_path is not None:
                self._sync_wal(batch)
            self._resolve(batch)
        if self._wal_fd is not None:
            os.close(self._wal_fd)
        self._conn.close()

    def _sync_wal(self, batch: list[_Op]) -> None:
        """fsync the WAL after a durable batch committed with synchronous=NORMAL. A failure fails
        the durable operations that had succeeded: committed but not known to be on disk, so
        their callers must not promise anything (a retry may duplicate, nothing is lost)."""
        try:
            path_ino = os.stat(self._wal_path).st_ino  # type: ignore[arg-type]
            if self._wal_fd is not None and os.fstat(self._wal_fd).st_ino != path_ino:
                os.close(self._wal_fd)  # the WAL was deleted and made anew: sync the new one
                self._wal_fd = None
            if self._wal_fd is None:
                self._wal_fd = os.open(self._wal_path, os.O_RDONLY | os.O_CLOEXEC)  # type: ignore[arg-type]
            _fsync(self._wal_fd)
        except OSError as exc:
            log.error("queue: fsync of %s failed: %s", self._wal_path, exc)
            error = QueueWriteError(f"queue sync failed: {exc}")
            for op in batch:
                if op.durable and op.error is None:
                    op.result, op.error = None, error

    def _transaction(self, batch: list[_Op]) -> bool:
        """Run `batch` in one transaction. False: the whole transaction failed (rolled back)."""
        conn = self._conn
        if len(batch) == 1:
            return self._single(batch[0])
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in batch:
                conn.execute("SAVEPOINT op")
                try:
                    op.result, op.error = op.fn(conn), None
                except sqlite3.IntegrityError as exc:
                    conn.execute("ROLLBACK TO op")
                    op.error = DuplicateQueueIdError(str(exc))
                except sqlite3.Error:
                    raise  # database-level: fail the transaction
                except Exception as exc:  # a bug or a bad record in this one operation
                    conn.execute("ROLLBACK TO op")
                    op.error = exc
                conn.execute("RELEASE op")
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

    def _single(self, op: _Op) -> bool:
        """A batch of one: no SAVEPOINT needed, the transaction is the operation's own."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                op.result, op.error = op.fn(conn), None
            except sqlite3.IntegrityError as exc:
                conn.execute("ROLLBACK")
                op.result, op.error = None, DuplicateQueueIdError(str(exc))
                return True
            except sqlite3.Error:
                raise
            except Exception as exc:
                conn.execute("ROLLBACK")
                op.result, op.error = None, exc
                return True
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            log.error("queue transaction of 1 operation failed: %s", exc)
            op.result, op.error = None, map_error(exc)
            return True
        self._stats.commits += 1
        self._stats.largest_batch = max(self._stats.largest_batch, 1)
        return True

    @staticmethod
    def _resolve(batch: list[_Op]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Op]] = {}
        for op in batch:
            if op.future is None:
                if op.error is not None:
                    log.warning("queue: background write failed: %s", op.error)
                continue
            by_loop.setdefault(op.loop, []).append(op)  # type: ignore[arg-type]
        for loop, ops in by_loop.items():
            try:  # one wake-up of each loop per batch, not one per message
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
