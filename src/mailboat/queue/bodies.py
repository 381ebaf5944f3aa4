"""Spooled bodies: the bytes of large messages as one file each, beside the queue database.

Why: SQLite handles a BLOB page by page (4 KB): each page of it is a frame appended to the WAL,
read back and written to the database at the checkpoint, and freed when the message leaves. A
file of its own costs one write() and one unlink(), but also an inode created and freed, which
is dear on some file systems. Measured (sqlite.SPOOL_MIN has the figures): for 1 MB messages a
file doubles the messages per second and halves the CPU per message; below about 100 KB the
BLOB is cheaper, so small messages stay in the database, and the store chooses by size.

Layout: ``<queue file>-bodies/<queue id>``, mode 0600, holding exactly the queued bytes; the
queue's `body` row says ``spooled = 1`` and `message.size` gives the length.

Durability (the enqueue side is in sqlite.py and groupcommit.py):
1. The file is written on the event loop without an fsync, BEFORE the row is inserted.
2. The row commits; the sync thread then makes both durable with one syncfs(2) of the file
   system (file data, its directory entry and the WAL), and only then is the caller answered.
   So a 250 always stands on a durable file and a durable row.
3. A crash between 1 and 2 leaves a file without a row (removed by `sweep` at the next start)
   or, after a power cut only, a row whose file is short or missing: that message was never
   acknowledged (the client retries it), and reading it sets the row aside with the reason.
4. A message that leaves the queue loses its row first; its file is unlinked only after the
   fsync that makes the DELETE durable, so a power cut cannot leave a row without its file.

Integrity: every body, a file or a BLOB, is stored with its `checksum()` (SHA-256), checked
when it is read for delivery. Bytes that changed on disk (damage, or a hand that overwrote the
file with something else of the same length) are never relayed as the message: the record is
set aside like one that cannot be decoded, with the reason logged. SHA-256 rather than BLAKE2b
because CPUs with SHA extensions make it the faster of the two here (about 1 us per KB, 0.1 ms
per 100 KB); a row queued before checksums were kept (NULL) is delivered unchecked.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import time

from mailboat.mail.ids import is_queue_id
from mailboat.queue.store import DuplicateQueueIdError, QueueFullError, QueueWriteError

log = logging.getLogger("mailboat.queue")

_FULL = {errno.ENOSPC, errno.EDQUOT}
_write = os.write  # an indirection for tests (a full disk)
ORPHAN_AGE = 120.0  # seconds: a file this old without a row is left from a crash (an enqueue
# takes milliseconds from its write to its commit, and SQLite gives up waiting after 10 s)


class BodyMissing(Exception):
    """A spooled body file is missing or shorter than its row says (see point 3 above)."""


class BodyCorrupt(BodyMissing):
    """A body whose bytes are not the ones queued: its checksum differs from its row's."""


def checksum(message: bytes) -> bytes:
    """What the queue keeps beside a body to know it again (SHA-256, 32 bytes)."""
    return hashlib.sha256(message).digest()


def verify(queue_id: str, data: bytes, expected: bytes | None) -> bytes:
    """`data` if its checksum is `expected` (or nothing is expected: an older row); BodyCorrupt
    otherwise."""
    if expected is not None and hashlib.sha256(data).digest() != expected:
        raise BodyCorrupt(f"body {queue_id} does not match its checksum: changed on disk since it was queued")
    return data


class BodySpool:
    """The directory of spooled bodies (created, mode 0700, when missing)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, mode=0o700, exist_ok=True)

    def path(self, queue_id: str) -> str:
        if not is_queue_id(queue_id):  # never a path outside the directory
            raise ValueError(f"not a queue id: {queue_id!r}")
        return os.path.join(self.directory, queue_id)

    def write(self, queue_id: str, message: bytes) -> None:
        """Create the file (never over an existing one) and write `message`, without an fsync.

        Raises QueueFullError (ENOSPC, EDQUOT), DuplicateQueueIdError (the file exists),
        QueueWriteError (anything else); nothing is left behind on error."""
        path = self.path(queue_id)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            raise DuplicateQueueIdError(f"{queue_id}: a spooled body already exists") from None
        except OSError as exc:
            raise _error(exc) from exc
        try:
            view = memoryview(message)
            while view:
                view = view[_write(fd, view):]
        except OSError as exc:
            os.close(fd)
            self.remove(queue_id)
            raise _error(exc) from exc
        os.close(fd)

    def read(self, queue_id: str, size: int) -> bytes:
        """The body, which must be `size` bytes long; BodyMissing otherwise."""
        try:
            with open(self.path(queue_id), "rb", buffering=0) as f:
                data = f.read()
        except FileNotFoundError:
            raise BodyMissing(f"spooled body {queue_id} is missing") from None
        if len(data) != size:
            raise BodyMissing(f"spooled body {queue_id} has {len(data)} bytes, not {size}")
        return data

    def remove(self, queue_id: str) -> None:
        try:
            os.unlink(self.path(queue_id))
        except FileNotFoundError:
            pass
        except OSError as exc:  # left for sweep() at the next start
            log.warning("queue: cannot remove spooled body %s: %s", queue_id, exc)

    def sweep(self, keep: set[str], *, older_than: float = ORPHAN_AGE, now: float | None = None) -> int:
        """Remove files not named in `keep` (the spooled rows) and older than `older_than`
        seconds: bodies left by a crash between their write and their commit, or by an unlink
        that a crash overtook. Returns how many went."""
        cutoff = (time.time() if now is None else now) - older_than
        removed = 0
        try:
            entries = list(os.scandir(self.directory))
        except OSError as exc:
            log.warning("queue: cannot list %s: %s", self.directory, exc)
            return 0
        for entry in entries:
            if entry.name in keep or not is_queue_id(entry.name):
                continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("queue: cannot remove orphaned body %s: %s", entry.path, exc)
        if removed:
            log.info("queue: removed %d spooled bodies left without a queue record", removed)
        return removed


def _error(exc: OSError) -> QueueFullError | QueueWriteError:
    if exc.errno in _FULL:
        return QueueFullError(f"queue storage full: {exc}")
    return QueueWriteError(f"queue write failed: {exc}")
