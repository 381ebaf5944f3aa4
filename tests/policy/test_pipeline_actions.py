"""Verdict actions, symbols and per-message state; each filter's time limit and failure mode,
in the pipeline and over a real socket; quarantine from a verdict to the Maildir's .Junk
through a real queue store."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3

import pytest

from mailboat.delivery.maildir import MaildirTransport
from mailboat.mail.envelope import Envelope, Recipient
from mailboat.policy import (
    Action,
    Filter,
    Pipeline,
    SessionInfo,
    Symbol,
    TransactionInfo,
    Verdict,
)
from mailboat.policy.verdict import CONTINUE, discard, quarantine, refuse, scored
from mailboat.queue.sqlite import SqliteQueueStore
from mailboat.resolver.base import TempDnsError
from mailboat.resolver.dnspython import DnspythonResolver
from mailboat.routing.route import Maildir

from serverkit import smtp_listener

GUARD = 30  # seconds: only a broken time limit gets near it (then the test fails instead of hanging)
MESSAGE = b"From: a@example.org\r\nTo: b@example.com\r\nSubject: s\r\n\r\nbody\r\n"


def session() -> SessionInfo:
    return SessionInfo(listener="smtp", peer_ip="192.0.2.1", peer_port=25)


class Hangs(Filter):
    """Never answers (a DNS list whose server is gone) unless its time limit stops it."""

    def __init__(self, on_error: str, hook: str = "on_rcpt") -> None:
        self.name, self.on_error, self.timeout = f"hangs-{on_error}", on_error, 0.05
        self.hook = hook

    async def on_rcpt(self, session, txn, recipient):
        await asyncio.Event().wait()

    async def on_data(self, session, txn, message):
        await asyncio.Event().wait()


class Raises(Filter):
    def __init__(self, on_error: str) -> None:
        self.name, self.on_error = f"raises-{on_error}", on_error
        self.failures: list[Exception] = []

    def failed(self, session, txn, error):
        self.failures.append(error)

    async def on_mail(self, session, txn):
        if txn.sender.startswith("bug"):
            raise RuntimeError("a bug in a filter")
        return CONTINUE


class Says(Filter):
    def __init__(self, name: str, verdict: Verdict, calls: list | None = None) -> None:
        self.name, self.verdict, self.calls = name, verdict, calls if calls is not None else []

    async def on_rcpt(self, session, txn, recipient):
        self.calls.append((self.name, "rcpt"))
        return self.verdict

    async def on_data(self, session, txn, message):
        self.calls.append((self.name, "data"))
        return self.verdict


def run_message(pipeline: Pipeline, sender: str = "a@example.org"):
    info, txn = session(), TransactionInfo(sender=sender)

    async def main():
        mail = await pipeline.on_mail(info, txn)
        rcpt = await pipeline.on_rcpt(info, txn, "b@example.com")
        data = await pipeline.on_data(info, txn, MESSAGE)
        return mail, rcpt, data
    return asyncio.run(asyncio.wait_for(main(), GUARD))


def test_a_filter_that_times_out_ends_in_its_failure_mode():
    calls: list = []
    accept = Pipeline([Hangs("accept"), Says("after", CONTINUE, calls)])
    _, rcpt, data = run_message(accept)
    assert rcpt.reply is None and data.reply is None  # skipped, as if it were not there
    assert calls == [("after", "rcpt"), ("after", "data")]  # the filters after it still ran
    _, rcpt, data = run_message(Pipeline([Hangs("tempfail")]))
    assert (rcpt.reply.code, rcpt.reply.status) == (451, (4, 7, 1)) and rcpt.action is Action.TEMPFAIL
    assert (data.reply.code, data.reply.status) == (451, (4, 7, 1))


def test_a_filter_that_raises_ends_in_its_failure_mode():
    accepting, deferring = Raises("accept"), Raises("tempfail")
    mail, _, data = run_message(Pipeline([accepting]), sender="bug@example.org")
    assert mail.reply is None and data is CONTINUE
    mail, _, _ = run_message(Pipeline([deferring]), sender="bug@example.org")
    assert (mail.reply.code, mail.reply.status) == (451, (4, 3, 0))
    assert [type(e) for e in accepting.failures + deferring.failures] == [RuntimeError, RuntimeError]
    assert run_message(Pipeline([deferring]))[0].reply is None  # no failure, no deferral


def test_symbols_and_headers_accumulate_across_filters_and_phases():
    pipeline = Pipeline([
        Says("a", scored(Symbol("A", 1.5, "first"), headers=(b"X-A: 1\r\n",))),
        Says("b", scored(Symbol("B", -0.5))),
    ])
    _, rcpt, data = run_message(pipeline)
    assert rcpt is CONTINUE
    # Each filter spoke at RCPT and at DATA: four contributions, in phase and filter order.
    assert [s.name for s in data.symbols] == ["A", "B", "A", "B"]
    assert data.score == 2.0 and data.action is Action.CONTINUE
    assert data.headers == (b"X-A: 1\r\n", b"X-A: 1\r\n")


def test_reject_stops_quarantine_is_remembered_discard_wins():
    calls: list = []
    pipeline = Pipeline([Says("q", quarantine("suspicious"), calls), Says("no", refuse(550, "5.7.1", "no"), calls),
                         Says("never", CONTINUE, calls)])
    _, rcpt, _ = run_message(pipeline)
    assert rcpt.reply.code == 550 and ("never", "rcpt") not in calls
    _, rcpt, data = run_message(Pipeline([Says("q", quarantine("suspicious"))]))
    assert rcpt.reply is None and data.action is Action.QUARANTINE and data.reason == "suspicious"
    assert b"X-Mailboat-Folder: Junk\r\n" in data.headers
    calls = []
    _, rcpt, data = run_message(Pipeline([Says("d", discard("spam trap"), calls), Says("after", CONTINUE, calls)]))
    assert rcpt.reply is None and data.action is Action.DISCARD
    assert calls == [("d", "rcpt")]  # discarded at RCPT: nothing else looks at it


def test_verdict_actions_and_replies_agree():
    assert refuse(550, "5.7.1", "no").action is Action.REJECT
    assert refuse(451, "4.7.1", "later").action is Action.TEMPFAIL
    with pytest.raises(ValueError):
        Verdict(action=Action.REJECT)  # a refusal needs its reply
    with pytest.raises(ValueError):
        Verdict(action=Action.QUARANTINE, reply=refuse(550, "5.7.1", "no").reply)


def test_state_is_typed_and_per_transaction():
    txn = TransactionInfo(sender="a@example.org")
    txn.state[Symbol] = Symbol("X", 1.0)
    assert txn.state[Symbol].name == "X" and txn.state.get(Verdict) is None
    with pytest.raises(TypeError):
        txn.state[Symbol] = "not a symbol"
    assert Symbol not in TransactionInfo(sender="a@example.org").state


class DnsList(Filter):
    """A DNS list looked up at connect through a real resolver whose server never answers."""

    name = "dnsbl"
    timeout = 0.2
    on_error = "accept"

    def __init__(self, nameserver: str) -> None:
        self._resolver = DnspythonResolver([nameserver], timeout=60.0)

    async def on_connect(self, session):
        try:
            listed = await self._resolver.a("1.0.0.127.zen.test.example")
        except TempDnsError:
            listed = []
        return refuse(554, "5.7.1", "listed") if listed else CONTINUE


def test_over_a_socket_failing_filters_cost_their_mode_and_the_session_goes_on():
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # receives queries, answers none
    silent.bind(("127.0.0.1", 0))
    dnsbl = DnsList(f"127.0.0.1:{silent.getsockname()[1]}")
    pipeline = Pipeline([dnsbl, Raises("tempfail"), Hangs("accept")])

    async def main():
        listener = smtp_listener(pipeline=pipeline)
        await listener.start()
        port = listener.server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        replies = [await reader.readline()]

        async def say(line: bytes) -> bytes:
            writer.write(line + b"\r\n")
            replies.append(await reader.readline())
            return replies[-1]

        await say(b"HELO client.example.org")
        await say(b"MAIL FROM:<bug@example.org>")
        await say(b"MAIL FROM:<a@example.org>")
        await say(b"RCPT TO:<b@example.com>")
        await say(b"DATA")
        await say(MESSAGE + b".")
        await say(b"QUIT")
        writer.close()
        queued = await listener.ctx.intake.store.list()
        await listener.stop()
        return replies, queued

    try:
        replies, queued = asyncio.run(asyncio.wait_for(main(), GUARD))
    finally:
        silent.close()
    codes = [r[:9] for r in replies]
    assert codes == [b"220 mx.te", b"250 mx.te", b"451 4.3.0", b"250 2.1.0", b"250 2.1.5", b"354 End d",
                     b"250 2.0.0", b"221 2.0.0"], replies
    assert len(queued) == 1


def test_quarantine_reaches_the_junk_folder_through_the_queue(tmp_path):
    """A quarantine verdict, over SMTP, into a SQLite queue, read back, delivered to Maildir."""
    store = SqliteQueueStore(str(tmp_path / "q.sqlite"))
    pipeline = Pipeline([Says("q", quarantine("looks like spam", (Symbol("SPAMMY", 7.0),)))])
    mailbox = tmp_path / "alice"

    async def main():
        listener = smtp_listener(pipeline=pipeline, store=store)
        await listener.start()
        port = listener.server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        for line in (b"HELO c.example.org", b"MAIL FROM:<a@example.org>", b"RCPT TO:<b@example.com>", b"DATA",
                     MESSAGE + b"."):
            writer.write(line + b"\r\n")
            reply = await reader.readline()
        assert reply.startswith(b"250 2.0.0 Ok: queued as"), reply
        writer.close()
        await listener.stop()
        reopened = SqliteQueueStore(str(tmp_path / "q.sqlite"))  # read back from the file
        [item] = await reopened.list()
        data = await reopened.load_message(item.queue_id)
        transport = MaildirTransport(hostname="mx.test.example")
        [outcome] = await transport.deliver(item.envelope, data, list(item.envelope.recipients),
                                            Maildir(str(mailbox)))
        await reopened.close()
        await store.close()
        return item, outcome

    item, outcome = asyncio.run(main())
    assert item.envelope.quarantine is True and outcome.reply_code == 250
    [junk] = list((mailbox / ".Junk" / "new").iterdir())
    assert b"Subject: s" in junk.read_bytes() and list((mailbox / "new").iterdir()) == []


def test_the_label_decides_only_for_messages_queued_without_the_field(tmp_path):
    """Queue compatibility: a record written before the quarantine field existed is judged by
    the X-Mailboat-Folder label that version wrote; for any other record the label decides nothing."""
    path = str(tmp_path / "q.sqlite")
    labelled = b"X-Mailboat-Folder: Junk\r\n" + MESSAGE

    async def enqueue():
        store = SqliteQueueStore(path)
        for queue_id, quarantined in (("OLD1", False), ("NEW1", False)):
            await store.enqueue(queue_id, Envelope("a@example.org", (Recipient(f"{queue_id}@example.com"),),
                                                   quarantine=quarantined), labelled)
        await store.close()

    asyncio.run(enqueue())
    db = sqlite3.connect(path)
    [(raw,)] = db.execute("SELECT envelope FROM message WHERE queue_id = 'OLD1'").fetchall()
    doc = json.loads(raw)
    del doc["quarantine"]  # as the previous version wrote it
    db.execute("UPDATE message SET envelope = ? WHERE queue_id = 'OLD1'", (json.dumps(doc).encode(),))
    db.commit()
    db.close()

    async def deliver():
        store = SqliteQueueStore(path)
        transport = MaildirTransport(hostname="mx.test.example")
        found = {}
        for item in await store.list():
            box = tmp_path / item.queue_id
            await transport.deliver(item.envelope, await store.load_message(item.queue_id),
                                    list(item.envelope.recipients), Maildir(str(box)))
            found[item.queue_id] = (item.envelope.quarantine, (box / ".Junk" / "new").is_dir())
        await store.close()
        return found

    assert asyncio.run(deliver()) == {"OLD1": (None, True), "NEW1": (False, False)}
