"""Maildir delivery: write in tmp/, fsync, rename into new/, fsync new/ (the Maildir protocol).

Each recipient's Maildir root comes from its route (`Maildir(path)`); tmp/ new/ cur/ are created
with mode 0700 when missing. The file gets `Return-Path:` and `Delivered-To:` prepended (RFC 5321
§4.4: the final delivery adds Return-Path) and the queued bytes after them, unchanged. A message
the filters quarantined (`Envelope.quarantine`) goes into the Maildir++ folder `.Junk` inside
that root instead (see `_folder`).

One copy per mailbox: recipients of one message that reach the same Maildir (alice+1@ and
alice+2@, or two aliases of alice) get one file, whose Delivered-To names the first of them, and
each of them the outcome of that file, as Postfix's local(8) delivers once per mailbox.

Durability: an outcome says DELIVERED only after (1) the file's data is fsync'd, (2) it was
renamed into new/, and (3) new/ itself was fsync'd (Linux does not persist a rename until its
directory is synced; Exim does the same, chasquid does not). A crash before (3) may leave the
file visible yet still undelivered in the queue: at worst a duplicate, never a loss.

Batching (group sync): concurrent deliver() calls (the runner delivers many messages at once)
queue their files; one worker thread takes everything queued and runs it in phases: write and
fsync every file, rename them all, then fsync each distinct new/ directory ONCE. While it works
the next batch accumulates. So 20 deliveries into one mailbox cost 20 file fsyncs but one
directory fsync, and no fsync ever runs on the event loop thread.

sync="syncfs" (what the server uses on Linux): the same phases with syncfs(2) instead of the
per-file and per-directory fsyncs: write every file of the batch into tmp/, syncfs() the file
system of each mailbox root once (all file data durable), rename them all into new/, syncfs()
again (the renames durable). Two calls per batch and file system instead of one fsync per file
plus one per directory (measured here: 3-7 ms for 50 files against 14-130 ms). Under a steady
stream the two syncs of consecutive batches are shared: when more mail is already waiting, a
batch's renames are made durable by the next batch's first syncfs, so each batch costs one
syncfs, and its senders wait no longer than they would for a second one of their own. The contract is
the same: DELIVERED only after the data and the new/ entry are on stable storage, and a file is
never visible in new/ before its data is durable. In this mode the files are written and
renamed on the event loop and only the syncfs() calls run in a thread (`_work_syncfs` says
why: the GIL). syncfs also flushes whatever else is dirty on
that file system (the price of the single call), and it reports write-back errors only since
Linux 5.8; where it is missing the transport falls back to fsync.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import os
import re
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from mailboat import diskio
from mailboat.delivery.outcome import RecipientOutcome, outcome
from mailboat.mail.envelope import Envelope, Recipient
from mailboat.mail.message import header_block
from mailboat.routing.route import Maildir, Route

LINGER = 0.004  # seconds a batch may wait for company while mail streams in (sync="syncfs")
LINGER_BELOW = 32  # ... unless this many files are already waiting
FSYNC_THREADS = 8  # files of one batch written and fsync'd at once (sync="fsync")

# Indirections so tests can inject faults and count syncs without touching the os module.
_fsync: Callable[[int], None] = os.fsync
_open = os.open


_syncfs: Callable[[int], None] | None = diskio.syncfs

# Errors an operator can fix while the message waits in the queue (disk full, quota, I/O,
# permissions, too many open files): defer. Anything else about the path (it is a file, a name
# is too long, a symlink loop) will not fix itself: fail.
_TRANSIENT = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN, errno.ENOMEM, errno.EMFILE,
              errno.ENFILE, errno.EROFS, errno.EACCES, errno.EPERM, errno.EBUSY, errno.EINTR,
              errno.ESTALE}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(slots=True)
class _Job:
    root: str
    recipient: str
    data: list[bytes]  # prefix, message: written with one writev, never joined in memory
    size: int
    future: asyncio.Future = field(repr=False)
    name: str = ""
    error: OSError | None = None


class MaildirTransport:
    """Transport for `Maildir` routes. See the module docstring for the durability contract.

    Args:
        hostname: for unique file names (default: this machine's name).
        clock: for outcome times and file names.
    """

    def __init__(self, *, hostname: str | None = None, clock: Callable[[], float] = time.time,
                 sync: str = "fsync") -> None:
        if sync not in ("fsync", "syncfs"):
            raise ValueError(f"sync must be fsync or syncfs, not {sync!r}")
        self._use_syncfs = sync == "syncfs" and _syncfs is not None
        host = hostname or socket.gethostname()
        # Maildir names must not contain "/" or ":" (Maildir spec; Dovecot escapes them alike).
        self._host = host.replace("/", "\\057").replace(":", "\\072")
        self._clock = clock
        self._counter = itertools.count(1)
        self._queued: list[_Job] = []
        self._worker: asyncio.Task | None = None
        self._fsync_pool: ThreadPoolExecutor | None = None  # created on the first batch of two
        self.linger = LINGER
        self.batches = 0  # batches run (for tests and metrics)
        self.dir_syncs = 0

    async def deliver(self, envelope: Envelope, message: bytes, recipients: list[Recipient],
                      route: Route) -> list[RecipientOutcome]:
        if not isinstance(route, Maildir):
            raise TypeError(f"MaildirTransport cannot deliver to {route!r}")
        loop = asyncio.get_running_loop()
        results: list[RecipientOutcome] = []
        jobs: dict[str, _Job] = {}  # by Maildir root: one file per mailbox
        copies: list[tuple[str, _Job]] = []  # each recipient, with the file that is its copy
        head = header_block(message)
        loop_error = _delivered_to_loop(head)
        folder = _folder(envelope, head)
        for rcpt in recipients:
            now = self._clock()
            if _CONTROL.search(envelope.sender) or _CONTROL.search(rcpt.address):
                results.append(outcome(rcpt.address, 550, "5.1.3 control character in address", "local", now))
            elif rcpt.address.lower() in loop_error:
                # Postfix local(8): our own Delivered-To is already there, so this copy went round.
                results.append(outcome(rcpt.address, 554, "5.4.6 mail forwarding loop for " + rcpt.address,
                                       "local", now))
            else:
                root = os.path.normpath(os.path.join(route.path, folder) if folder else route.path)
                job = jobs.get(root)
                if job is None:
                    prefix = f"Return-Path: <{envelope.sender}>\r\nDelivered-To: {rcpt.address}\r\n".encode()
                    job = jobs[root] = _Job(root, rcpt.address, [prefix, message], len(prefix) + len(message),
                                            loop.create_future())
                copies.append((rcpt.address, job))
        if jobs:
            self._queued.extend(jobs.values())
            if self._worker is None or self._worker.done():
                self._worker = loop.create_task(self._work())
            if len(jobs) == 1:
                await next(iter(jobs.values())).future
            else:
                await asyncio.gather(*(job.future for job in jobs.values()))
        for address, job in copies:
            now = self._clock()
            if job.error is None:
                results.append(outcome(address, 250, "2.0.0 delivered to maildir", "local", now))
            elif job.error.errno in _TRANSIENT:
                results.append(outcome(address, 451, f"4.3.0 maildir delivery failed: {_why(job.error)}",
                                       "local", now))
            else:
                results.append(outcome(address, 554, f"5.2.0 maildir delivery failed: {_why(job.error)}",
                                       "local", now))
        return results

    async def _work(self) -> None:
        if self._use_syncfs:
            await self._work_syncfs()
            return
        while self._queued:
            batch, self._queued = self._queued, []
            try:
                await asyncio.to_thread(self._run_batch, batch)
            except Exception as exc:  # a bug: never leave a caller waiting forever
                for job in batch:
                    job.error = job.error or OSError(errno.EIO, f"internal error: {exc!r}")
            finally:
                self.batches += 1
                _settle(batch)

    async def _work_syncfs(self) -> None:
        """sync="syncfs": the files are written and renamed right here, on the event loop (a
        few fast system calls each); only syncfs(), the one slow call, goes to a thread.

        Why not the whole batch in a thread: every system call releases the GIL and must win it
        back, and while the loop thread is busy with sessions each win can wait a whole switch
        interval (5 ms): measured, a batch of 74 files took 430 ms in a thread beside a busy
        thread against 9 ms alone. One hand-over per sync instead of a few per file.

        `carried`: jobs renamed into new/ by the previous batch, waiting for the sync that makes
        their renames durable: the next batch's syncfs does it when more mail is waiting.
        """
        carried: list[_Job] = []
        while self._queued or carried:
            if carried and len(self._queued) < LINGER_BELOW:
                # Mail is streaming in (the last batch left renames to share a sync with this
                # one): let a few more milliseconds of it join, since every syncfs() walks the
                # whole file system. Measured: 9-17 % more messages per second, less CPU each.
                await asyncio.sleep(self.linger)
            batch, self._queued = self._queued, []
            try:
                written = self._write_all_tmp(batch)
                # One syncfs: this batch's file data AND the previous batch's renames durable.
                synced = set(map(id, await asyncio.to_thread(self._syncfs_all, written + carried)))
                renamed = self._rename_synced(written, synced)
                if carried:
                    self.dir_syncs += 1
                if not self._queued and renamed:
                    # Nothing waits to share the next sync: make these renames durable now
                    # rather than keep their senders waiting for more mail.
                    await asyncio.to_thread(self._syncfs_all, renamed)
                    self.dir_syncs += 1
                    renamed = []
            except Exception as exc:  # a bug: never leave a caller waiting forever
                for job in batch + carried:
                    job.error = job.error or OSError(errno.EIO, f"internal error: {exc!r}")
                renamed = []
            self.batches += 1
            waiting = set(map(id, renamed))
            _settle([job for job in batch + carried if id(job) not in waiting])
            carried = renamed

    def _write_all_tmp(self, batch: list[_Job]) -> list[_Job]:
        """Write each file into tmp/ without an fsync; the jobs written (the others have .error)."""
        written = []
        for job in batch:
            job.name = self._unique_name(job.size)
            try:
                self._write_tmp(job, sync=False)
                written.append(job)
            except OSError as exc:
                job.error = exc
        return written

    @staticmethod
    def _rename_synced(written: list[_Job], synced: set[int]) -> list[_Job]:
        """Move into new/ the files whose data is durable; remove the others from tmp/."""
        renamed = []
        for job in written:
            tmp = os.path.join(job.root, "tmp", job.name)
            if id(job) not in synced:
                _unlink_quietly(tmp)
                continue
            try:
                os.rename(tmp, os.path.join(job.root, "new", job.name))
                renamed.append(job)
            except OSError as exc:
                job.error = exc
                _unlink_quietly(tmp)
        return renamed

    def _unique_name(self, size: int) -> str:
        # time.M<usec>P<pid>Q<counter>.<host>,S=<size> (Maildir spec + Dovecot's S= size field).
        now = self._clock()
        sec = int(now)
        return f"{sec}.M{int((now - sec) * 1e6)}P{os.getpid()}Q{next(self._counter)}.{self._host},S={size}"

    def _run_batch(self, batch: list[_Job]) -> None:
        """sync="fsync", in a worker thread: phases described in the module docstring."""
        for job in batch:
            job.name = self._unique_name(job.size)
        # Phase 1: write + fsync each file in tmp/, the files of a batch in parallel: the file
        # system commits concurrent fsyncs together (ext4's journal, XFS's log), so N files cost
        # about one journal commit instead of N in a row.
        if len(batch) > 1:
            list(self._pool().map(self._write_tmp_noraise, batch))
        else:
            self._write_tmp_noraise(batch[0])
        written = [job for job in batch if job.error is None]
        renamed: dict[str, list[_Job]] = {}
        for job in written:  # phase 2: rename into new/
            try:
                os.rename(os.path.join(job.root, "tmp", job.name), os.path.join(job.root, "new", job.name))
                renamed.setdefault(os.path.join(job.root, "new"), []).append(job)
            except OSError as exc:
                job.error = exc
                _unlink_quietly(os.path.join(job.root, "tmp", job.name))
        for directory, jobs in renamed.items():  # phase 3: one fsync per new/ directory
            try:
                _sync_dir(directory)
                self.dir_syncs += 1
            except OSError as exc:
                for job in jobs:  # visible but not known durable: retry later (duplicate, not loss)
                    job.error = exc

    @staticmethod
    def _syncfs_all(jobs: list[_Job]) -> list[_Job]:
        """syncfs() once per file system under the jobs' roots; the jobs whose sync worked."""
        assert _syncfs is not None
        by_root: dict[str, list[_Job]] = {}
        for job in jobs:
            by_root.setdefault(job.root, []).append(job)
        done_devices: dict[int, OSError | None] = {}
        ok: list[_Job] = []
        for root, group in by_root.items():
            error: OSError | None
            try:
                fd = _open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    dev = os.fstat(fd).st_dev
                    if dev not in done_devices:
                        try:
                            _syncfs(fd)
                            done_devices[dev] = None
                        except OSError as exc:
                            done_devices[dev] = exc
                    error = done_devices[dev]
                finally:
                    os.close(fd)
            except OSError as exc:
                error = exc
            for job in group:
                if error is None:
                    ok.append(job)
                else:  # not known durable: retry later (a duplicate at worst, never a loss)
                    job.error = error  # (the caller removes a file still in tmp/)
        return ok

    def _pool(self) -> ThreadPoolExecutor:
        if self._fsync_pool is None:
            self._fsync_pool = ThreadPoolExecutor(FSYNC_THREADS, thread_name_prefix="mailboat-maildir-fsync")
        return self._fsync_pool

    def _write_tmp_noraise(self, job: _Job) -> None:
        try:
            self._write_tmp(job)
        except OSError as exc:
            job.error = exc

    def _write_tmp(self, job: _Job, sync: bool = True) -> None:
        path = os.path.join(job.root, "tmp", job.name)
        try:
            fd = _open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            _make_maildir(job.root)  # first delivery to this mailbox (or it was removed)
            fd = _open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            _write_all(fd, job.data)
            if sync:
                _fsync(fd)
        except OSError:
            os.close(fd)
            _unlink_quietly(path)
            raise
        os.close(fd)


def _settle(jobs: list[_Job]) -> None:
    for job in jobs:
        if not job.future.done():
            job.future.set_result(None)


def _write_all(fd: int, chunks: list[bytes]) -> None:
    views = [memoryview(c) for c in chunks if c]
    while views:
        n = os.writev(fd, views)
        while views and n >= len(views[0]):
            n -= len(views[0])
            views.pop(0)
        if views and n:
            views[0] = views[0][n:]


def _make_maildir(root: str) -> None:
    """Create root/{tmp,new,cur} (0700), and missing parents, and make the new entries durable."""
    missing: list[str] = []
    path = os.path.abspath(root)
    while not os.path.isdir(path) and os.path.dirname(path) != path:
        missing.append(path)
        path = os.path.dirname(path)
    created = []
    for path in [*reversed(missing), *(os.path.join(root, sub) for sub in ("tmp", "new", "cur"))]:
        try:
            os.mkdir(path, 0o700)
            created.append(path)
        except FileExistsError:
            if not os.path.isdir(path):
                raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory", path) from None
    if os.path.basename(os.path.normpath(root)).startswith("."):
        # A Maildir++ folder (.Junk): mark it, and make sure the mailbox around it is a Maildir.
        with open(os.path.join(root, "maildirfolder"), "ab"):
            pass
        mailbox = os.path.dirname(os.path.normpath(root))
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(mailbox, sub), 0o700, exist_ok=True)
    # A directory entry is durable only once its parent is synced; this runs once per mailbox.
    for parent in {os.path.dirname(p) for p in created}:
        _sync_dir(parent)


def _sync_dir(path: str) -> None:
    fd = _open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


_DELIVERED_TO = re.compile(rb"(?im)^delivered-to:[ \t]*<?([^\r\n>]+?)>?[ \t]*\r?$")


def _delivered_to_loop(head: bytes) -> set[str]:
    """Lowercased addresses of the Delivered-To headers already in the header block `head`."""
    return {addr.decode("utf-8", "replace").strip().lower() for addr in _DELIVERED_TO.findall(head)}


_LEGACY_LABEL = re.compile(rb"(?im)^X-Mailboat-Folder:[ \t]*Junk[ \t]*\r?$")


def _folder(envelope: Envelope, head: bytes) -> str | None:
    """The Maildir++ subfolder for this message: `.Junk` when the filters quarantined it
    (`Envelope.quarantine`), else None (the mailbox itself).

    A message queued by a mailboat that did not record quarantine in the envelope
    (`quarantine is None`) is judged by the label that version wrote, ``X-Mailboat-Folder: Junk``
    in the header block `head` (incoming copies of it are removed at reception); for every
    other message the label is only a label and never decides.
    """
    if envelope.quarantine is None:
        return ".Junk" if _LEGACY_LABEL.search(head) else None
    return ".Junk" if envelope.quarantine else None
