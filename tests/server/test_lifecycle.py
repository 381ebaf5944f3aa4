"""The services' lifecycle (mailboat/lifecycle.py): a group starts in order, stops and drains in
reverse; a failing start undoes what started; a drain that overruns is cut off at the deadline.
And what stop and drain mean for the real services: a listener (421 to idle clients, a message
under way finishes) and the queue runner (a delivery in flight is recorded; one cut off keeps
its lease)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from mailboat.delivery.maildir import MaildirTransport
from mailboat.lifecycle import Background, Services
from mailboat.mail.envelope import Envelope, Recipient
from mailboat.mail.ids import new_queue_id
from mailboat.queue.memory import MemoryQueueStore
from mailboat.queue.model import RecipientState
from mailboat.queue.runner import QueueRunner
from mailboat.queue.upkeep import RunnerService
from mailboat.routing.route import Maildir

from serverkit import client as _client
from serverkit import smtp_listener


class Recorder:
    """A service that writes what is done to it into a shared journal."""

    def __init__(self, name, journal, *, fail_start=False, hang_drain=False):
        self.name, self.journal = name, journal
        self.fail_start, self.hang_drain = fail_start, hang_drain
        self.cut_off = False

    async def start(self):
        if self.fail_start:
            raise OSError(98, "Address already in use")
        self.journal.append(("start", self.name))

    async def stop(self):
        self.journal.append(("stop", self.name))

    async def drain(self, timeout):
        self.journal.append(("drain", self.name))
        if self.hang_drain:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cut_off = True
                raise


def test_start_in_order_stop_then_drain_in_reverse():
    journal = []
    services = Services([Recorder(name, journal) for name in ("runner", "smtp", "balancer")])

    async def main():
        await services.start()
        await services.stop()
        await services.drain(10)

    asyncio.run(main())
    assert journal == [("start", "runner"), ("start", "smtp"), ("start", "balancer"),
                       ("stop", "balancer"), ("stop", "smtp"), ("stop", "runner"),
                       ("drain", "balancer"), ("drain", "smtp"), ("drain", "runner")]


def test_a_failing_start_stops_and_drains_what_started_and_raises():
    journal = []
    services = Services([Recorder("runner", journal), Recorder("smtp", journal),
                         Recorder("submission", journal, fail_start=True), Recorder("balancer", journal)])

    async def main():
        with pytest.raises(OSError, match="Address already in use"):
            await services.start()
        await services.stop()  # what daemon.py does on its way out: nothing is left to stop
        await services.drain(10)

    asyncio.run(main())
    assert journal == [("start", "runner"), ("start", "smtp"),
                       ("stop", "smtp"), ("stop", "runner"), ("drain", "smtp"), ("drain", "runner")]


def test_a_drain_that_overruns_is_cut_off_and_the_others_still_drain(caplog):
    journal = []
    stuck = Recorder("stuck", journal, hang_drain=True)
    services = Services([Recorder("first", journal), stuck, Recorder("last", journal)])

    async def main():
        await services.start()
        await services.stop()
        await services.drain(0.05)  # `stuck` never ends on its own

    with caplog.at_level(logging.WARNING, logger="mailboat.master"):
        asyncio.run(main())
    assert stuck.cut_off
    assert [entry for entry in journal if entry[0] == "drain"] == [("drain", "last"), ("drain", "stuck"),
                                                                  ("drain", "first")]
    assert "stuck: still busy at the end of the 0.05 s drain; cut off" in caplog.text


def test_a_failing_stop_or_drain_is_logged_and_the_others_go_on(caplog):
    journal = []

    class Broken(Recorder):
        async def stop(self):
            raise RuntimeError("stop broke")

        async def drain(self, timeout):
            raise RuntimeError("drain broke")

    services = Services([Recorder("first", journal), Broken("broken", journal)])

    async def main():
        await services.start()
        await services.stop()
        await services.drain(10)

    asyncio.run(main())
    assert ("stop", "first") in journal and ("drain", "first") in journal
    assert "broken: stopping failed" in caplog.text and "broken: draining failed" in caplog.text


def test_background_service_is_cancelled_at_stop():
    ticks = []

    async def loop():
        while True:
            ticks.append(1)
            await asyncio.sleep(3600)

    service = Background("ticker", loop)

    async def main():
        await service.start()
        await asyncio.sleep(0)
        await service.stop()
        await service.drain(10)
        return service._task

    task = asyncio.run(main())
    assert ticks == [1] and task.cancelled()


# -- a real listener ------------------------------------------------------------------------------


def test_listener_stop_tells_idle_clients_421_and_drain_lets_a_message_finish():
    async def main():
        listener = smtp_listener()
        services = Services([listener])
        await services.start()
        port = listener.server.sockets[0].getsockname()[1]
        idle_reader, _, idle = await _client(port)
        _, _, busy = await _client(port)
        await idle(b"HELO idle.example.org")
        await busy(b"HELO busy.example.org")
        await busy(b"MAIL FROM:<a@example.org>")
        await busy(b"RCPT TO:<b@example.com>")
        assert (await busy(b"DATA")).startswith(b"354")
        await services.stop()
        told = await idle_reader.readline()
        try:
            await asyncio.open_connection("127.0.0.1", port)
            refused = False
        except OSError:
            refused = True
        draining = asyncio.get_running_loop().create_task(services.drain(60))
        queued = await busy(b"Subject: under way\r\n\r\nfinished while draining\r\n.")
        bye = await busy(b"QUIT")
        await draining
        return told, refused, queued, bye, len(await listener.ctx.intake.store.list()), listener.sessions

    told, refused, queued, bye, count, sessions = asyncio.run(main())
    assert told.startswith(b"421 4.3.2 ")
    assert refused
    assert queued.startswith(b"250 2.0.0 Ok: queued as ")
    assert bye.startswith(b"221 ")
    assert count == 1
    assert sessions == {}


# -- the queue runner -----------------------------------------------------------------------------

class Gate:
    """A Maildir transport that waits at its door until opened."""

    def __init__(self):
        self.maildir, self.open, self.entered = MaildirTransport(), asyncio.Event(), asyncio.Event()

    async def deliver(self, envelope, message, recipients, route):
        self.entered.set()
        await self.open.wait()
        return await self.maildir.deliver(envelope, message, recipients, route)


class LocalRouter:
    def __init__(self, root):
        self.root = root

    def expand(self, address):
        return [address]

    def route(self, address):
        return Maildir(f"{self.root}/{address.split('@')[0]}")


async def _runner_with_one_delivery_in_flight(tmp_path):
    store = MemoryQueueStore()
    gate = Gate()
    runner = QueueRunner(store, LocalRouter(tmp_path), {"maildir": gate}, poll_interval=3600)
    services = Services([RunnerService(runner)])
    await services.start()
    await store.enqueue(new_queue_id(), Envelope("s@y.test", (Recipient("bob@x.test"),)),
                        b"Subject: t\r\n\r\nin flight\r\n")
    runner.wake()
    await gate.entered.wait()
    return store, gate, runner, services


def test_runner_drain_waits_for_the_delivery_in_flight(tmp_path):
    async def main():
        store, gate, runner, services = await _runner_with_one_delivery_in_flight(tmp_path)
        await services.stop()
        draining = asyncio.get_running_loop().create_task(services.drain(60))
        await asyncio.sleep(0)
        gate.open.set()
        await draining
        return await store.list(), runner.in_flight

    left, in_flight = asyncio.run(main())
    assert left == [] and in_flight == 0
    assert len(list((tmp_path / "bob" / "new").iterdir())) == 1


def test_runner_delivery_cut_off_by_the_drain_deadline_keeps_its_lease(tmp_path):
    async def main():
        store, gate, runner, services = await _runner_with_one_delivery_in_flight(tmp_path)
        await services.stop()
        await services.drain(0.05)  # the gate never opens
        [item] = await store.list()
        return item, await store.claim_due(time.time(), 10)

    item, claimable = asyncio.run(main())
    assert item.recipients[0].state is RecipientState.PENDING
    assert claimable == []  # still leased: delivered again once the lease expires, not lost
    assert not (tmp_path / "bob" / "new").exists()
