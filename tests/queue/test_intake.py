"""The queue's one entrance (queue/intake.py) over a real SQLite queue, a real runner and real
Maildirs: what it decides for each message (hand-off, wake-up, deliver first), that the caller
hears `accepted` only once the message is safe and before any delivery of it, the errors that
become 451/452, and the count of expected messages the group commit lingers for."""

from __future__ import annotations

import asyncio
import logging
import os
import time

import pytest

from mailboat.delivery.maildir import MaildirTransport
from mailboat.mail.envelope import Envelope, Recipient
from mailboat.mail.ids import new_queue_id
from mailboat.queue.intake import Intake, QueueError, QueueFullError
from mailboat.queue.runner import DELIVER_FIRST_MIN, QueueRunner
from mailboat.queue.sqlite import SqliteQueueStore
from mailboat.routing.router import Router

SMALL = b"Subject: small\r\n\r\nhello\r\n"
LARGE = b"Subject: large\r\n\r\n" + b"z" * DELIVER_FIRST_MIN + b"\r\n"
CONNECT = {"client": "localhost[127.0.0.1]", "helo": "client.test", "listener": "smtp", "tls": None,
           "sasl_username": None}


def envelope(*recipients: str) -> Envelope:
    return Envelope("s@y.test", tuple(Recipient(r) for r in recipients))


class Queue:
    """A SQLite queue in tmp_path, a runner delivering x.test to Maildirs under it, an intake."""

    def __init__(self, tmp_path, *, handoff: bool, handoff_bytes: int = 64 << 20) -> None:
        self.root = str(tmp_path)
        self.store = SqliteQueueStore(os.path.join(self.root, "queue.db"))
        router = Router(local_domains=["x.test"], account_exists=lambda address: True, aliases={},
                        catch_all=False, maildir_template="{data_dir}/mail/{local}", data_dir=self.root,
                        hostname="mx.x.test")
        self.runner = QueueRunner(self.store, router, {"maildir": MaildirTransport()}, poll_interval=3600,
                                  handoff_bytes=handoff_bytes)
        self.wakes = 0
        self.intake = Intake(self.store, handoff=self.runner if handoff else None, deliver_first=self.runner,
                             wake=self._wake)
        self.store.expect_company(self.intake.coming)

    def _wake(self) -> None:
        self.wakes += 1

    def mailbox(self, local: str) -> list[bytes]:
        new = os.path.join(self.root, "mail", local, "new")
        if not os.path.isdir(new):
            return []
        return [open(os.path.join(new, name), "rb").read() for name in sorted(os.listdir(new))]

    def committed(self, queue_id: str) -> bool:
        """Whether another connection (another process, say) sees the message's row."""
        reader = SqliteQueueStore(self.store.path)
        try:
            return reader._conn.execute("SELECT 1 FROM message WHERE queue_id = ?", (queue_id,)).fetchone() is not None
        finally:
            reader._conn.close()

    def reopened(self) -> SqliteQueueStore:
        """The queue opened again (after close()): everything committed, lazy rows too."""
        return SqliteQueueStore(self.store.path)

    async def close(self) -> None:
        await self.runner.stop()
        await self.store.close()


def test_a_message_the_runner_has_room_for_is_handed_over_after_accepted(tmp_path):
    """This process runs the queue: the message is enqueued claimed (no poll can take it),
    `accepted` runs once it is committed and before anything is delivered, and the runner
    delivers it from the bytes in memory; nobody is woken."""
    queue = Queue(tmp_path, handoff=True)
    seen = []

    async def main():
        qid = new_queue_id()
        expected = queue.intake.expect()

        def accepted():
            seen.append((queue.committed(qid), len(queue.mailbox("bob")), queue.intake.coming()))

        await queue.intake.put(qid, envelope("bob@x.test"), SMALL, accepted=accepted, expected=expected,
                               connect=CONNECT, connected_at=1.0)
        assert expected.closed
        assert await queue.store.claim_due(time.time(), 10) == []  # leased to this runner
        await queue.close()  # waits for the delivery handed over; its journey rows are committed
        return [e.kind for e in await queue.reopened().events(qid)]

    events = asyncio.run(main())
    assert seen == [(True, 0, 0)]
    assert [m.endswith(SMALL) for m in queue.mailbox("bob")] == [True]
    assert events[:2] == ["connect", "queued"] and events[-1] == "finished"
    assert queue.wakes == 0


@pytest.mark.parametrize("why", ["another process runs the queue", "the hand-off budget is spent"])
def test_otherwise_the_message_is_queued_for_a_claim_and_the_runner_woken(tmp_path, why):
    queue = Queue(tmp_path, handoff=why != "another process runs the queue", handoff_bytes=10)
    seen = []

    async def main():
        qid = new_queue_id()
        await queue.intake.put(qid, envelope("bob@x.test"), SMALL, accepted=lambda: seen.append(queue.wakes))
        claimed = [item.queue_id for item in await queue.store.claim_due(time.time(), 10)]
        await queue.close()
        return qid, claimed

    qid, claimed = asyncio.run(main())
    assert seen == [0] and queue.wakes == 1  # woken after accepted
    assert claimed == [qid] and queue.mailbox("bob") == []


def test_a_large_local_message_is_delivered_first_and_never_queued(tmp_path, caplog):
    """DELIVER_FIRST_MIN bytes for local mailboxes only: `accepted` runs once every copy is in
    its Maildir, before the delivery's log lines; the queue never holds it, its journey does."""
    queue = Queue(tmp_path, handoff=True)
    seen = []
    caplog.set_level(logging.INFO, logger="mailboat")

    async def main():
        qid = new_queue_id()

        def accepted():
            seen.append((len(queue.mailbox("bob")), len(queue.mailbox("carol")), queue.committed(qid),
                         sum(": to=<" in r.getMessage() for r in caplog.records)))

        await queue.intake.put(qid, envelope("bob@x.test", "carol@x.test"), LARGE, accepted=accepted,
                               expected=queue.intake.expect(), connect=CONNECT, connected_at=1.0)
        await queue.close()  # the journey rows are lazy writes: committed by now
        reopened = queue.reopened()
        return [e.kind for e in await reopened.events(qid)], await reopened.list()

    kinds, stored = asyncio.run(main())
    assert seen == [(1, 1, False, 0)]
    assert stored == []
    assert kinds == ["connect", "queued", "delivery", "delivery", "finished"]
    assert sum(": to=<" in r.getMessage() for r in caplog.records) == 2
    assert queue.wakes == 0


def test_a_large_message_for_a_remote_recipient_is_queued_as_usual(tmp_path):
    queue = Queue(tmp_path, handoff=False)
    seen = []

    async def main():
        qid = new_queue_id()
        await queue.intake.put(qid, envelope("bob@x.test", "dave@remote.test"), LARGE,
                               accepted=lambda: seen.append(queue.committed(qid)))
        stored = [item.queue_id for item in await queue.store.list()]
        await queue.close()
        return qid, stored

    qid, stored = asyncio.run(main())
    assert seen == [True] and stored == [qid] and queue.wakes == 1
    assert queue.mailbox("bob") == []


def test_a_full_queue_raises_and_nothing_is_accepted_or_handed_on(tmp_path):
    """SQLITE_FULL (the database capped just above its size): QueueFullError, which the session
    answers with 452 4.3.1; `accepted` never runs and the transaction no longer counts. A
    closed store: QueueError (451 4.3.0)."""
    queue = Queue(tmp_path, handoff=True)
    seen = []

    async def main():
        await queue.store.enqueue(new_queue_id(), envelope("bob@x.test"), b"warm-up")
        pages = queue.store._conn.execute("PRAGMA page_count").fetchone()[0]
        queue.store._conn.execute(f"PRAGMA max_page_count = {pages + 2}")
        qid = new_queue_id()
        with pytest.raises(QueueFullError):
            await queue.intake.put(qid, envelope("bob@x.test"), b"x" * 60_000, accepted=lambda: seen.append(qid),
                                   expected=queue.intake.expect())
        coming = queue.intake.coming()
        stored = await queue.store.get(qid)
        await queue.close()
        with pytest.raises(QueueError):
            await queue.intake.put(new_queue_id(), envelope("bob@x.test"), SMALL, accepted=lambda: seen.append(0))
        return coming, stored

    coming, stored = asyncio.run(main())
    assert seen == [] and coming == 0 and stored is None
    assert queue.wakes == 0 and queue.mailbox("bob") == []


def test_expected_messages_are_counted_until_put_or_closed():
    """expect() counts a transaction until put() takes its message or it is closed (RSET, a
    client gone); closing twice counts once; `with` closes it."""
    from mailboat.queue.memory import MemoryQueueStore

    intake = Intake(MemoryQueueStore())
    first, second = intake.expect(), intake.expect()
    counts = [intake.coming()]
    first.close()
    first.close()
    counts.append(intake.coming())
    with intake.expect():
        counts.append(intake.coming())
    counts.append(intake.coming())

    async def main():
        await intake.put(new_queue_id(), envelope("bob@x.test"), SMALL, accepted=lambda: None, expected=second)

    asyncio.run(main())
    counts.append(intake.coming())
    assert counts == [2, 1, 2, 1, 0]


def test_the_group_commit_waits_for_an_expected_message_and_not_for_more(tmp_path):
    """Two transactions announced: the first message put waits (no commit over many loop turns)
    for the second, which the store learns of through the intake alone; the second put ends the
    wait at once, and both messages share one transaction."""
    queue = Queue(tmp_path, handoff=False)
    queue.store._writer.linger = 30.0  # so that only the second put can end the wait

    async def main():
        warm = queue.store.stats.commits
        first_txn, second_txn = queue.intake.expect(), queue.intake.expect()
        done = []
        first = asyncio.ensure_future(queue.intake.put(new_queue_id(), envelope("bob@x.test"), SMALL,
                                                       accepted=lambda: done.append(1), expected=first_txn))
        for _ in range(50):
            await asyncio.sleep(0)
        waited = not first.done() and done == []
        await asyncio.wait_for(
            asyncio.gather(first, queue.intake.put(new_queue_id(), envelope("carol@x.test"), SMALL,
                                                   accepted=lambda: done.append(2), expected=second_txn)), 10)
        commits = queue.store.stats.commits - warm
        await queue.close()
        return waited, sorted(done), commits

    waited, done, commits = asyncio.run(main())
    assert waited and done == [1, 2]
    assert commits == 1
