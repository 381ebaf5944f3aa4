"""DATA: end-of-data detection, dot-unstuffing, content checks and the SMTP smuggling table."""

from __future__ import annotations

import time

import pytest

from mailboat import smtp
from mailboat.smtp import replies
from mailboat.smtp.data import ContentCheck, DataReceiver

from dialog import converse

PREFIX = b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@y.example>\r\nDATA\r\n"


def message(body: bytes, **options: object) -> tuple[list[bytes], list[str], object]:
    conv = converse(PREFIX + body, **options)
    return conv.app.messages, conv.lines, conv


@pytest.mark.parametrize(
    ("wire", "content"),
    [
        (b"Subject: x\r\n\r\nhello\r\n.\r\n", b"Subject: x\r\n\r\nhello\r\n"),
        (b".\r\n", b""),  # empty message: the first line may be the dot
        (b"\r\n.\r\n", b"\r\n"),
        (b"..\r\n.\r\n", b".\r\n"),  # first line dot-stuffed
        (b"..hidden\r\n.\r\n", b".hidden\r\n"),
        (b"a\r\n..\r\n...\r\n.x\r\n.\r\n", b"a\r\n.\r\n..\r\nx\r\n"),
        (b"a\r\n.\r\nNOOP\r\n", b"a\r\n"),
        (b"no dot . here\r\n.\r\n", b"no dot . here\r\n"),
        (b"a" * 998 + b"\r\n.\r\n", b"a" * 998 + b"\r\n"),  # 1000 octets with CRLF
        (b"." + b"a" * 998 + b"\r\n.\r\n", b"a" * 998 + b"\r\n"),  # the stuffing dot is not counted
        (b"\xc3\xa9\x80\xff 8-bit\r\n.\r\n", b"\xc3\xa9\x80\xff 8-bit\r\n"),
    ],
)
def test_data_content(wire: bytes, content: bytes) -> None:
    msgs, lines, _ = message(wire)
    assert msgs == [content]
    assert lines[-1].startswith("250 2.0.0 Ok: queued") or lines[-2].startswith("250 2.0.0 Ok: queued")


def test_message_complete_size_and_transaction_reset() -> None:
    _, lines, conv = message(b"..ab\r\n.\r\nRCPT TO:<x@y.example>\r\n")
    assert conv.of_type(smtp.MessageComplete) == [smtp.MessageComplete(5)]
    assert lines[-1] == "503 5.5.1 Error: need MAIL command"


def test_second_transaction_after_real_end_is_fine() -> None:
    body = b"one\r\n.\r\n" + PREFIX[len(b"EHLO c.example\r\n") :] + b"two\r\n.\r\n"
    msgs, _, _ = message(body)
    assert msgs == [b"one\r\n", b"two\r\n"]


REFUSED = [
    # (body, reply, reason fragment)
    (b"bare\nLF\r\n.\r\n", replies.BARE_LINE_ENDING, "bare"),
    (b"bare\rCR\r\n.\r\n", replies.BARE_LINE_ENDING, "bare"),
    (b"ends with CR\r\r\n.\r\n", replies.BARE_LINE_ENDING, "bare"),
    (b"\nfirst\r\n.\r\n", replies.BARE_LINE_ENDING, "bare"),
    (b"nul\x00here\r\n.\r\n", replies.NUL_IN_DATA, "NUL"),
    (b"a" * 999 + b"\r\n.\r\n", replies.DATA_LINE_TOO_LONG, "line"),
    (b"ok\r\n" + b"a" * 5000 + b"\r\n.\r\n", replies.DATA_LINE_TOO_LONG, "line"),
    ((b"a" * 98 + b"\r\n") * 20 + b".\r\n", replies.MESSAGE_TOO_BIG, "exceeds"),
]


@pytest.mark.parametrize(("body", "reply", "reason"), REFUSED)
def test_refused_content_is_answered_at_the_real_end(body: bytes, reply: smtp.Reply, reason: str) -> None:
    options = {"max_message_size": 1500} if reply is replies.MESSAGE_TOO_BIG else {}
    conv = converse(PREFIX + body + b"NOOP\r\n", **options)
    aborted = conv.of_type(smtp.MessageAborted)
    assert len(aborted) == 1 and aborted[0].reply == reply and reason in aborted[0].reason
    assert conv.lines[-2:] == [reply.to_bytes().decode().rstrip("\r\n"), "250 2.0.0 Ok"]
    assert not conv.of_type(smtp.MessageComplete)
    assert conv.conn.mail_from is None


def test_oversize_stops_data_chunks_but_reads_to_the_end() -> None:
    chunks = [PREFIX] + [b"x" * 80 + b"\r\n"] * 100 + [b".\r\nNOOP\r\n"]
    conv = converse(chunks, max_message_size=1000)
    delivered = b"".join(e.data for e in conv.of_type(smtp.DataChunk))
    assert len(delivered) <= 1000
    assert conv.lines[-2:] == ["552 5.3.4 Error: message exceeds fixed maximum message size", "250 2.0.0 Ok"]


def test_refused_data_by_application() -> None:
    conv = converse(PREFIX + b"NOOP\r\n", hooks={smtp.Data: lambda e: smtp.Reply.make(451, "4.3.0", "Try later")})
    assert conv.lines[-2:] == ["451 4.3.0 Try later", "250 2.0.0 Ok"]


# -- SMTP smuggling (security.md §1.2): every variant, exactly one message ---------------------

SMUGGLING_VARIANTS = [
    b"\n.\n",
    b"\r.\r",
    b"\n.\r\n",
    b"\r\n.\n",
    b"\r.\r\n",
    b"\r\n\x00.\r\n",
    b"\n.\r",
    b"\r.\n",
    b"\r\n.\r",
    b"\r\n.\r\r\n",
    b"\r\r\n.\r\r\n",
]
SMUGGLED = b"MAIL FROM:<evil@x.example>\r\nRCPT TO:<v@y.example>\r\nDATA\r\nsmuggled\r\n"


@pytest.mark.parametrize("variant", SMUGGLING_VARIANTS, ids=repr)
@pytest.mark.parametrize("split", ["whole", "bytewise"])
def test_smuggling_variants_never_end_data(variant: bytes, split: str) -> None:
    stream = PREFIX + b"Subject: hi\r\n\r\nbody" + variant + SMUGGLED + b"\r\n.\r\n"
    chunks = [stream] if split == "whole" else [stream[i : i + 1] for i in range(len(stream))]
    conv = converse(chunks)
    finished = conv.of_type(smtp.MessageComplete) + conv.of_type(smtp.MessageAborted)
    assert len(finished) == 1
    assert len(conv.of_type(smtp.MailFrom)) == 1
    assert not any(isinstance(e, smtp.RcptTo) and e.path.local_part == "v" for e in conv.events)
    # every variant contains a bare CR/LF or a NUL, so the message is refused
    assert isinstance(finished[0], smtp.MessageAborted)
    assert finished[0].reply.code == 550


def test_smuggling_with_pipelined_second_message_after_real_end() -> None:
    """hannob/smtpsmug 'pipelining': a real CRLF.CRLF followed by a second transaction is legitimate."""
    stream = PREFIX + b"one\r\n.\r\n" + SMUGGLED + b".\r\n"
    conv = converse(stream)
    assert len(conv.of_type(smtp.MessageComplete)) == 2


# -- the receiver itself ------------------------------------------------------------------------


def feed_all(receiver: DataReceiver, pieces: list[bytes]) -> tuple[bytes, bool, bytes]:
    buf, out, done = b"", bytearray(), False
    for piece in pieces:
        buf += piece
        pos, content, done = receiver.feed(buf, 0)
        out += content
        buf = buf[pos:]
        if done:
            break
    return bytes(out), done, buf


@pytest.mark.parametrize("cut", range(1, 12))
def test_receiver_holds_back_partial_terminators(cut: int) -> None:
    wire = b"ab\r\n..c\r\n.\r\nREST"
    out, done, rest = feed_all(DataReceiver(0), [wire[:cut], wire[cut:]])
    assert (out, done, rest) == (b"ab\r\n.c\r\n", True, b"REST")


def test_receiver_chunks_are_large() -> None:
    receiver = DataReceiver(0)
    block = (b"x" * 78 + b"\r\n") * 800  # 64000 octets
    pos, content, done = receiver.feed(block, 0)
    # A final CRLF is content whatever follows: passed on at once, nothing held back.
    assert content == block and pos == len(block) and not done
    assert receiver.feed(block + b".\r\n", len(block)) == (len(block) + 3, b"", True)


@pytest.mark.parametrize(
    ("piece", "content", "held"),
    [
        (b"ab\r\n", b"ab\r\n", b""),
        (b"ab\r", b"ab", b"\r"),  # may be the CR of CRLF.CRLF
        (b"ab\r\n.", b"ab\r\n", b"."),  # terminator or transparency dot?
        (b"ab\r\n.\r", b"ab\r\n", b".\r"),
        (b"ab\r\n..", b"ab\r\n.", b""),  # stuffed: the first dot goes
        (b"ab\r\n.x", b"ab\r\nx", b""),
    ],
)
def test_receiver_holds_back_only_what_may_be_the_terminator(piece: bytes, content: bytes, held: bytes) -> None:
    pos, out, done = DataReceiver(0).feed(piece, 0)
    assert (out, piece[pos:], done) == (content, held, False)


def test_content_check_is_split_invariant() -> None:
    data = b"ab\r\ncd" + b"e" * 997 + b"\r\n"
    whole = ContentCheck(0)
    whole.feed(data)
    for i in range(len(data)):
        split = ContentCheck(0)
        split.feed(data[:i])
        split.feed(data[i:])
        assert split.error == whole.error
    assert whole.error is not None and whole.error[0] is replies.DATA_LINE_TOO_LONG


def test_data_throughput() -> None:
    """10 MiB through DATA in 64 KiB reads must take well under a second (bulk processing)."""
    line = b"The quick brown fox jumps over the lazy dog. 0123456789 abcdefghijklmnopqrstuvwxyz\r\n"
    body = line * (10 * 1024 * 1024 // len(line)) + b".\r\n"
    conn = smtp.ServerConnection("mx", max_message_size=0)
    conn.start()
    conn.receive_data(PREFIX)
    for _ in range(4):
        conn.next_event()
        conn.accept()
    total = 0
    start = time.perf_counter()
    for i in range(0, len(body), 65536):
        conn.receive_data(body[i : i + 65536])
        while (event := conn.next_event()) is not smtp.NEED_DATA:
            if isinstance(event, smtp.DataChunk):
                total += len(event.data)
            elif isinstance(event, smtp.MessageComplete):
                conn.send(replies.OK)
    elapsed = time.perf_counter() - start
    assert total == len(body) - 3
    assert elapsed < 1.0, f"{len(body) / elapsed / 1e6:.0f} MB/s"
