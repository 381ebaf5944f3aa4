"""WAL checkpoints off the commit path: one background thread copies the queue's write-ahead log
into the database file while the writer goes on committing.

Why: by default SQLite checkpoints inside the COMMIT that takes the WAL past 1,000 pages, so
one message in a few hundred waits for megabytes to be copied and the database file to be
fsync'd before its 250 (a latency spike that also holds the flock the workers' writers take
turns on). Here the writer's connection has `wal_autocheckpoint=0`, and this thread runs
`PRAGMA wal_checkpoint(PASSIVE)` on its own connection every INTERVAL seconds: PASSIVE copies
what it can without blocking the writer or the readers, so commits never wait for it.

The WAL file restarts from its beginning only at a moment when every frame has been copied;
a queue under constant load may not give one for a while, so the WAL grows. Past
RESTART_FRAMES frames the thread asks for a RESTART checkpoint, which waits for the writer's
current transaction and makes the next one start the file again: a rare, bounded pause
instead of an unbounded file.

Durability is unchanged: a checkpoint only moves committed (already fsync'd) frames into the
database file and fsyncs that before the WAL is reused.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

log = logging.getLogger("mailboat.queue")

INTERVAL = 0.1  # seconds between passive checkpoints
RESTART_FRAMES = 16384  # WAL frames (pages) beyond which a RESTART checkpoint bounds the file


class Checkpointer:
    """Runs passive checkpoints on a connection of its own until close()."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], *, interval: float = INTERVAL,
                 restart_frames: int = RESTART_FRAMES, name: str = "mailboat-queue-checkpoint") -> None:
        self._connect = connect
        self._interval = interval
        self._restart_frames = restart_frames
        self._stop = threading.Event()
        self.checkpoints = 0  # PASSIVE runs that copied something (tests, metrics)
        self.restarts = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            conn = self._connect()
        except sqlite3.Error as exc:
            log.error("queue checkpointer: cannot open the queue: %s", exc)
            return
        try:
            while not self._stop.wait(self._interval):
                self.run_once(conn)
            self.run_once(conn)  # leave as little as possible in the WAL at shutdown
        finally:
            conn.close()

    def run_once(self, conn: sqlite3.Connection) -> None:
        try:
            _busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if copied > 0:
                self.checkpoints += 1
            if frames >= self._restart_frames:
                conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                self.restarts += 1
        except sqlite3.Error as exc:  # busy, locked, I/O: the next round tries again
            log.warning("queue checkpoint failed: %s", exc)

    def close(self) -> None:
        """Stop after one last checkpoint (blocks for it)."""
        self._stop.set()
        self._thread.join()
