"""Spooled bodies (queue/bodies.py): large messages as files beside the SQLite queue.

What a user relies on: a 250 stands on a durable file and row, a failed write leaves nothing
behind, a finished message leaves no file, and a crash never leaves the queue stuck on a body
that is not there.
"""

import asyncio
import errno
import logging
import os
import sqlite3

import pytest

from mailboat.delivery.outcome import RecipientOutcome, RecipientState
from mailboat.mail.envelope import Envelope, Recipient
from mailboat.mail.ids import new_queue_id
from mailboat.queue import bodies, groupcommit
from mailboat.queue.sqlite import SPOOL_MIN, SqliteQueueStore
from mailboat.queue.store import DuplicateQueueIdError, QueueFullError, QueueSyncError

ENV = Envelope("s@y.test", (Recipient("bob@x.test"),))
BIG = b"Subject: big\r\n\r\n" + (b"y" * 74 + b"\r\n") * 1800  # ~137 KB
SMALL = b"Subject: small\r\n\r\nhello\r\n"


def delivered(rcpt: str, at: float) -> RecipientOutcome:
    return RecipientOutcome(rcpt, RecipientState.DELIVERED, 250, "2.0.0 ok", "local", at)


def files(path: str) -> list[str]:
    return sorted(os.listdir(path + "-bodies"))


def spooled_flag(path: str, queue_id: str):
    row = sqlite3.connect(path).execute("SELECT spooled, length(data) FROM body WHERE queue_id = ?",
                                        (queue_id,)).fetchone()
    return tuple(row) if row else None


def test_large_body_is_a_file_small_one_a_row(tmp_path):
    path = str(tmp_path / "q.db")
    big, small = new_queue_id(), new_queue_id()
    assert len(BIG) >= SPOOL_MIN > len(SMALL)

    async def main():
        store = SqliteQueueStore(path)
        await store.enqueue(big, ENV, BIG)
        await store.enqueue(small, ENV, SMALL)
        assert files(path) == [big]
        with open(os.path.join(path + "-bodies", big), "rb") as f:
            assert f.read() == BIG
        assert os.stat(os.path.join(path + "-bodies", big)).st_mode & 0o777 == 0o600
        assert spooled_flag(path, big) == (1, 0) and spooled_flag(path, small) == (0, len(SMALL))
        assert await store.load_message(big) == BIG
        assert await store.load_message(small) == SMALL
        await store.close()

    asyncio.run(main())


def test_finished_and_deleted_messages_leave_no_file(tmp_path):
    path = str(tmp_path / "q.db")
    ids = [new_queue_id() for _ in range(3)]

    async def main():
        store = SqliteQueueStore(path)
        for queue_id in ids:
            await store.enqueue(queue_id, ENV, BIG)
        claimed = await store.claim_due(store._clock(), 10)
        assert {item.queue_id for item in claimed} == set(ids)
        # claim_due() read the bytes already (prefetch), from the files
        assert await store.load_message(ids[0]) == BIG
        await store.record_outcomes(ids[0], [delivered("bob@x.test", 1.0)], None)
        await store.finish(ids[1], 1.0)
        assert await store.delete(ids[2], 1.0)
        assert not await store.delete(ids[2], 1.0)  # gone: reported as not found
        # record_outcomes and finish unlink after the next sync, which they do not wait for
        for _ in range(100):
            if not files(path):
                break
            await asyncio.sleep(0.01)
        assert files(path) == []
        assert await store.list() == []
        await store.close()

    asyncio.run(main())


def test_full_disk_while_writing_the_body_stores_nothing(tmp_path, monkeypatch):
    path = str(tmp_path / "q.db")
    queue_id = new_queue_id()

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    async def main():
        store = SqliteQueueStore(path)
        monkeypatch.setattr(bodies, "_write", full)
        with pytest.raises(QueueFullError):
            await store.enqueue(queue_id, ENV, BIG)
        monkeypatch.undo()
        assert files(path) == [] and await store.get(queue_id) is None
        await store.enqueue(new_queue_id(), ENV, BIG)  # and the queue goes on
        await store.close()

    asyncio.run(main())


def test_failed_insert_removes_the_new_file_and_keeps_the_old_message(tmp_path):
    path = str(tmp_path / "q.db")
    queue_id = new_queue_id()

    async def main():
        store = SqliteQueueStore(path)
        await store.enqueue(queue_id, ENV, SMALL)  # a row, no file
        with pytest.raises(DuplicateQueueIdError):
            await store.enqueue(queue_id, ENV, BIG)
        assert files(path) == []
        assert await store.load_message(queue_id) == SMALL
        await store.enqueue(other := new_queue_id(), ENV, BIG)
        with pytest.raises(DuplicateQueueIdError):  # the file is there: never overwritten
            await store.enqueue(other, ENV, BIG[::-1])
        assert await store.load_message(other) == BIG
        await store.close()

    asyncio.run(main())


def test_spooled_enqueue_is_answered_after_one_syncfs(tmp_path, monkeypatch):
    """The files and the WAL of a batch of enqueues are made durable by one syncfs before
    anyone is answered; a batch of small messages still costs one fsync of the WAL."""
    path = str(tmp_path / "q.db")
    calls = []

    async def main():
        store = SqliteQueueStore(path)
        await store.enqueue(new_queue_id(), ENV, SMALL)  # warm-up (opens the WAL descriptor)
        real_syncfs, real_fsync = groupcommit._syncfs, groupcommit._fsync
        monkeypatch.setattr(groupcommit, "_syncfs", lambda fd: calls.append("syncfs") or
                            (real_syncfs(fd) if real_syncfs else os.sync()))
        monkeypatch.setattr(groupcommit, "_fsync", lambda fd: calls.append("fsync") or real_fsync(fd))
        await asyncio.gather(*(store.enqueue(new_queue_id(), ENV, BIG) for _ in range(10)))
        assert calls == ["syncfs"]
        calls.clear()
        await asyncio.gather(*(store.enqueue(new_queue_id(), ENV, SMALL) for _ in range(10)))
        assert calls == ["fsync"]
        await store.close()

    asyncio.run(main())


def test_failed_syncfs_fails_the_enqueue_but_keeps_the_file_with_its_row(tmp_path, monkeypatch):
    path = str(tmp_path / "q.db")
    queue_id = new_queue_id()

    def broken(fd):
        raise OSError(errno.EIO, "Input/output error")

    async def main():
        store = SqliteQueueStore(path)
        await store.enqueue(new_queue_id(), ENV, SMALL)
        monkeypatch.setattr(groupcommit, "_syncfs", broken)
        monkeypatch.setattr(groupcommit.os, "sync", lambda: broken(0))
        with pytest.raises(QueueSyncError):
            await store.enqueue(queue_id, ENV, BIG)
        monkeypatch.undo()
        # committed but never promised: it may be delivered (a duplicate at worst), so its
        # bytes must still be there
        assert queue_id in files(path)
        assert await store.load_message(queue_id) == BIG
        await store.close()

    asyncio.run(main())


def test_missing_body_after_a_power_cut_sets_the_record_aside(tmp_path, caplog):
    """A power cut between the row's commit and the file's data reaching the disk (never
    acknowledged, bodies.py point 3): the record is set aside with its reason, not retried
    forever, and the rest of the queue goes on."""
    path = str(tmp_path / "q.db")
    lost, short, good = new_queue_id(), new_queue_id(), new_queue_id()

    async def fill():
        store = SqliteQueueStore(path)
        for queue_id in (lost, short, good):
            await store.enqueue(queue_id, ENV, BIG)
        await store.close()

    asyncio.run(fill())
    os.unlink(os.path.join(path + "-bodies", lost))
    with open(os.path.join(path + "-bodies", short), "r+b") as f:
        f.truncate(4096)

    async def main():
        store = SqliteQueueStore(path, release_leases=True)
        with caplog.at_level(logging.WARNING, logger="mailboat.queue"):
            for queue_id in (lost, short):
                with pytest.raises(KeyError):
                    await store.load_message(queue_id)
        assert await store.load_message(good) == BIG
        await asyncio.sleep(0.05)  # the set-aside is a background write
        assert [item.queue_id for item in await store.list()] == [good]
        kinds = {e.kind: e.detail for e in await store.events(short)}
        assert "4096 bytes" in kinds["corrupt"]["reason"]
        assert any("missing" in r.getMessage() for r in caplog.records)
        await store.close()

    asyncio.run(main())


def test_orphaned_bodies_are_swept_when_the_server_opens_the_queue(tmp_path):
    path = str(tmp_path / "q.db")
    kept = new_queue_id()

    async def fill():
        store = SqliteQueueStore(path)
        await store.enqueue(kept, ENV, BIG)
        await store.close()

    asyncio.run(fill())
    spool = path + "-bodies"
    old_orphan, new_orphan = new_queue_id(), new_queue_id()
    for name in (old_orphan, new_orphan, "not-a-queue-id.txt"):
        with open(os.path.join(spool, name), "wb") as f:
            f.write(b"left by a crash")
    hour_ago = os.stat(spool).st_mtime - 3600
    for name in (old_orphan, kept, "not-a-queue-id.txt"):
        os.utime(os.path.join(spool, name), (hour_ago, hour_ago))

    async def reopen(release: bool):
        store = SqliteQueueStore(path, release_leases=release)
        await store.close()

    asyncio.run(reopen(False))  # `mailboat sendmail` and the other workers never sweep
    assert old_orphan in files(path)
    asyncio.run(reopen(True))
    # the old orphan goes; a fresh file may be an enqueue in flight; the kept one has its row;
    # a file that is not a queue id is not ours to remove
    assert files(path) == sorted([kept, new_orphan, "not-a-queue-id.txt"])


def test_spooled_messages_survive_a_restart(tmp_path):
    path = str(tmp_path / "q.db")
    ids = [new_queue_id() for _ in range(5)]

    async def fill():
        store = SqliteQueueStore(path)
        await asyncio.gather(*(store.enqueue(q, ENV, BIG + q.encode()) for q in ids))
        await store.close()

    async def drain():
        store = SqliteQueueStore(path, release_leases=True)
        claimed = await store.claim_due(store._clock() + 1, 10)
        assert sorted(item.queue_id for item in claimed) == sorted(ids)
        for item in claimed:
            assert await store.load_message(item.queue_id) == BIG + item.queue_id.encode()
            await store.record_outcomes(item.queue_id, [delivered("bob@x.test", 2.0)], None, claimed=item)
        await store.close()

    asyncio.run(fill())
    asyncio.run(drain())
    assert sqlite3.connect(path).execute("SELECT count(*) FROM message").fetchone()[0] == 0
    assert files(path) == []  # close() waited for the sync after which they were unlinked


def test_periodic_sweep_spares_bodies_with_a_record_and_fresh_files(tmp_path):
    """The running server's hourly sweep (upkeep.sweep_bodies): orphans of another process's
    crash go; a body whose row exists, or one too young to judge, stays."""
    path = str(tmp_path / "q.db")
    queued = new_queue_id()

    async def main():
        store = SqliteQueueStore(path, release_leases=True)
        await store.enqueue(queued, ENV, BIG)
        spool = path + "-bodies"
        orphan, fresh = new_queue_id(), new_queue_id()
        for name in (orphan, fresh):
            with open(os.path.join(spool, name), "wb") as f:
                f.write(b"left by a killed sendmail")
        old = os.stat(spool).st_mtime - 3600
        for name in (orphan, queued):
            os.utime(os.path.join(spool, name), (old, old))
        assert await store.sweep_bodies() == 1
        assert files(path) == sorted([queued, fresh])
        assert await store.load_message(queued) == BIG
        await store.close()

    asyncio.run(main())
