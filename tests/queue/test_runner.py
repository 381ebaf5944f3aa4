"""QueueRunner with the memory store, a real Maildir in tmp_path and a fake clock."""

import asyncio
import logging
import os
import re
import time

import pytest

from mailboat.delivery.maildir import MaildirTransport
from mailboat.delivery.outcome import RecipientState
from mailboat.delivery.transport import outcome
from mailboat.mail.envelope import Envelope, Recipient
from mailboat.mail.ids import new_queue_id
from mailboat.queue.memory import MemoryQueueStore
from mailboat.queue.runner import QueueRunner
from mailboat.routing.route import Discard, Maildir, Mx, Refuse

T0 = 1_700_000_000.0
LOG_RE = re.compile(r"^(?P<qid>[0-9A-Za-z]{14}): to=<(?P<to>[^>]*)>, (?:orig_to=<(?P<orig>[^>]*)>, )?"
                    r"relay=(?P<relay>\S+), delay=(?P<delay>[\d.]+), delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, "
                    r"dsn=(?P<dsn>\d\.\d+\.\d+), status=(?P<status>\w+) \((?P<text>.*)\)$")


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


class Router:
    """Local domain x.test into tmp_path/<local>; aliases; per-address special routes."""

    def __init__(self, root, aliases=None, special=None):
        self.root, self.aliases, self.special = root, aliases or {}, special or {}

    def expand(self, address):
        return self.aliases.get(address, [address])

    def route(self, address):
        if address in self.special:
            return self.special[address]
        local, domain = address.split("@")
        return Maildir(os.path.join(self.root, local)) if domain == "x.test" else Mx(domain)


def maildir_count(root, local):
    new = os.path.join(root, local, "new")
    return len(os.listdir(new)) if os.path.isdir(new) else 0


@pytest.fixture
def env(tmp_path):
    clock = Clock()
    store = MemoryQueueStore(clock=clock)
    router = Router(str(tmp_path))
    hooked = []

    async def hook(item, failures):
        hooked.append((item.queue_id, [(o.recipient, o.reply_code) for o in failures]))

    runner = QueueRunner(store, router, {"maildir": MaildirTransport(clock=clock)}, clock=clock,
                         on_final_failure=hook)
    return clock, store, router, runner, hooked, str(tmp_path)


async def enqueue(store, *rcpts, sender="s@y.test", body=b"Subject: t\r\n\r\nhello\r\n"):
    qid = new_queue_id()
    await store.enqueue(qid, Envelope(sender, tuple(Recipient(r) for r in rcpts)), body)
    return qid


def lines(caplog):
    return [LOG_RE.match(r.getMessage()) for r in caplog.records if ": to=<" in r.getMessage()]


def test_local_delivery_logs_and_finishes(env, caplog):
    clock, store, router, runner, hooked, root = env
    caplog.set_level(logging.INFO, logger="mailboat")

    async def main():
        ids = [await enqueue(store, "bob@x.test", "carol@x.test") for _ in range(3)]
        clock.now += 0.25
        assert await runner.run_once() == 3
        assert await store.list() == []
        return ids

    ids = asyncio.run(main())
    assert maildir_count(root, "bob") == maildir_count(root, "carol") == 3
    found = lines(caplog)
    assert all(found) and len(found) == 6
    assert {(m["to"], m["relay"], m["dsn"], m["status"], m["text"]) for m in found} == {
        ("bob@x.test", "local", "2.0.0", "sent", "delivered to maildir"),
        ("carol@x.test", "local", "2.0.0", "sent", "delivered to maildir")}
    assert found[0]["delay"] == "0.25"
    assert sum(r.getMessage() == f"{ids[0]}: removed" for r in caplog.records) == 1
    kinds = [e.kind for e in asyncio.run(store.events(ids[0]))]
    assert kinds == ["queued", "delivery", "delivery", "finished"]


def test_aliases_expand_once_and_dedupe(env, caplog):
    clock, store, router, runner, hooked, root = env
    caplog.set_level(logging.INFO, logger="mailboat")
    router.aliases = {"team@x.test": ["u1@x.test", "u2@x.test"]}

    async def main():
        qid = await enqueue(store, "team@x.test", "u1@x.test")
        await runner.run_once()
        return qid

    asyncio.run(main())
    assert maildir_count(root, "u1") == 1 and maildir_count(root, "u2") == 1
    assert {(m["to"], m["orig"]) for m in lines(caplog)} == {
        ("u1@x.test", "team@x.test"), ("u2@x.test", "team@x.test"), ("u1@x.test", None)}


def test_remote_is_deferred_and_retried_on_schedule(env, caplog):
    clock, store, router, runner, hooked, root = env
    caplog.set_level(logging.INFO, logger="mailboat")

    async def main():
        qid = await enqueue(store, "bob@x.test", "far@remote.test")
        await runner.run_once()
        item = await store.get(qid)
        assert [r.state.value for r in item.recipients] == ["delivered", "deferred"]
        assert item.next_attempt == T0 + 60 and item.attempts == 1
        clock.now = T0 + 59
        assert await runner.run_once() == 0
        clock.now = T0 + 60
        assert await runner.run_once() == 1
        item = await store.get(qid)
        assert item.attempts == 2 and item.next_attempt == T0 + 60 + 300
        assert [a.reply_text for a in item.recipients[1].attempts] == ["4.4.0 remote delivery not available yet"] * 2

    asyncio.run(main())
    assert maildir_count(root, "bob") == 1  # the delivered recipient is not delivered again
    deferred = [m for m in lines(caplog) if m["status"] == "deferred"]
    assert len(deferred) == 2 and deferred[0]["relay"] == "none" and deferred[0]["dsn"] == "4.4.0"


class Flaky:
    """Defers chosen recipients on their first attempt, then delegates to a real transport."""

    def __init__(self, inner, flaky):
        self.inner, self.flaky, self.calls = inner, set(flaky), []

    async def deliver(self, envelope, message, recipients, route):
        self.calls.append([r.address for r in recipients])
        first = [r for r in recipients if r.address in self.flaky]
        self.flaky -= {r.address for r in first}
        rest = [r for r in recipients if r not in first]
        outs = [outcome(r.address, 452, "4.2.2 mailbox full", "local", 0.0) for r in first]
        return outs + (await self.inner.deliver(envelope, message, rest, route) if rest else [])


def test_partial_failure_retries_only_the_deferred(env):
    clock, store, router, runner, hooked, root = env
    flaky = Flaky(runner.transports["maildir"], {"b@x.test"})
    runner.transports["maildir"] = flaky

    async def main():
        qid = await enqueue(store, "a@x.test", "b@x.test")
        await runner.run_once()
        clock.now += 60
        await runner.run_once()
        assert await store.get(qid) is None

    asyncio.run(main())
    assert maildir_count(root, "a") == 1 and maildir_count(root, "b") == 1
    assert sorted(sum(flaky.calls, [])) == ["a@x.test", "b@x.test", "b@x.test"]


def test_refused_discarded_and_expired(env, caplog):
    clock, store, router, runner, hooked, root = env
    caplog.set_level(logging.INFO, logger="mailboat")
    router.special = {"no@x.test": Refuse(550, "5.1.1", "no such user"), "dev@x.test": Discard()}

    async def main():
        q1 = await enqueue(store, "no@x.test", "dev@x.test")
        q2 = await enqueue(store, "far@remote.test")
        await runner.run_once()
        assert await store.get(q1) is None
        clock.now = T0 + 5 * 86400  # max_lifetime reached at the next attempt
        await runner.run_once()
        assert await store.get(q2) is None
        return q1, q2

    q1, q2 = asyncio.run(main())
    assert hooked == [(q1, [("no@x.test", 550)]), (q2, [("far@remote.test", 451)])]
    status = {(r.name, m["to"], m["status"], m["dsn"]) for r in caplog.records if (m := LOG_RE.match(r.getMessage()))}
    # Each line names Postfix's agent; an expired recipient is returned to its sender, so it is
    # "bounced" (pflogsumm counts no other word), and qmgr says the message expired.
    assert {("mailboat.error", "no@x.test", "bounced", "5.1.1"), ("mailboat.discard", "dev@x.test", "sent", "2.0.0"),
            ("mailboat.qmgr", "far@remote.test", "bounced", "4.4.7")} <= status
    assert f"{q2}: from=<s@y.test>, status=expired, returned to sender" in caplog.messages
    assert [e.detail["status"] for e in asyncio.run(store.events(q2)) if e.kind == "delivery"][-1] == "expired"


def test_hook_failure_keeps_the_failure_open(env):
    clock, store, router, runner, hooked, root = env
    router.special = {"no@x.test": Refuse(550, "5.1.1", "no such user")}

    async def broken(item, failures):
        raise RuntimeError("cannot queue the bounce")

    runner.on_final_failure = broken

    async def main():
        qid = await enqueue(store, "no@x.test")
        await runner.run_once()
        item = await store.get(qid)
        assert item.recipients[0].state is RecipientState.DEFERRED and item.next_attempt == T0 + 60

    asyncio.run(main())


def test_transport_exception_is_contained(env):
    clock, store, router, runner, hooked, root = env

    class Broken:
        async def deliver(self, *args):
            raise RuntimeError("bug")

    runner.transports["maildir"] = Broken()

    async def main():
        qid = await enqueue(store, "a@x.test")
        await runner.run_once()
        item = await store.get(qid)
        assert item.recipients[0].state is RecipientState.DEFERRED
        assert item.recipients[0].last_attempt.reply_text == "4.3.0 internal delivery error"

    asyncio.run(main())


def test_background_runner_wakes_on_enqueue(tmp_path):
    store = MemoryQueueStore()
    runner = QueueRunner(store, Router(str(tmp_path)), {"maildir": MaildirTransport()}, poll_interval=3600)

    async def main():
        runner.start()
        await asyncio.sleep(0.05)  # it is now asleep for an hour unless woken
        for _ in range(5):
            await enqueue(store, "bob@x.test")
            runner.wake()
        for _ in range(200):
            if not await store.list():
                break
            await asyncio.sleep(0.01)
        await runner.stop()
        assert await store.list() == []

    asyncio.run(main())
    assert maildir_count(str(tmp_path), "bob") == 5


def test_stop_ends_a_run_task_created_by_the_caller(tmp_path):
    """The composition root creates the task itself and passes wake as on_enqueued(queue_id)."""
    store = MemoryQueueStore()
    runner = QueueRunner(store, Router(str(tmp_path)), {"maildir": MaildirTransport()}, poll_interval=3600)

    async def main():
        task = asyncio.get_running_loop().create_task(runner.run())
        qid = await enqueue(store, "bob@x.test")
        runner.wake(qid)
        for _ in range(200):
            if not await store.list():
                break
            await asyncio.sleep(0.01)
        await asyncio.wait_for(runner.stop(), 5)
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert maildir_count(str(tmp_path), "bob") == 1


def test_deliver_now_uses_the_handed_over_bytes(tmp_path):
    """A message enqueued with claim=True and handed over is delivered from the bytes given, with
    no claim and no re-read; the poller never sees it."""
    store = MemoryQueueStore()
    runner = QueueRunner(store, Router(str(tmp_path)), {"maildir": MaildirTransport()}, poll_interval=3600)

    async def main():
        reads = []
        store.load_message = lambda qid: reads.append(qid)  # must not be called
        assert runner.has_room()
        env = Envelope("alice@y.test", (Recipient("bob@x.test"),))
        item = await store.enqueue(new_queue_id(), env, b"Subject: t\r\n\r\nfrom memory\r\n", claim=True)
        assert await store.claim_due(time.time(), 10) == []  # leased to us
        runner.deliver_now(item, b"Subject: t\r\n\r\nfrom memory\r\n")
        await runner.stop()  # waits for deliveries in flight
        assert not runner.has_room()  # stopping: a session then enqueues unclaimed for the poller
        assert reads == [] and await store.list() == []

    asyncio.run(main())
    assert maildir_count(str(tmp_path), "bob") == 1
    new = os.path.join(str(tmp_path), "bob", "new")
    assert any(b"from memory" in open(os.path.join(new, n), "rb").read() for n in os.listdir(new))


def test_handoff_byte_budget(tmp_path):
    """has_room() refuses a hand-over that would hold more than handoff_bytes in memory; the
    session then enqueues it unclaimed for the poller. The budget frees as deliveries finish."""
    store = MemoryQueueStore()
    runner = QueueRunner(store, Router(str(tmp_path)), {"maildir": MaildirTransport()}, poll_interval=3600,
                         handoff_bytes=1000)

    async def main():
        env = Envelope("alice@y.test", (Recipient("bob@x.test"),))
        assert runner.has_room(600)
        item = await store.enqueue(new_queue_id(), env, b"x" * 600, claim=True)
        runner.deliver_now(item, b"x" * 600)
        assert runner.has_room(400) and not runner.has_room(401)
        await runner.stop()
        assert runner._handoff_bytes == 0

    asyncio.run(main())
    assert maildir_count(str(tmp_path), "bob") == 1


def test_prune_journeys_runs_at_start_and_logs(caplog):
    """The server's pruning task (upkeep.prune_journeys) forgets old journeys at once, then sleeps."""
    from mailboat.queue.upkeep import prune_journeys

    store = MemoryQueueStore(clock=lambda: 1_000.0)

    async def main():
        qid = await enqueue(store, "bob@x.test")
        await store.finish(qid, 1_001.0)
        task = asyncio.get_running_loop().create_task(
            prune_journeys(store, keep=86400, every=3600, clock=lambda: 1_000.0 + 2 * 86400))
        for _ in range(100):
            if not await store.events(qid):
                break
            await asyncio.sleep(0.01)
        task.cancel()
        return await store.events(qid)

    with caplog.at_level(logging.INFO, logger="mailboat.master"):
        assert asyncio.run(main()) == []
    assert "journey: forgot 2 events older than 1 days" in caplog.text


# -- delivering before queueing (runner.deliver_first) ------------------------------------------

BIG_BODY = b"Subject: big\r\n\r\n" + b"z" * 70_000 + b"\r\n"


def test_deliver_first_delivers_local_mail_without_a_queue_record(env, caplog):
    """Every recipient a local mailbox: delivered before it is queued; the journey still tells
    queued, delivery, finished, and the log has the usual lines; the queue never holds it."""
    clock, store, router, runner, hooked, root = env
    qid = new_queue_id()
    envelope = Envelope("s@y.test", (Recipient("bob@x.test"), Recipient("carol@x.test")))

    async def main():
        caplog.set_level(logging.INFO, logger="mailboat")
        attempt = await runner.deliver_first(qid, envelope, BIG_BODY)
        assert attempt is not None and attempt.complete
        assert maildir_count(root, "bob") == maildir_count(root, "carol") == 1  # before any record
        await runner.finish_first(attempt)
        assert await store.list() == [] and await store.get(qid) is None
        events = await store.events(qid)
        assert [e.kind for e in events] == ["queued", "delivery", "delivery", "finished"]
        assert events[0].detail["size"] == len(BIG_BODY)
        assert {r["state"] for r in events[-1].detail["recipients"]} == {"delivered"}

    asyncio.run(main())
    found = [m for m in lines(caplog) if m]
    assert sorted(m["to"] for m in found) == ["bob@x.test", "carol@x.test"]
    assert {m["status"] for m in found} == {"sent"} and {m["qid"] for m in found} == {qid}
    assert any(r.getMessage() == f"{qid}: removed" for r in caplog.records)


@pytest.mark.parametrize("special", ["remote", "alias to remote", "refused"])
def test_deliver_first_declines_unless_every_recipient_is_local(env, special):
    """One recipient that is not a local mailbox (remote, an alias reaching one, a refusal):
    nothing is delivered, the message is queued as usual."""
    clock, store, router, runner, hooked, root = env
    other = {"remote": "dave@remote.test", "alias to remote": "list@x.test", "refused": "gone@x.test"}[special]
    router.aliases["list@x.test"] = ["bob@x.test", "erin@remote.test"]
    router.special["gone@x.test"] = Refuse(550, "5.1.1", "no such user")

    async def main():
        envelope = Envelope("s@y.test", (Recipient("bob@x.test"), Recipient(other)))
        assert await runner.deliver_first(new_queue_id(), envelope, BIG_BODY) is None

    asyncio.run(main())
    assert maildir_count(root, "bob") == 0


def test_partial_first_attempt_is_recorded_as_the_first_run(env):
    """bob's mailbox works, carol's cannot be written: the message is queued (claimed) and the
    attempt recorded, so bob is not delivered twice and carol is retried."""
    clock, store, router, runner, hooked, root = env
    maildir = runner.transports["maildir"]

    class CarolsDiskIsFull:
        async def deliver(self, envelope, message, recipients, route):
            if route.path.endswith("carol"):
                return [outcome(r.address, 452, "4.3.1 maildir delivery failed: disk full", "local", clock())
                        for r in recipients]
            return await maildir.deliver(envelope, message, recipients, route)

    runner.transports["maildir"] = CarolsDiskIsFull()
    qid = new_queue_id()
    envelope = Envelope("s@y.test", (Recipient("bob@x.test"), Recipient("carol@x.test")))

    async def main():
        attempt = await runner.deliver_first(qid, envelope, BIG_BODY)
        assert attempt is not None and not attempt.complete
        item = await store.enqueue(qid, envelope, BIG_BODY, claim=True)
        runner.record_first(item, attempt)
        await runner.stop()  # waits for the record
        [queued] = await store.list()
        states = {r.address: r.state for r in queued.recipients}
        assert states["bob@x.test"] is RecipientState.DELIVERED
        assert states["carol@x.test"] is not RecipientState.DELIVERED and queued.attempts == 1

    asyncio.run(main())
    assert maildir_count(root, "bob") == 1


def test_finish_first_sends_the_success_notification(tmp_path):
    """NOTIFY=SUCCESS: the on_success hook runs for mail delivered before queueing as well."""
    store = MemoryQueueStore()
    told = []

    async def on_success(item, delivered):
        told.append([o.recipient for o in delivered])

    runner = QueueRunner(store, Router(str(tmp_path)), {"maildir": MaildirTransport()}, on_success=on_success)

    async def main():
        envelope = Envelope("s@y.test", (Recipient("bob@x.test", notify=("SUCCESS",)),))
        attempt = await runner.deliver_first(new_queue_id(), envelope, BIG_BODY)
        await runner.finish_first(attempt)

    asyncio.run(main())
    assert told == [["bob@x.test"]]
