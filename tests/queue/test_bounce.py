"""Bounces end to end in-process: QueueRunner + Bouncer + a real SQLite queue + real Maildirs.

The DSN is enqueued into the same store and delivered by the same runner into the sender's
Maildir, where it is parsed back with the stdlib email package.
"""

import asyncio
import email
import email.policy
import os

import pytest

from mailboat.delivery.maildir import MaildirTransport
from mailboat.mail.envelope import Envelope, Recipient
from mailboat.mail.ids import new_queue_id
from mailboat.queue.bounce import Bouncer
from mailboat.queue.runner import QueueRunner
from mailboat.queue.sqlite import SqliteQueueStore
from mailboat.routing.route import Maildir, Mx, Refuse
from mailboat.services.journey import assemble_journey

T0 = 1_700_000_000.0
BODY = b"From: s@x.test\r\nSubject: test\r\nMessage-ID: <m1@x.test>\r\n\r\nhello\r\n"


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


class Router:
    """x.test is local (Maildir under root); bad@x.test is refused; other domains go to MX
    (no transport registered: deferred with 4.4.0)."""

    def __init__(self, root):
        self.root = root

    def expand(self, address):
        return {"team@x.test": ["u1@x.test", "bad@x.test"]}.get(address, [address])

    def route(self, address):
        local, domain = address.split("@")
        if address == "bad@x.test":
            return Refuse(550, "5.1.1", "<bad@x.test>: Recipient address rejected: User unknown")
        return Maildir(os.path.join(self.root, local)) if domain == "x.test" else Mx(domain)


class World:
    def __init__(self, tmp_path, **runner_args):
        self.tmp, self.clock, self.runner_args = tmp_path, Clock(), runner_args
        self.store = self.runner = None

    def open(self):
        self.store = SqliteQueueStore(str(self.tmp / "queue.db"), clock=self.clock, release_leases=True)
        bouncer = Bouncer(self.store, "mx.x.test", clock=self.clock)
        self.runner = QueueRunner(self.store, Router(str(self.tmp)), {"maildir": MaildirTransport(clock=self.clock)},
                                  clock=self.clock, on_final_failure=bouncer.on_final_failure,
                                  on_success=bouncer.on_success, on_delay=bouncer.on_delay, **self.runner_args)

    async def enqueue(self, *rcpts, sender="s@x.test", body=BODY, **env):
        qid = new_queue_id()
        recipients = tuple(r if isinstance(r, Recipient) else Recipient(r) for r in rcpts)
        await self.store.enqueue(qid, Envelope(sender, recipients, **env), body)
        return qid

    async def drain(self):
        while await self.runner.run_once():
            pass

    def mailbox(self, local):
        new = self.tmp / local / "new"
        files = sorted(new.iterdir()) if new.exists() else []
        return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in files]


def run(world, body):
    async def main():
        world.open()
        try:
            return await body(world)
        finally:
            await world.store.close()
    return asyncio.run(main())


def status_groups(dsn):
    report = next(p for p in dsn.walk() if p.get_content_type() == "message/delivery-status")
    return report.get_payload()


def test_permanent_failure_bounces_to_sender(tmp_path):
    world = World(tmp_path)

    async def body(w):
        qid = await w.enqueue(Recipient("u1@x.test"), Recipient("bad@x.test", orcpt="rfc822;Bad@X.test"),
                              ret="HDRS", envid="ENV-7")
        await w.drain()
        return qid, await assemble_journey(w.store, qid)
    qid, journey = run(world, body)
    assert len(world.mailbox("u1")) == 1
    [dsn] = world.mailbox("s")
    assert dsn["Return-Path"] == "<>" and dsn["To"] == "s@x.test" and dsn["Auto-Submitted"] == "auto-replied"
    per_message, rcpt = status_groups(dsn)
    assert per_message["Reporting-MTA"] == "dns; mx.x.test" and per_message["Original-Envelope-Id"] == "ENV-7"
    assert per_message["X-Mailboat-Queue-ID"] == qid
    assert rcpt["Original-Recipient"] == "rfc822;Bad@X.test" and rcpt["Final-Recipient"] == "rfc822; bad@x.test"
    assert rcpt["Action"] == "failed" and rcpt["Status"] == "5.1.1" and rcpt["Remote-MTA"] is None
    assert rcpt["Diagnostic-Code"] == "smtp; 550 5.1.1 <bad@x.test>: Recipient address rejected: User unknown"
    assert [p.get_content_type() for p in dsn.get_payload()][2] == "text/rfc822-headers"
    kinds = [e.kind for e in journey.entries]
    assert kinds[:2] == ["queued", "delivery"] and "dsn" in kinds and kinds[-1] == "finished"
    dsn_event = next(e for e in journey.entries if e.kind == "dsn")
    assert dsn_event.detail["dsn_id"] and dsn_event.detail["to"] == "s@x.test"
    assert journey.status == "partly delivered"


def test_alias_expansion_inherits_notify_and_reports_the_alias(tmp_path):
    world = World(tmp_path)

    async def body(w):
        await w.enqueue(Recipient("team@x.test", orcpt="rfc822;team@x.test", notify=("FAILURE",)))
        await w.drain()
    run(world, body)
    [dsn] = world.mailbox("s")
    _, rcpt = status_groups(dsn)
    assert rcpt["Final-Recipient"] == "rfc822; bad@x.test" and rcpt["Original-Recipient"] == "rfc822;team@x.test"
    assert "(sent to <team@x.test>)" in dsn.get_payload()[0].get_content()


@pytest.mark.parametrize("case", ["notify-never", "null-sender", "bounce-of-bounce"])
def test_no_report(tmp_path, case):
    world = World(tmp_path)

    async def body(w):
        if case == "notify-never":
            qid = await w.enqueue(Recipient("bad@x.test", notify=("NEVER",)))
        elif case == "null-sender":
            qid = await w.enqueue("bad@x.test", sender="")
        else:  # a DSN that somehow has a sender: still never reported on
            qid = await w.enqueue("bad@x.test", body=b"Content-Type: multipart/report; report-type=delivery-status;"
                                                     b" boundary=b\r\n\r\n--b--\r\n")
        await w.drain()
        return [e for e in await w.store.events(qid) if e.kind == "dsn"]
    events = run(world, body)
    assert world.mailbox("s") == []
    assert events[0].detail["dsn_id"] is None and events[0].detail["reason"]


def test_expiry_bounces_with_4_4_7(tmp_path):
    world = World(tmp_path, max_lifetime=3600.0, retry_schedule=[600.0])

    async def body(w):
        await w.enqueue("far@remote.test")
        while w.clock.now < T0 + 4000:
            await w.drain()
            w.clock.now += 600
        return await w.store.list()
    assert run(world, body) == []
    [dsn] = world.mailbox("s")
    _, rcpt = status_groups(dsn)
    assert rcpt["Action"] == "failed" and rcpt["Status"] == "4.4.7"
    assert rcpt["Diagnostic-Code"] == "smtp; 451 4.4.0 remote delivery not available yet"
    assert "could not be reached in time" in " ".join(dsn.get_payload()[0].get_content().split())


def test_delay_warning_once_across_restarts(tmp_path):
    world = World(tmp_path, delay_warning=3600.0, retry_schedule=[1800.0])

    async def first(w):
        qid = await w.enqueue("far@remote.test", envid="E1")
        await w.drain()
        assert (await w.store.get(qid)).next_attempt == T0 + 1800
        w.clock.now = T0 + 1800
        await w.drain()  # 30 min: too early to warn; the next try is pulled in to the warning time
        assert (await w.store.get(qid)).next_attempt == T0 + 3600
        w.clock.now = T0 + 3600
        await w.drain()
        return qid
    qid = run(world, first)
    [warning] = world.mailbox("s")
    assert warning["Subject"] == "Delayed Mail (still being retried)"
    _, rcpt = status_groups(warning)
    assert rcpt["Action"] == "delayed" and rcpt["Status"] == "4.4.0"
    assert rcpt["Will-Retry-Until"] == "Sun, 19 Nov 2023 22:13:20 +0000"  # arrival + 5 days

    async def after_restart(w):
        item = await w.store.get(qid)
        assert item.delay_warned
        for _ in range(3):
            w.clock.now += 1800
            await w.drain()
        return await w.store.get(qid)
    item = run(world, after_restart)
    assert item.attempts == 6 and len(world.mailbox("s")) == 1


def test_success_report_only_when_asked(tmp_path):
    world = World(tmp_path)

    async def body(w):
        await w.enqueue(Recipient("u1@x.test", notify=("SUCCESS", "FAILURE")), Recipient("u2@x.test"))
        await w.drain()
    run(world, body)
    [report] = world.mailbox("s")
    assert report["Subject"] == "Successful Mail Delivery Report"
    groups = status_groups(report)
    assert len(groups) == 2 and groups[1]["Action"] == "delivered" and groups[1]["Final-Recipient"] == "rfc822; u1@x.test"
    assert len(world.mailbox("u1")) == len(world.mailbox("u2")) == 1
