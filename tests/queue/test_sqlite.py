"""SQLite backend specifics: durability settings, disk full, corrupt records, schema, restart."""

import asyncio
import logging
import os
import sqlite3

import pytest

from mailboat.delivery.maildir import MaildirTransport
from mailboat.mail.envelope import Envelope, Recipient
from mailboat.mail.ids import new_queue_id
from mailboat.queue.runner import QueueRunner
from mailboat.queue.sqlite import SCHEMA_VERSION, SqliteQueueStore
from mailboat.queue.store import QueueError, QueueFullError
from mailboat.routing.route import Maildir

ENV = Envelope("s@y.test", (Recipient("bob@x.test"),))


def test_durability_pragmas(tmp_path):
    path = str(tmp_path / "q.sqlite")

    async def main():
        store = SqliteQueueStore(path)
        conn = store._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        # NORMAL: SQLite does not fsync at COMMIT; the writer fsyncs the WAL itself, outside the
        # lock, before it answers (test_only_durable_batches_fsync).
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        await store.close()
        await store.close()  # idempotent
        with pytest.raises(QueueError):
            await store.enqueue(new_queue_id(), ENV, b"x")

    asyncio.run(main())


def test_only_durable_batches_fsync(tmp_path, monkeypatch):
    """An enqueue's batch ends with an fsync of the WAL, after COMMIT and outside the workers'
    lock, before the caller hears back; a batch holding only lazy writes (claims, delivery
    records, journey events) has none. SQLite itself never fsyncs at commit (NORMAL)."""
    from mailboat.queue import groupcommit

    path = str(tmp_path / "q.sqlite")
    synced: list[str] = []
    real = groupcommit._fsync

    def counting(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(groupcommit, "_fsync", counting)

    async def main():
        store = SqliteQueueStore(path, shared=True)
        level = await store._writer.submit(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
        qid = new_queue_id()
        synced.clear()
        await store.enqueue(qid, ENV, b"x")
        after_enqueue = list(synced)
        await store._writer.submit(lambda c: None, durable=False)
        claimed = await store.claim_due(time.time() + 1, 10)
        await store.record_outcomes(qid, [], None)
        after_lazy = list(synced)
        await store.close()
        return level, after_enqueue, after_lazy, [i.queue_id for i in claimed], qid

    import time
    level, after_enqueue, after_lazy, claimed, qid = asyncio.run(main())
    assert level == 1  # NORMAL
    assert after_enqueue == [path + "-wal"] and after_lazy == after_enqueue
    assert claimed == [qid]


def test_failed_wal_sync_fails_the_enqueue(tmp_path, monkeypatch):
    from mailboat.queue import groupcommit

    def broken(fd):
        raise OSError(5, "Input/output error")

    async def main():
        store = SqliteQueueStore(str(tmp_path / "q.sqlite"))
        await store.enqueue(new_queue_id(), ENV, b"warm-up")
        monkeypatch.setattr(groupcommit, "_fsync", broken)
        with pytest.raises(QueueError, match="sync failed"):
            await store.enqueue(new_queue_id(), ENV, b"x")
        await store.close()

    asyncio.run(main())


def test_disk_full_fails_only_the_big_message(tmp_path):
    path = str(tmp_path / "q.sqlite")

    async def main():
        store = SqliteQueueStore(path, spool_min=1 << 30)  # every body a BLOB, as tested here
        await store.enqueue(new_queue_id(), ENV, b"warm-up")
        # SQLITE_FULL without filling the real disk: cap the database at its size + ~400 KB.
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count = {pages + 100}")
        small = [new_queue_id() for _ in range(10)]
        big = new_queue_id()
        results = await asyncio.gather(
            *(store.enqueue(q, ENV, b"x" * 1000) for q in small),
            store.enqueue(big, ENV, b"y" * 2_000_000), return_exceptions=True)
        assert results[:10] == [None] * 10
        assert isinstance(results[10], QueueFullError)
        assert await store.get(big) is None and await store.events(big) == []
        with pytest.raises(KeyError):
            await store.load_message(big)
        assert len(await store.list()) == 11
        await store.close()

    asyncio.run(main())


def test_corrupt_record_is_set_aside(tmp_path, caplog):
    path = str(tmp_path / "q.sqlite")
    good, bad = new_queue_id(), new_queue_id()

    async def fill():
        store = SqliteQueueStore(path)
        await store.enqueue(bad, ENV, b"1")
        await store.enqueue(good, ENV, b"2")
        await store.close()

    asyncio.run(fill())
    conn = sqlite3.connect(path)
    conn.execute("UPDATE message SET envelope = x'00ff' WHERE queue_id = ?", (bad,))
    conn.commit()
    conn.close()

    async def check():
        store = SqliteQueueStore(path)
        claimed = await store.claim_due(1e12, 10)
        assert [i.queue_id for i in claimed] == [good]
        assert [i.queue_id for i in await store.list()] == [good]
        assert await store.get(bad) is None
        assert [e.kind for e in await store.events(bad)] == ["queued", "corrupt"]
        await store.close()

    caplog.set_level(logging.WARNING, logger="mailboat.queue")
    asyncio.run(check())
    assert any(f"{bad}: corrupt queue record set aside" in r.getMessage() for r in caplog.records)
    status = sqlite3.connect(path).execute("SELECT status FROM message WHERE queue_id = ?", (bad,)).fetchone()
    assert status == ("corrupt",)  # kept for the operator, never delivered


def test_outcome_of_a_message_set_aside_meanwhile_changes_nothing(tmp_path):
    """A claimed message found corrupt while it was out for delivery stays set aside: recording
    its outcome (final or not) neither removes it nor writes over it."""
    from mailboat.delivery.transport import outcome

    path = str(tmp_path / "q.sqlite")
    two = Envelope("s@y.test", (Recipient("bob@x.test"), Recipient("carol@x.test")))

    async def main():
        store = SqliteQueueStore(path)
        done, partial = new_queue_id(), new_queue_id()
        await store.enqueue(done, ENV, b"1")
        await store.enqueue(partial, two, b"2")
        claimed = {item.queue_id: item for item in await store.claim_due(time.time() + 1, 10)}
        await store._writer.submit(lambda c: c.execute("UPDATE message SET status = 'corrupt'"))
        now = time.time()
        await store.record_outcomes(done, [outcome("bob@x.test", 250, "2.0.0 ok", "local", now)], None,
                                    claimed=claimed[done])
        await store.record_outcomes(partial, [outcome("bob@x.test", 250, "2.0.0 ok", "local", now)], now + 60,
                                    claimed=claimed[partial])
        await store.finish(done, now)
        kinds = [e.kind for e in await store.events(done)]
        await store.close()
        return done, partial, kinds

    import time
    done, partial, kinds = asyncio.run(main())
    conn = sqlite3.connect(path)
    rows = dict(conn.execute("SELECT queue_id, status FROM message"))
    attempts = conn.execute("SELECT attempts, recipients FROM message WHERE queue_id = ?", (partial,)).fetchone()
    assert rows == {done: "corrupt", partial: "corrupt"}
    assert attempts == (0, None)
    assert conn.execute("SELECT count(*) FROM body").fetchone() == (2,)
    assert "finished" not in kinds


def test_newer_schema_refuses_to_open(tmp_path):
    path = str(tmp_path / "q.sqlite")
    asyncio.run(SqliteQueueStore(path).close())
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(QueueError, match="newer"):
        SqliteQueueStore(path)


def test_unopenable_file_is_a_queue_error(tmp_path):
    (tmp_path / "junk").write_bytes(b"this is not a database" * 100)
    with pytest.raises(QueueError, match="cannot open"):
        SqliteQueueStore(str(tmp_path / "junk"))
    with pytest.raises(QueueError, match="cannot open"):
        SqliteQueueStore(str(tmp_path / "no" / "such" / "dir" / "q.sqlite"))


def test_cancelled_waiter_does_not_undo_the_write(tmp_path):
    path = str(tmp_path / "q.sqlite")

    async def main():
        store = SqliteQueueStore(path)
        qid = new_queue_id()
        task = asyncio.ensure_future(store.enqueue(qid, ENV, b"m"))
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()  # drains the writer
        store = SqliteQueueStore(path)
        # The write was already queued: it may have committed (then it is whole) or not at all.
        item = await store.get(qid)
        assert item is None or await store.load_message(qid) == b"m"
        await store.close()

    asyncio.run(main())


class Router:
    def __init__(self, root):
        self.root = root

    def expand(self, address):
        return [address]

    def route(self, address):
        return Maildir(os.path.join(self.root, address.split("@")[0]))


def test_restart_delivers_each_message_exactly_once(tmp_path):
    path, mail = str(tmp_path / "q.sqlite"), str(tmp_path / "mail")

    async def accept():
        store = SqliteQueueStore(path)
        await asyncio.gather(*(store.enqueue(new_queue_id(), Envelope("s@y.test", (Recipient("bob@x.test"),)),
                                             b"Message-ID: <%d@test>\r\n\r\nbody\r\n" % i) for i in range(200)))
        # A runner claimed 50 and "crashed" before recording anything: leases are left behind.
        assert len(await store.claim_due(store._clock(), 50)) == 50
        await store.close()

    async def restart():
        store = SqliteQueueStore(path, release_leases=True)
        assert len(await store.list()) == 200
        runner = QueueRunner(store, Router(mail), {"maildir": MaildirTransport()}, batch_size=64)
        while await runner.run_once():
            pass
        assert await store.list() == []
        await store.close()

    asyncio.run(accept())
    asyncio.run(restart())
    new = os.path.join(mail, "bob", "new")
    ids = sorted(open(os.path.join(new, n), "rb").read().split(b"Message-ID: ")[1].split(b"\r\n")[0]
                 for n in os.listdir(new))
    assert ids == sorted(b"<%d@test>" % i for i in range(200))


def test_schema_1_queue_is_upgraded_in_place(tmp_path):
    """A queue written by schema 1 (before delay warnings were stored, and before spooled bodies)
    opens, keeps its messages and gains the delay_warned, spooled and checksum columns."""
    from mailboat.queue import codec

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE message (queue_id TEXT PRIMARY KEY, envelope BLOB NOT NULL, recipients BLOB,
            size INTEGER NOT NULL, arrival REAL NOT NULL, next_attempt REAL NOT NULL,
            lease_until REAL NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL DEFAULT 'active');
        CREATE INDEX message_due ON message (status, next_attempt);
        CREATE TABLE body (queue_id TEXT PRIMARY KEY, data BLOB NOT NULL);
        CREATE TABLE event (id INTEGER PRIMARY KEY, queue_id TEXT NOT NULL, at REAL NOT NULL,
            kind TEXT NOT NULL, detail TEXT NOT NULL);
        PRAGMA user_version = 1;
    """)
    env = Envelope("a@x.test", (Recipient("b@x.test"),))
    conn.execute("INSERT INTO message (queue_id, envelope, size, arrival, next_attempt) VALUES (?, ?, 3, 1.0, 1.0)",
                 ("OLDMESSAGE0001", codec.encode_envelope(env)))
    conn.execute("INSERT INTO body VALUES ('OLDMESSAGE0001', x'6d7367')")
    conn.commit()
    conn.close()

    async def main():
        store = SqliteQueueStore(str(path))
        try:
            item = await store.get("OLDMESSAGE0001")
            assert item.envelope == env and not item.delay_warned
            assert await store.mark_delay_warned("OLDMESSAGE0001", 2.0)
            assert (await store.get("OLDMESSAGE0001")).delay_warned
            assert await store.load_message("OLDMESSAGE0001") == b"msg"
        finally:
            await store.close()
    asyncio.run(main())
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
    # No checksum for a body queued before they were kept: delivered unchecked (above).
    assert sqlite3.connect(path).execute("SELECT checksum FROM body").fetchall() == [(None,)]


def test_background_checkpoint_moves_the_wal_without_the_writer(tmp_path):
    """checkpoint="background": commits never checkpoint (wal_autocheckpoint=0), the thread does,
    and everything committed is in the database file once the store is closed."""
    path = str(tmp_path / "q.sqlite")

    async def main():
        store = SqliteQueueStore(path, checkpoint="background")
        assert store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        ids = [new_queue_id() for _ in range(50)]
        await asyncio.gather(*(store.enqueue(q, ENV, b"x" * 20_000) for q in ids))
        for _ in range(100):
            if store.checkpointer.checkpoints:
                break
            await asyncio.sleep(0.02)
        assert store.checkpointer.checkpoints >= 1
        await store.close()
        return ids

    ids = asyncio.run(main())
    # Reading the database file alone (the WAL set aside, if the last close left one) finds
    # every message: it was copied.
    if os.path.exists(path + "-wal"):
        os.rename(path + "-wal", path + "-wal.moved")
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM message").fetchone()[0] == len(ids)
    conn.close()


def test_checkpoint_restart_bounds_the_wal(tmp_path):
    from mailboat.queue.checkpoint import Checkpointer

    path = str(tmp_path / "q.sqlite")

    async def main():
        store = SqliteQueueStore(path, checkpoint="elsewhere")
        assert store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        await asyncio.gather(*(store.enqueue(new_queue_id(), ENV, b"y" * 50_000) for _ in range(20)))
        ckpt = Checkpointer(store._connect, interval=3600, restart_frames=10)
        conn = store._connect()
        ckpt.run_once(conn)
        assert ckpt.restarts == 1
        await store.enqueue(new_queue_id(), ENV, b"z")  # starts the WAL file over
        frames = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
        conn.close()
        ckpt.close()
        await store.close()
        return frames

    assert asyncio.run(main()) < 10


def test_schema_4_queue_gains_lease_tokens_and_its_leases_are_released_as_ours(tmp_path):
    """A queue of schema 4 (leases without token or node) upgrades in place; the serving process's
    start-up releases those leases whatever its node is called (they can only be a previous
    incarnation's); a store that does not release leaves them."""
    path = str(tmp_path / "old.db")
    qid = new_queue_id()

    async def fill():
        store = SqliteQueueStore(path, clock=lambda: 1000.0)
        await store.enqueue(qid, ENV, b"msg", claim=True)  # leased until 1300
        await store.close()

    asyncio.run(fill())
    conn = sqlite3.connect(path)
    conn.executescript("ALTER TABLE message DROP COLUMN lease_token; ALTER TABLE message DROP COLUMN lease_node;"
                       "PRAGMA user_version = 4;")
    conn.close()

    async def reopen(release: bool) -> list[str]:
        store = SqliteQueueStore(path, release_leases=release, node="mx2")
        try:
            return [item.queue_id for item in await store.claim_due(1001.0, 10)]
        finally:
            await store.close()

    assert asyncio.run(reopen(False)) == []
    assert asyncio.run(reopen(True)) == [qid]
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert sqlite3.connect(path).execute("SELECT lease_node FROM message").fetchall() == [("mx2",)]
