"""One QueueStore contract, run against every backend (memory, sqlite; postgres joins later).

Each backend param (the `backend` fixture, conftest.py) is a factory: calling it again with the
same tmp_path reopens the same queue (for persistent backends), which is how restart is tested.
The lease cases are in test_store_leases.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Callable

import pytest

from mailboat.delivery.outcome import RecipientOutcome, RecipientState
from mailboat.mail.envelope import Envelope, Recipient
from mailboat.mail.ids import new_queue_id
from mailboat.queue.memory import MemoryQueueStore
from mailboat.queue.store import DuplicateQueueIdError, QueueStore

T0 = 1_700_000_000.0


def run(factory: Callable[[], QueueStore], body) -> None:
    async def main():
        store = factory()
        try:
            await body(store)
        finally:
            await store.close()
    asyncio.run(main())


def envelope(*rcpts: str, sender: str = "alice@example.org") -> Envelope:
    return Envelope(sender, tuple(Recipient(r) for r in rcpts), ret="HDRS", envid="E1",
                    body="8BITMIME", client_ip="192.0.2.7", client_helo="client.example", protocol="ESMTPS")


def outcome(rcpt: str, state: RecipientState, at: float, original: str | None = None) -> RecipientOutcome:
    code = {"delivered": 250, "deferred": 451, "failed": 550}[state.value]
    return RecipientOutcome(rcpt, state, code, f"{code // 100}.0.0 test", "local", at, original)


def test_enqueue_round_trip(backend):
    factory, _, clock = backend
    env = Envelope("", (Recipient("bøb@exämple.net", "rfc822;bob@example.net", ("SUCCESS", "FAILURE")),
                        Recipient("carol@example.net")), smtputf8=True, auth_user="alice")
    msg = b"Subject: hi\r\n\r\n" + bytes(range(256)) * 10

    async def body(store):
        qid = new_queue_id()
        await store.enqueue(qid, env, msg)
        item = await store.get(qid)
        assert item.envelope == env and item.size == len(msg) and item.arrival == T0
        assert [r.state for r in item.recipients] == [RecipientState.PENDING] * 2
        assert item.attempts == 0 and not item.held
        assert await store.load_message(qid) == msg
        assert [i.queue_id for i in await store.list()] == [qid]
        assert [e.kind for e in await store.events(qid)] == ["queued"]
        assert await store.get("nosuchid000000") is None
        with pytest.raises(KeyError):
            await store.load_message("nosuchid000000")
    run(factory, body)


def test_duplicate_id_leaves_original(backend):
    factory, _, _ = backend

    async def body(store):
        qid = new_queue_id()
        await store.enqueue(qid, envelope("a@x.test"), b"first")
        with pytest.raises(DuplicateQueueIdError):
            await store.enqueue(qid, envelope("b@x.test"), b"second")
        assert await store.load_message(qid) == b"first"
        assert (await store.get(qid)).envelope.recipients[0].address == "a@x.test"
    run(factory, body)


def test_concurrent_enqueues_share_commits(backend):
    factory, _, _ = backend

    async def body(store):
        before = store.stats.commits
        ids = [new_queue_id() for _ in range(50)]
        await asyncio.gather(*(store.enqueue(q, envelope("a@x.test"), b"x" * 1000) for q in ids))
        commits = store.stats.commits - before
        assert commits <= 10, f"50 concurrent enqueues took {commits} commits"
        assert store.stats.largest_batch >= 5
        assert len(await store.list()) == 50
    run(factory, body)


def test_restart_keeps_everything(backend):
    factory, persistent, _ = backend
    if not persistent:
        pytest.skip("memory store does not persist")
    ids = [new_queue_id() for _ in range(30)]

    async def fill(store):
        await asyncio.gather(*(store.enqueue(q, envelope("a@x.test", "b@x.test"), q.encode() * 100) for q in ids))
        await store.record_outcomes(ids[0], [outcome("a@x.test", RecipientState.DELIVERED, T0 + 1)], T0 + 60)
        await store.hold(ids[1], T0 + 2)

    async def check(store):
        items = {i.queue_id: i for i in await store.list()}
        assert set(items) == set(ids)
        for q in ids:
            assert await store.load_message(q) == q.encode() * 100
        assert [r.state for r in items[ids[0]].recipients] == [RecipientState.DELIVERED, RecipientState.PENDING]
        assert items[ids[0]].next_attempt == T0 + 60 and items[ids[1]].held
    run(factory, fill)
    run(factory, check)


def test_claim_lease(backend):
    factory, _, _ = backend

    async def body(store):
        a, b = new_queue_id(), new_queue_id()
        await store.enqueue(a, envelope("a@x.test"), b"1")
        await store.enqueue(b, envelope("b@x.test"), b"2")
        first = await store.claim_due(T0, 10)
        assert [i.queue_id for i in first] == [a, b]
        assert await store.claim_due(T0 + 1, 10) == []  # leased: never handed out twice
        both = await asyncio.gather(store.claim_due(T0 + 61, 1), store.claim_due(T0 + 61, 1))
        claimed = [i.queue_id for batch in both for i in batch]
        assert sorted(claimed) == sorted([a, b])  # lease expired: claimable again, once each
    run(factory, body)


def test_enqueue_claimed_is_leased_to_the_caller(backend):
    """claim=True: the message comes back as the caller's claim and nobody else gets it until the
    lease ends (the accepting process delivers it from memory); then it is claimable again."""
    factory, _, _ = backend

    async def body(store):
        a, b = new_queue_id(), new_queue_id()
        mine = await store.enqueue(a, envelope("a@x.test", "c@x.test"), b"1", claim=True)
        assert await store.enqueue(b, envelope("b@x.test"), b"2") is None
        assert mine.queue_id == a and mine.arrival == T0 and mine.attempts == 0
        assert [r.state for r in mine.open_recipients] == [RecipientState.PENDING] * 2
        assert mine == await store.get(a)
        assert [i.queue_id for i in await store.claim_due(T0 + 1, 10)] == [b]  # a is leased
        assert [i.queue_id for i in await store.claim_due(T0 + 60.5, 10)] == [a]  # its lease is over, b's not
        await store.record_outcomes(a, [outcome("a@x.test", RecipientState.DELIVERED, T0 + 2),
                                        outcome("c@x.test", RecipientState.DELIVERED, T0 + 2)], None,
                                    claimed=mine)
        assert await store.get(a) is None
        assert [e.kind for e in await store.events(a)] == ["queued", "finished"]
        # With the claimed item as the hint, a message deleted meanwhile is still left alone.
        gone = await store.enqueue(new_queue_id(), envelope("d@x.test"), b"3", claim=True)
        assert await store.delete(gone.queue_id, T0 + 3)
        await store.record_outcomes(gone.queue_id, [outcome("d@x.test", RecipientState.DEFERRED, T0 + 4)],
                                    T0 + 100, claimed=gone)
        assert await store.get(gone.queue_id) is None
    run(factory, body)


def test_claim_respects_schedule_and_hold(backend):
    factory, _, _ = backend

    async def body(store):
        a, b = new_queue_id(), new_queue_id()
        await store.enqueue(a, envelope("a@x.test"), b"1")
        await store.enqueue(b, envelope("b@x.test"), b"2")
        assert await store.hold(b, T0)
        [item] = await store.claim_due(T0, 10)
        await store.record_outcomes(a, [outcome("a@x.test", RecipientState.DEFERRED, T0 + 1)], T0 + 300)
        assert await store.claim_due(T0 + 299, 10) == []
        assert await store.retry_now(a, T0 + 10)
        assert [i.queue_id for i in await store.claim_due(T0 + 10, 10)] == [a]
        assert await store.release(b, T0 + 20)
        assert [i.queue_id for i in await store.claim_due(T0 + 20, 10)] == [b]
        assert not await store.retry_now("nosuchid000000", T0)
        assert not await store.hold("nosuchid000000", T0)
    run(factory, body)


def test_outcomes_history_and_finish(backend):
    factory, _, _ = backend

    async def body(store):
        qid = new_queue_id()
        await store.enqueue(qid, envelope("a@x.test", "b@x.test", "c@x.test"), b"msg")
        await store.claim_due(T0, 10)
        await store.record_outcomes(qid, [
            outcome("a@x.test", RecipientState.DELIVERED, T0 + 1),
            outcome("b@x.test", RecipientState.DEFERRED, T0 + 1),
            outcome("c@x.test", RecipientState.FAILED, T0 + 1),
        ], T0 + 60)
        item = await store.get(qid)
        assert [r.state.value for r in item.recipients] == ["delivered", "deferred", "failed"]
        assert [r.address for r in item.open_recipients] == ["b@x.test"]
        assert item.attempts == 1 and item.next_attempt == T0 + 60
        attempt = item.recipients[1].last_attempt
        assert (attempt.at, attempt.host, attempt.reply_code, attempt.reply_text) == (
            T0 + 1, "local", 451, "4.0.0 test")
        assert [i.queue_id for i in await store.claim_due(T0 + 60, 10)] == [qid]
        await store.record_outcomes(qid, [outcome("b@x.test", RecipientState.DELIVERED, T0 + 61)], None)
        assert await store.get(qid) is None and await store.list() == []
        with pytest.raises(KeyError):
            await store.load_message(qid)
        events = await store.events(qid)
        assert [e.kind for e in events] == ["queued", "finished"]
        final = {r["to"]: (r["state"], r["reply"]) for r in events[-1].detail["recipients"]}
        assert final == {"a@x.test": ("delivered", "250 2.0.0 test"), "b@x.test": ("delivered", "250 2.0.0 test"),
                         "c@x.test": ("failed", "550 5.0.0 test")}
        assert events[-1].detail["attempts"] == 2
    run(factory, body)


def test_alias_expansion_rows(backend):
    factory, _, _ = backend

    async def body(store):
        qid = new_queue_id()
        env = Envelope("s@x.test", (Recipient("list@x.test", "rfc822;list@x.test", ("FAILURE",)),))
        await store.enqueue(qid, env, b"msg")
        await store.record_outcomes(qid, [
            outcome("u1@x.test", RecipientState.DELIVERED, T0 + 1, original="list@x.test"),
            outcome("u2@x.test", RecipientState.DEFERRED, T0 + 1, original="list@x.test"),
        ], T0 + 60)
        item = await store.get(qid)
        rows = {(r.address, r.original): r for r in item.recipients}
        assert rows[("list@x.test", None)].state is RecipientState.EXPANDED
        u2 = rows[("u2@x.test", "list@x.test")]
        assert u2.state is RecipientState.DEFERRED
        assert (u2.recipient.orcpt, u2.recipient.notify) == ("rfc822;list@x.test", ("FAILURE",))
        assert [r.address for r in item.open_recipients] == ["u2@x.test"]
    run(factory, body)


def test_delete_and_events(backend):
    factory, _, _ = backend

    async def body(store):
        qid = new_queue_id()
        await store.record_event(qid, T0 - 1, "connect", {"client_ip": "192.0.2.7"})
        await store.enqueue(qid, envelope("a@x.test"), b"msg")
        await store.record_event(qid, T0 + 5, "delivery", {"to": "a@x.test", "status": "deferred"})
        assert await store.delete(qid, T0 + 9)
        assert not await store.delete(qid, T0 + 9)
        assert await store.get(qid) is None and await store.claim_due(T0 + 100, 10) == []
        events = await store.events(qid)
        assert [e.kind for e in events] == ["connect", "queued", "delivery", "deleted"]
        assert events[0].detail == {"client_ip": "192.0.2.7"}
        assert events[1].detail["client_ip"] == "192.0.2.7" and events[1].detail["protocol"] == "ESMTPS"
    run(factory, body)


def test_outcomes_for_deleted_message_are_ignored(backend):
    factory, _, _ = backend

    async def body(store):
        qid = new_queue_id()
        await store.enqueue(qid, envelope("a@x.test"), b"msg")
        await store.claim_due(T0, 10)
        await store.delete(qid, T0 + 1)
        await store.record_outcomes(qid, [outcome("a@x.test", RecipientState.DELIVERED, T0 + 2)], None)
        assert await store.get(qid) is None
    run(factory, body)


def test_delay_warned_flag_persists(backend):
    factory, persistent, _ = backend
    qid = new_queue_id()

    async def fill(store):
        await store.enqueue(qid, envelope("a@x.test"), b"msg")
        assert not (await store.get(qid)).delay_warned
        assert await store.mark_delay_warned(qid, T0 + 1)
        assert not await store.mark_delay_warned("nosuchid000000", T0 + 1)
        await store.record_outcomes(qid, [outcome("a@x.test", RecipientState.DEFERRED, T0 + 2)], T0 + 60)
        assert (await store.get(qid)).delay_warned  # outcomes do not reset it

    async def check(store):
        assert (await store.get(qid)).delay_warned
    run(factory, fill)
    if persistent:
        run(factory, check)


def test_queued_event_keeps_bounded_headers(backend):
    factory, _, _ = backend
    big = b"".join(b"X-Pad-%05d: %s\r\n" % (i, b"y" * 60) for i in range(2000))  # ~150 KiB of header

    async def body(store):
        small, large = new_queue_id(), new_queue_id()
        await store.enqueue(small, envelope("a@x.test"), b"Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                                                        b"Subject: s\r\n\r\nbody\r\n")
        await store.enqueue(large, envelope("a@x.test"), big + b"\r\nbody")
        detail = (await store.events(small))[0].detail
        assert detail["headers"].startswith("Received: from a by b;") and "body" not in detail["headers"]
        headers = (await store.events(large))[0].detail["headers"]
        assert 60_000 < len(headers) <= 64 * 1024 and headers.endswith("\r\n")
    run(factory, body)


def test_operator_actions(backend):
    """hold keeps a message from claim_due, release/retry_now make it due, delete leaves an event."""
    factory, _, _ = backend

    async def body(store):
        qid = new_queue_id()
        await store.enqueue(qid, envelope("a@x.test"), b"msg")
        await store.claim_due(T0, 10)
        await store.record_outcomes(qid, [outcome("a@x.test", RecipientState.DEFERRED, T0)], T0 + 3600)
        assert await store.hold(qid, T0 + 1)
        assert await store.claim_due(T0 + 7200, 10) == []
        assert not await store.retry_now(qid, T0 + 2)  # held: release first
        assert await store.release(qid, T0 + 3)
        assert (await store.get(qid)).next_attempt == T0 + 3
        await store.record_outcomes(qid, [outcome("a@x.test", RecipientState.DEFERRED, T0 + 4)], T0 + 3600)
        assert await store.retry_now(qid, T0 + 5)
        assert [i.queue_id for i in await store.claim_due(T0 + 5, 10)] == [qid]
        assert await store.delete(qid, T0 + 6)
        with pytest.raises(KeyError):
            await store.load_message(qid)
        kinds = [e.kind for e in await store.events(qid)]
        assert kinds[-1] == "deleted" and "hold" in kinds and "release" in kinds and "retry" in kinds
    run(factory, body)


def test_prune_events_forgets_old_journeys_of_finished_messages(backend):
    """prune_events() drops the events older than `before` of messages that left the queue, in
    bounded batches, and never touches a message still queued (even an old, held one)."""
    factory, _, clock = backend

    async def body(store):
        done, held, fresh = new_queue_id(), new_queue_id(), new_queue_id()
        await store.enqueue(done, envelope("a@x.test"), b"1")
        await store.record_outcomes(done, [outcome("a@x.test", RecipientState.DELIVERED, T0 + 1)], None)
        await store.enqueue(held, envelope("b@x.test"), b"2")
        assert await store.hold(held, T0 + 2)
        clock.now = T0 + 1000
        await store.enqueue(fresh, envelope("c@x.test"), b"3")
        await store.finish(fresh, T0 + 1001)
        assert await store.prune_events(T0 + 500, limit=1) == 1  # bounded
        while await store.prune_events(T0 + 500, limit=1):
            pass
        assert await store.events(done) == []
        assert [e.kind for e in await store.events(held)] == ["queued", "hold"]
        assert [e.kind for e in await store.events(fresh)] == ["queued", "finished"]
    run(factory, body)


def damage(store: QueueStore, queue_id: str) -> None:
    """Overwrite a stored body with random bytes of the same length, where that backend keeps it."""
    if isinstance(store, MemoryQueueStore):
        store._bodies[queue_id] = os.urandom(len(store._bodies[queue_id]))
        return
    spooled = os.path.join(store.path + "-bodies", queue_id)
    if os.path.exists(spooled):
        with open(spooled, "r+b") as f:
            f.write(os.urandom(os.path.getsize(spooled)))
        return
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("UPDATE body SET data = randomblob(length(data)) WHERE queue_id = ?",
                            (queue_id,)).rowcount == 1


def test_a_body_changed_after_queueing_is_set_aside_never_delivered(backend, caplog):
    """Bytes that are not the ones queued (same length, random) never reach a transport: the
    record is set aside with one log line and a "corrupt" event, and the others go on."""
    factory, _, _ = backend
    msg = b"Subject: hi\r\n\r\n" + b"body line\r\n" * 300

    async def body(store):
        good, bad, later = new_queue_id(), new_queue_id(), new_queue_id()
        for queue_id in (good, bad):
            await store.enqueue(queue_id, envelope("a@x.test"), msg)
        damage(store, bad)
        assert [i.queue_id for i in await store.claim_due(T0, 10)] == [good, bad]
        with caplog.at_level(logging.WARNING, logger="mailboat.queue"):
            with pytest.raises(KeyError):
                await store.load_message(bad)  # claimed (SQLite reads small bodies with the claim)
            assert await store.load_message(good) == msg
            await store.enqueue(later, envelope("a@x.test"), msg)
            damage(store, later)
            with pytest.raises(KeyError):
                await store.load_message(later)  # not claimed: read afresh
        assert await store.retry_now(bad, T0) is False  # (a write, so after the set-aside)
        assert await store.get(bad) is None and await store.get(later) is None
        assert [i.queue_id for i in await store.list()] == [good]
        assert [i.queue_id for i in await store.claim_due(T0 + 3600, 10)] == [good]
        assert [e.kind for e in await store.events(bad)] == ["queued", "corrupt"]
        lines = [r.getMessage() for r in caplog.records if "set aside" in r.getMessage()]
        assert len(lines) == 2 and lines[0].startswith(f"{bad}: corrupt queue record set aside: ")
        assert "checksum" in lines[0]
        assert await store.delete(bad, T0 + 1)  # the operator may remove it
    run(factory, body)
