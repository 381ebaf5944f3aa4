"""The store contract's lease cases, run against every backend (the `backend` fixture, conftest.py):
a claim's token guards the writes that follow it, and start-up releases only its own node's leases.

Two claimers are two stores on one queue file for SQLite (as two nodes, or two processes, open
it), and the one store twice for memory.
"""

from __future__ import annotations

import asyncio

import pytest

from mailboat.delivery.transport import outcome as transport_outcome
from mailboat.mail.envelope import Envelope, Recipient
from mailboat.mail.ids import new_queue_id
from mailboat.queue.model import RecipientOutcome, RecipientState
from mailboat.queue.runner import QueueRunner
from mailboat.queue.store import LeaseLostError
from mailboat.routing.route import Maildir

T0 = 1_700_000_000.0  # the backends' clock (conftest.py)


def envelope(*rcpts: str) -> Envelope:
    return Envelope("alice@example.org", tuple(Recipient(r) for r in rcpts))


def outcome(rcpt: str, state: RecipientState, at: float) -> RecipientOutcome:
    code = {"delivered": 250, "deferred": 451, "failed": 550}[state.value]
    return RecipientOutcome(rcpt, state, code, f"{code // 100}.0.0 test", "local", at)


def run(factory, body) -> None:
    """body(store, other): two claimers of one queue, as nodes n1 and n2."""
    async def main():
        store = factory(node="n1")
        other = factory(node="n2")
        try:
            await body(store, other)
        finally:
            await store.close()
            if other is not store:
                await other.close()
    asyncio.run(main())


def test_late_outcomes_of_an_expired_lease_are_refused(backend):
    """A runner whose lease expired and was claimed again writes nothing, before or after the new
    holder records: neither an update nor a finish, with the claimed item as hint or without."""
    factory, _, _ = backend

    async def body(store, other):
        qid = new_queue_id()
        await store.enqueue(qid, envelope("a@x.test", "b@x.test"), b"msg")
        [mine] = await store.claim_due(T0, 10)
        [theirs] = await other.claim_due(T0 + 61, 10)  # mine expired at T0 + 60
        assert mine.lease and theirs.lease and mine.lease != theirs.lease
        all_delivered = [outcome("a@x.test", RecipientState.DELIVERED, T0 + 62),
                         outcome("b@x.test", RecipientState.DELIVERED, T0 + 62)]
        with pytest.raises(LeaseLostError):  # would finish the message
            await store.record_outcomes(qid, all_delivered, None, claimed=mine, lease=mine.lease)
        with pytest.raises(LeaseLostError):  # would update it
            await store.record_outcomes(qid, [outcome("a@x.test", RecipientState.DELIVERED, T0 + 62)], T0 + 900,
                                        lease=mine.lease)
        assert not await store.renew(qid, mine.lease, T0 + 62)
        item = await other.get(qid)
        assert item.attempts == 0 and [r.state for r in item.recipients] == [RecipientState.PENDING] * 2
        await other.record_outcomes(qid, [outcome("a@x.test", RecipientState.DELIVERED, T0 + 63),
                                          outcome("b@x.test", RecipientState.DEFERRED, T0 + 63)], T0 + 300,
                                    claimed=theirs, lease=theirs.lease)
        with pytest.raises(LeaseLostError):  # after theirs, too
            await store.record_outcomes(qid, all_delivered, None, claimed=mine, lease=mine.lease)
        item = await store.get(qid)
        assert [r.state for r in item.recipients] == [RecipientState.DELIVERED, RecipientState.DEFERRED]
        assert item.attempts == 1 and item.next_attempt == T0 + 300
        assert [e.kind for e in await store.events(qid)] == ["queued"]
    run(factory, body)


def test_a_lease_is_its_holders_until_claimed_again(backend):
    """Expired but not claimed by anyone: the late outcomes are the only ones, and count. A lease
    ends with its record: the same token cannot write twice. Gone messages are still ignored."""
    factory, _, _ = backend

    async def body(store, other):
        qid, handed = new_queue_id(), new_queue_id()
        await store.enqueue(qid, envelope("a@x.test"), b"msg")
        [mine] = await store.claim_due(T0, 10)
        await store.record_outcomes(qid, [outcome("a@x.test", RecipientState.DEFERRED, T0 + 500)], T0 + 600,
                                    claimed=mine, lease=mine.lease)  # long past the 60 s lease
        assert (await store.get(qid)).attempts == 1
        with pytest.raises(LeaseLostError):
            await store.record_outcomes(qid, [outcome("a@x.test", RecipientState.DELIVERED, T0 + 501)], None,
                                        lease=mine.lease)
        assert (await store.get(qid)).attempts == 1
        claimed = await store.enqueue(handed, envelope("b@x.test"), b"msg", claim=True)
        assert claimed.lease and claimed.lease != mine.lease
        assert await other.claim_due(T0 + 30, 10) == []  # (qid is due at T0 + 600, handed is leased)
        assert await store.delete(handed, T0 + 31)
        await store.record_outcomes(handed, [outcome("b@x.test", RecipientState.DELIVERED, T0 + 32)], None,
                                    claimed=claimed, lease=claimed.lease)  # deleted meanwhile: ignored
    run(factory, body)


def test_renew_extends_only_the_holders_lease(backend):
    factory, _, _ = backend

    async def body(store, other):
        qid = new_queue_id()
        await store.enqueue(qid, envelope("a@x.test"), b"msg")
        [mine] = await store.claim_due(T0, 10)
        assert await store.renew(qid, mine.lease, T0 + 50)  # now leased until T0 + 110
        assert await other.claim_due(T0 + 100, 10) == []
        [theirs] = await other.claim_due(T0 + 111, 10)
        assert not await store.renew(qid, mine.lease, T0 + 112)
        assert await other.renew(qid, theirs.lease, T0 + 112)
        assert not await store.renew("nosuchid000000", theirs.lease, T0 + 112)
        assert await store.claim_due(T0 + 171, 10) == []  # theirs runs until T0 + 172
    run(factory, body)


def test_two_claimers_never_share_a_message(backend):
    factory, _, _ = backend
    ids = [new_queue_id() for _ in range(60)]

    async def body(store, other):
        await asyncio.gather(*(store.enqueue(q, envelope("a@x.test"), b"msg") for q in ids))

        async def claimer(s) -> list[str]:
            got: list[str] = []
            for _ in range(len(ids)):  # bounded: a store that hands messages out twice stops too
                got += [item.queue_id for item in await s.claim_due(T0 + 1, 7)]
            return got

        mine, theirs = await asyncio.gather(claimer(store), claimer(other))
        assert not set(mine) & set(theirs) and sorted(mine + theirs) == sorted(ids)
    run(factory, body)


class CountingTransport:
    """Counts deliveries per recipient; yields to the loop inside each, as a real one does."""

    def __init__(self) -> None:
        self.delivered: dict[str, int] = {}

    async def deliver(self, envelope, message, recipients, route):
        await asyncio.sleep(0)
        for rcpt in recipients:
            self.delivered[rcpt.address] = self.delivered.get(rcpt.address, 0) + 1
        return [transport_outcome(r.address, 250, "2.0.0 delivered", "local", T0 + 1) for r in recipients]


class Router:
    def expand(self, address):
        return [address]

    def route(self, address):
        return Maildir("/nonexistent")  # (the counting transport writes nothing)


def test_two_runners_never_both_deliver_one_recipient(backend):
    """Two runners on one queue, leases valid throughout (the clock stands still): every
    recipient is delivered exactly once, and every message leaves the queue."""
    factory, _, clock = backend
    rcpts = [f"u{i}@x.test" for i in range(80)]

    async def body(store, other):
        await asyncio.gather(*(store.enqueue(new_queue_id(), envelope(r), b"msg") for r in rcpts))
        transport = CountingTransport()
        runners = [QueueRunner(s, Router(), {"maildir": transport}, clock=clock, batch_size=9)
                   for s in (store, other)]

        async def drain(runner: QueueRunner) -> None:
            for _ in range(100):  # bounded
                if not await runner.run_once():
                    return

        await asyncio.gather(*(drain(r) for r in runners))
        assert transport.delivered == {r: 1 for r in rcpts}
        assert await store.list() == []
    run(factory, body)


def test_start_up_releases_only_this_nodes_leases(backend):
    factory, persistent, _ = backend
    if not persistent:
        pytest.skip("the memory store is one process: no start-up to release leases at")
    mine, theirs, handed, free = (new_queue_id() for _ in range(4))

    async def fill(store, other):
        await store.enqueue(mine, envelope("a@x.test"), b"1")
        assert [i.queue_id for i in await store.claim_due(T0, 1)] == [mine]
        await other.enqueue(theirs, envelope("b@x.test"), b"2")
        assert [i.queue_id for i in await other.claim_due(T0, 1)] == [theirs]
        await store.enqueue(handed, envelope("c@x.test"), b"3", claim=True)
        await other.enqueue(free, envelope("d@x.test"), b"4")

    async def restart():
        store = factory(node="n1", release_leases=True)  # n1 starts again
        try:
            assert sorted(i.queue_id for i in await store.claim_due(T0 + 1, 10)) == sorted([mine, handed, free])
            [item] = await store.claim_due(T0 + 60.5, 10)  # n2's lease ran its course, not the others
            assert item.queue_id == theirs
        finally:
            await store.close()

    run(factory, fill)
    asyncio.run(restart())


class GatedTransport:
    """Delivers once `gate` is set, with `code` (250 or 451)."""

    def __init__(self, code: int, gate: asyncio.Event | None = None) -> None:
        self.code, self.gate, self.started = code, gate, asyncio.Event()

    async def deliver(self, envelope, message, recipients, route):
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        text = "2.0.0 delivered" if self.code == 250 else "4.2.0 try later"
        return [transport_outcome(r.address, self.code, text, "local", T0 + 70) for r in recipients]


def test_a_runner_that_lost_its_lease_records_nothing_and_says_so(backend, caplog):
    """Runner A's delivery outlives its lease; runner B claims the message and records a deferral.
    When A's delivery returns, its outcome is refused: one warning, and B's record stands."""
    factory, _, clock = backend

    async def body(store, other):
        qid = new_queue_id()
        await store.enqueue(qid, envelope("a@x.test"), b"msg")
        gate = asyncio.Event()
        slow, quick = GatedTransport(250, gate), GatedTransport(451)
        a = QueueRunner(store, Router(), {"maildir": slow}, clock=clock)
        b = QueueRunner(other, Router(), {"maildir": quick}, clock=clock)
        first = asyncio.ensure_future(a.run_once())
        await slow.started.wait()
        clock.now = T0 + 61  # A's lease is over
        assert await b.run_once() == 1
        gate.set()
        assert await first == 1
        item = await store.get(qid)
        assert item.attempts == 1 and item.recipients[0].state is RecipientState.DEFERRED
        lost = [r.getMessage() for r in caplog.records if "lease lost" in r.getMessage()]
        assert lost == [f"{qid}: lease lost to another claim; this run's outcomes are not recorded"]

    with caplog.at_level("WARNING", logger="mailboat.qmgr"):
        run(factory, body)
