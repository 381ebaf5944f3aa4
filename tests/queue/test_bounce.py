"""Bounces end to end in-process: QueueRunner + Bouncer + a real SQLite queue + real Maildirs.

The DSN is enqueued into the same store and delivered by the same runner into the sender's
Maildir, where it is parsed back with the stdlib email package.
"""

import asyncio
import email
import email.policy
import logging
import os
import socket

import pytest
from test_smtp_sink import Sink

from mailboat import smtp
from mailboat.delivery.connection import Timeouts
from mailboat.delivery.maildir import MaildirTransport
from mailboat.delivery.smtp import SmtpTransport
from mailboat.mail.envelope import Envelope, Recipient
from mailboat.mail.ids import new_queue_id
from mailboat.queue.bounce import Bouncer
from mailboat.queue.runner import QueueRunner
from mailboat.queue.sqlite import SqliteQueueStore
from mailboat.routing.route import Maildir, Mx, Refuse, Relay
from mailboat.services.journey import assemble_journey

T0 = 1_700_000_000.0
BODY = b"From: s@x.test\r\nSubject: test\r\nMessage-ID: <m1@x.test>\r\n\r\nhello\r\n"


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


class Router:
    """x.test is local (Maildir under root); bad@x.test (and the `refused` ones) are refused;
    domains in `relays` go to that "host:port" over SMTP; other domains go to MX (no transport
    registered: deferred with 4.4.0). postmaster@x.test is an alias of pm@x.test."""

    def __init__(self, root, relays=None, refused=()):
        self.root, self.refused = root, {"bad@x.test", *refused}
        self.relays = relays if relays is not None else {}

    def expand(self, address):
        return {"team@x.test": ["u1@x.test", "bad@x.test"], "postmaster@x.test": ["pm@x.test"]}.get(address, [address])

    def route(self, address):
        local, domain = address.split("@")
        if address in self.refused:
            return Refuse(550, "5.1.1", f"<{address}>: Recipient address rejected: User unknown")
        if domain in self.relays:
            return Relay(self.relays[domain])
        return Maildir(os.path.join(self.root, local)) if domain == "x.test" else Mx(domain)


FAST = Timeouts(connect=2, greeting=2, command=2, data_init=2, data_block=2, data_done=2, tls_handshake=2)


class World:
    def __init__(self, tmp_path, relays=None, refused=(), **runner_args):
        self.tmp, self.clock, self.runner_args = tmp_path, Clock(), runner_args
        self.relays, self.refused = relays, refused
        self.store = self.runner = None

    def open(self):
        self.store = SqliteQueueStore(str(self.tmp / "queue.db"), clock=self.clock, release_leases=True)
        bouncer = Bouncer(self.store, "mx.x.test", postmaster="postmaster@x.test", clock=self.clock)
        transports = {"maildir": MaildirTransport(clock=self.clock),
                      "relay": SmtpTransport(None, "mx.x.test", timeouts=FAST, clock=self.clock)}  # type: ignore[arg-type]
        self.runner = QueueRunner(self.store, Router(str(self.tmp), self.relays, self.refused), transports,
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
    # Refused here, by us: our words (X-mailboat, as Postfix writes X-Postfix), no server "said" it.
    assert rcpt["Diagnostic-Code"] == "X-mailboat; <bad@x.test>: Recipient address rejected: User unknown"
    human = " ".join(dsn.get_payload()[0].get_content().split())
    assert "mailboat could not deliver it: <bad@x.test>: Recipient address rejected: User unknown." in human
    assert "said" not in human
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


def test_notify_never_means_no_report(tmp_path):
    world = World(tmp_path)

    async def body(w):
        qid = await w.enqueue(Recipient("bad@x.test", notify=("NEVER",)))
        await w.drain()
        return [e for e in await w.store.events(qid) if e.kind == "dsn"]
    events = run(world, body)
    assert world.mailbox("s") == [] and world.mailbox("pm") == []
    assert events[0].detail["dsn_id"] is None and events[0].detail["reason"]


REPORT_BODY = b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b--\r\n"


@pytest.mark.parametrize("case", ["null-sender", "report-with-a-sender"])
def test_a_failed_message_no_sender_can_hear_of_goes_to_postmaster(tmp_path, case):
    world = World(tmp_path)

    async def body(w):
        if case == "null-sender":
            qid = await w.enqueue("bad@x.test", sender="")
        else:  # a DSN that somehow has a sender: it is not bounced to it (a loop), but not lost either
            qid = await w.enqueue("bad@x.test", body=REPORT_BODY)
        await w.drain()
        return qid, [e for e in await w.store.events(qid) if e.kind == "dsn"]
    qid, [event] = run(world, body)
    assert world.mailbox("s") == []
    [copy] = world.mailbox("pm")  # postmaster@x.test is an alias of pm@x.test
    assert copy["Return-Path"] == "<>" and copy["To"] == "postmaster@x.test"
    assert event.detail["to"] == "postmaster@x.test" and event.detail["dsn_id"]
    _, rcpt = status_groups(copy)
    assert rcpt["Final-Recipient"] == "rfc822; bad@x.test" and rcpt["Status"] == "5.1.1"
    human = " ".join(copy.get_payload()[0].get_content().split())
    assert "Postmaster copy" in human and qid in human


def test_double_bounce_reaches_postmaster_and_a_failed_postmaster_report_is_dropped(tmp_path, caplog):
    """s@x.test mails bad@x.test; the bounce to s fails too (s is refused): the postmaster gets
    it. When the postmaster's own mailbox refuses as well, that is logged and dropped: no loop."""
    world = World(tmp_path, refused=("s@x.test",))

    async def body(w):
        original = await w.enqueue("bad@x.test")
        await w.drain()
        return original, await w.store.list()
    caplog.set_level(logging.INFO, "mailboat.bounce")
    original, left = run(world, body)
    assert left == []
    [copy] = world.mailbox("pm")
    assert copy["To"] == "postmaster@x.test" and copy["Return-Path"] == "<>"
    per_message, rcpt = status_groups(copy)
    assert rcpt["Final-Recipient"] == "rfc822; s@x.test" and rcpt["Action"] == "failed"
    returned = copy.get_payload()[2]  # the undeliverable bounce, which names the first message
    assert original.encode() in returned.as_bytes()
    assert "postmaster non-delivery notification" in caplog.text

    caplog.clear()
    world = World(tmp_path / "loop", refused=("s@x.test", "pm@x.test"))
    os.makedirs(tmp_path / "loop")
    left = run(world, lambda w: body(w))[1]
    assert left == [] and world.mailbox("pm") == []  # three failures, two reports, then nothing
    assert "postmaster non-delivery notification to <pm@x.test> failed: dropped" in caplog.text


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_bounce_says_mailboat_could_not_connect(tmp_path):
    port = closed_port()  # nothing listens there: every attempt is refused by the kernel
    world = World(tmp_path, relays={"far.test": f"127.0.0.1:{port}"}, max_lifetime=3600.0, retry_schedule=[600.0])

    async def body(w):
        await w.enqueue("dave@far.test")
        while w.clock.now < T0 + 4000:
            await w.drain()
            w.clock.now += 600
    run(world, body)
    [dsn] = world.mailbox("s")
    _, rcpt = status_groups(dsn)
    assert rcpt["Action"] == "failed" and rcpt["Status"] == "4.4.7"
    assert rcpt["Remote-MTA"] is None  # nobody answered
    assert rcpt["Diagnostic-Code"] == f"X-mailboat; connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused"
    human = " ".join(dsn.get_payload()[0].get_content().split())
    assert f"mailboat could not connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused." in human
    for wrong in ("said", "Errno", "Connect call failed", "OSError", "Traceback"):
        assert wrong not in dsn.as_string()


def test_remote_550_bounce_quotes_the_server_and_names_it(tmp_path):
    async def body(w):
        sink = await Sink.start("127.0.0.1", 0)
        sink.hooks[smtp.RcptTo] = lambda ev: smtp.Reply.make(550, "5.1.1", f"{ev.path}: User unknown here")
        w.relays["far.test"] = f"127.0.0.1:{sink.port}"
        try:
            await w.enqueue("nobody@far.test")
            await w.drain()
        finally:
            await sink.stop()
        return sink.messages
    world = World(tmp_path, relays={})
    assert run(world, body) == []
    [dsn] = world.mailbox("s")
    _, rcpt = status_groups(dsn)
    assert rcpt["Action"] == "failed" and rcpt["Status"] == "5.1.1"
    assert rcpt["Remote-MTA"] == "dns; 127.0.0.1"
    assert rcpt["Diagnostic-Code"] == "smtp; 550 5.1.1 <nobody@far.test>: User unknown here"
    human = " ".join(dsn.get_payload()[0].get_content().split())
    assert "The remote server 127.0.0.1 said: 550 5.1.1 <nobody@far.test>: User unknown here" in human


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
    assert rcpt["Diagnostic-Code"] == "X-mailboat; remote delivery not available yet"
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
    assert (len(groups) == 2 and groups[1]["Action"] == "delivered"
            and groups[1]["Final-Recipient"] == "rfc822; u1@x.test")
    assert len(world.mailbox("u1")) == len(world.mailbox("u2")) == 1
