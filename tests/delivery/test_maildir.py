"""MaildirTransport against a real Maildir in tmp_path (with injected faults for errors)."""

import asyncio
import errno
import os
import re
import stat
import time

import pytest

from mailboat.delivery import maildir as maildir_mod
from mailboat.delivery.maildir import MaildirTransport
from mailboat.delivery.outcome import RecipientState
from mailboat.delivery.transport import Transport
from mailboat.mail.envelope import Envelope, Recipient
from mailboat.routing.route import Maildir, Mx

MSG = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n.. dots stay\r\n"
NAME_RE = re.compile(r"^(\d+)\.M(\d+)P(\d+)Q(\d+)\.([^/:]+),S=(\d+)$")


def deliver(transport, route, *rcpts, sender="a@example.org", message=MSG):
    env = Envelope(sender, tuple(Recipient(r) for r in rcpts))
    return asyncio.run(transport.deliver(env, message, [Recipient(r) for r in rcpts], route))


def files(root):
    return sorted(os.listdir(os.path.join(root, "new")))


def test_delivers_with_trace_headers(tmp_path):
    root = str(tmp_path / "mail" / "example.com" / "bob")
    transport = MaildirTransport(hostname="mx.example:1/2")
    assert isinstance(transport, Transport)
    [out] = deliver(transport, Maildir(root), "bob@example.com")
    assert (out.state, out.reply_code, out.reply_text, out.host) == (
        RecipientState.DELIVERED, 250, "2.0.0 delivered to maildir", "local")
    assert out.enhanced_status == "2.0.0"
    for sub in ("tmp", "new", "cur"):
        assert stat.S_IMODE(os.stat(os.path.join(root, sub)).st_mode) == 0o700
    assert os.listdir(os.path.join(root, "tmp")) == []
    [name] = files(root)
    match = NAME_RE.match(name)
    assert match and match.group(3) == str(os.getpid()) and match.group(5) == "mx.example\\0721\\0572"
    data = open(os.path.join(root, "new", name), "rb").read()
    assert data == b"Return-Path: <a@example.org>\r\nDelivered-To: bob@example.com\r\n" + MSG
    assert int(match.group(6)) == len(data)
    assert stat.S_IMODE(os.stat(os.path.join(root, "new", name)).st_mode) == 0o600


def test_null_sender_and_several_recipients_one_route(tmp_path):
    """Two recipients whose route is the same Maildir share one copy (Delivered-To: the first)."""
    root = str(tmp_path / "shared")
    outs = deliver(MaildirTransport(), Maildir(root), "a@x.test", "b@x.test", sender="")
    assert [(o.recipient, o.state) for o in outs] == [("a@x.test", RecipientState.DELIVERED),
                                                      ("b@x.test", RecipientState.DELIVERED)]
    [name] = files(root)
    assert open(os.path.join(root, "new", name), "rb").read().startswith(
        b"Return-Path: <>\r\nDelivered-To: a@x.test\r\n")


def test_one_copy_per_mailbox_however_many_recipients_reach_it(tmp_path):
    """alice+1@ ... alice+100@ in one message: one file in alice's Maildir, and every one of
    them delivered (its own outcome), as Postfix's local(8) delivers once per mailbox."""
    root = str(tmp_path / "mail" / "example.com" / "alice")
    rcpts = [f"alice+{n}@example.com" for n in range(1, 101)]
    outs = deliver(MaildirTransport(), Maildir(root), *rcpts)
    assert [o.recipient for o in outs] == rcpts
    assert {(o.state, o.reply_code, o.reply_text) for o in outs} == {
        (RecipientState.DELIVERED, 250, "2.0.0 delivered to maildir")}
    [name] = files(root)
    data = open(os.path.join(root, "new", name), "rb").read()
    assert data == b"Return-Path: <a@example.org>\r\nDelivered-To: alice+1@example.com\r\n" + MSG
    # Another mailbox still gets its own copy, and another message another copy.
    bob = str(tmp_path / "mail" / "example.com" / "bob")
    env = Envelope("a@example.org", (Recipient("alice+1@example.com"), Recipient("bob@example.com")))

    async def both():
        transport = MaildirTransport()
        return await asyncio.gather(
            transport.deliver(env, MSG, [Recipient("bob@example.com"), Recipient("bob+x@example.com")], Maildir(bob)),
            transport.deliver(env, MSG, [Recipient("alice@example.com")], Maildir(root)))

    assert [len(o) for o in asyncio.run(both())] == [2, 1]
    assert len(files(bob)) == 1 and len(files(root)) == 2


def test_a_shared_copy_that_fails_fails_for_every_recipient_and_a_loop_only_for_its_own(tmp_path, monkeypatch):
    root = str(tmp_path / "alice")
    looped = b"Delivered-To: alice+1@example.com\r\n" + MSG
    outs = deliver(MaildirTransport(), Maildir(root), "alice+1@example.com", "alice+2@example.com",
                   "alice+3@example.com", message=looped)
    assert [(o.recipient, o.enhanced_status) for o in outs] == [
        ("alice+1@example.com", "5.4.6"), ("alice+2@example.com", "2.0.0"), ("alice+3@example.com", "2.0.0")]
    [name] = files(root)
    assert open(os.path.join(root, "new", name), "rb").read().split(b"\r\n")[1] == b"Delivered-To: alice+2@example.com"

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(maildir_mod, "_fsync", full)
    outs = deliver(MaildirTransport(), Maildir(str(tmp_path / "bob")), "bob+1@x.test", "bob+2@x.test")
    assert [(o.state, o.reply_code) for o in outs] == [(RecipientState.DEFERRED, 451)] * 2


def test_concurrent_deliveries_share_directory_syncs(tmp_path, monkeypatch):
    synced = []
    real_fsync = maildir_mod._fsync

    def counting_fsync(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(maildir_mod, "_fsync", counting_fsync)
    transport = MaildirTransport()
    roots = [str(tmp_path / f"box{i % 2}") for i in range(40)]
    os.makedirs(roots[0])

    async def main():
        env = Envelope("s@x", (Recipient("r@x"),))
        return await asyncio.gather(*(transport.deliver(env, MSG, [Recipient("r@x")], Maildir(r)) for r in roots))

    results = asyncio.run(main())
    assert all(o.state is RecipientState.DELIVERED for [o] in results)
    assert len(files(roots[0])) == len(files(roots[1])) == 20
    assert synced.count(False) == 40  # every file is fsync'd
    # one fsync per new/ per batch (+ parents when the mailboxes are created), far fewer than 40
    assert transport.dir_syncs <= 2 * transport.batches
    assert synced.count(True) < 12, synced.count(True)


def test_path_is_a_file_fails_permanently(tmp_path):
    target = tmp_path / "notadir"
    target.write_text("x")
    [out] = deliver(MaildirTransport(), Maildir(str(target)), "bob@x.test")
    assert out.state is RecipientState.FAILED and out.reply_code == 554 and out.enhanced_status == "5.2.0"
    [out] = deliver(MaildirTransport(), Maildir(str(target / "sub")), "bob@x.test")
    assert out.state is RecipientState.FAILED


def test_disk_full_defers_and_leaves_nothing(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    root = str(tmp_path / "box")
    monkeypatch.setattr(maildir_mod, "_fsync", full)
    [out] = deliver(MaildirTransport(), Maildir(root), "bob@x.test")
    assert out.state is RecipientState.DEFERRED and out.reply_code == 451 and out.enhanced_status == "4.3.0"
    assert "No space left" in out.reply_text
    assert os.listdir(os.path.join(root, "tmp")) == [] and files(root) == []


def test_delivered_to_loop_is_refused(tmp_path):
    looped = b"Delivered-To: Bob@x.test\r\n" + MSG
    [out] = deliver(MaildirTransport(), Maildir(str(tmp_path / "b")), "bob@x.test", message=looped)
    assert out.state is RecipientState.FAILED and out.enhanced_status == "5.4.6"
    # in the body it is not a header: delivered
    body_only = MSG + b"Delivered-To: bob@x.test\r\n"
    [out] = deliver(MaildirTransport(), Maildir(str(tmp_path / "b")), "bob@x.test", message=body_only)
    assert out.state is RecipientState.DELIVERED


def test_wrong_route_kind_is_a_programming_error(tmp_path):
    with pytest.raises(TypeError):
        deliver(MaildirTransport(), Mx("example.net"), "bob@example.net")


def test_large_message_written_completely(tmp_path):
    big = b"Subject: big\r\n\r\n" + os.urandom(3 * 1024 * 1024)
    root = str(tmp_path / "big")
    [out] = deliver(MaildirTransport(), Maildir(root), "r@x.test", message=big)
    assert out.state is RecipientState.DELIVERED
    [name] = files(root)
    assert open(os.path.join(root, "new", name), "rb").read().endswith(big)


needs_syncfs = pytest.mark.skipif(maildir_mod._syncfs is None, reason="no syncfs(2) here")


def _stream(transport, root, count, spacing=0.002):
    """`count` deliveries arriving `spacing` seconds apart (a steady stream, not one burst)."""
    async def one(i):
        await asyncio.sleep(i * spacing)
        env = Envelope("s@x", (Recipient("r@x"),))
        return await transport.deliver(env, MSG + b"%d\r\n" % i, [Recipient("r@x")], Maildir(root))

    async def main():
        return await asyncio.gather(*(one(i) for i in range(count)))

    return asyncio.run(main())


@needs_syncfs
def test_syncfs_batches_share_their_syncs_under_a_stream(tmp_path, monkeypatch):
    """sync="syncfs": a steady stream is delivered completely, and consecutive batches share a
    syncfs (the next batch's data sync also makes the previous batch's renames durable), so
    there are fewer than two syncs per batch; each file is in new/ only after a sync that
    followed its write."""
    calls = []
    real = maildir_mod._syncfs

    def slow_syncfs(fd):  # a slow disk: the next batch gathers while this one syncs
        calls.append(1)
        time.sleep(0.01)
        real(fd)

    monkeypatch.setattr(maildir_mod, "_syncfs", slow_syncfs)
    transport = MaildirTransport(sync="syncfs")
    root = str(tmp_path / "box")
    results = _stream(transport, root, 60)
    assert all(o.state is RecipientState.DELIVERED for [o] in results)
    assert len(files(root)) == 60 and os.listdir(os.path.join(root, "tmp")) == []
    assert transport.batches >= 3
    assert len(calls) < 2 * transport.batches, (len(calls), transport.batches)


@needs_syncfs
def test_syncfs_failure_defers_and_a_later_batch_still_delivers(tmp_path, monkeypatch):
    """A failed data sync leaves nothing in new/ and defers (451); a failed rename sync defers
    too, though the file is visible (a duplicate at worst, never a loss); the next batch is
    unaffected."""
    real = maildir_mod._syncfs
    failures = {"left": 1}

    def flaky(fd):
        if failures["left"]:
            failures["left"] -= 1
            raise OSError(errno.EIO, "I/O error")
        real(fd)

    monkeypatch.setattr(maildir_mod, "_syncfs", flaky)
    transport = MaildirTransport(sync="syncfs")
    root = str(tmp_path / "box")
    [first] = deliver(transport, Maildir(root), "r@x")
    assert first.state is RecipientState.DEFERRED and "4.3.0" in first.reply_text
    assert files(root) == [] and os.listdir(os.path.join(root, "tmp")) == []
    [second] = deliver(transport, Maildir(root), "r@x")
    assert second.state is RecipientState.DELIVERED and len(files(root)) == 1

    calls = {"n": 0}

    def fail_second(fd):  # the rename sync of a lone batch is its second call
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.EIO, "I/O error")
        real(fd)

    monkeypatch.setattr(maildir_mod, "_syncfs", fail_second)
    [third] = deliver(transport, Maildir(root), "r@x")
    assert third.state is RecipientState.DEFERRED
    assert len(files(root)) == 2  # visible, not known durable: delivered again later
