"""BDAT / CHUNKING (RFC 3030): raw chunks, LAST, refusals that still consume the octets."""

from __future__ import annotations

import pytest

from mailboat import smtp
from mailboat.smtp import replies

from dialog import converse

TXN = b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@y.example>\r\n"


def test_single_last_chunk() -> None:
    conv = converse(TXN + b"BDAT 13 LAST\r\nhello\r\n.\r\nX\r\nNOOP\r\n")
    assert conv.app.messages == [b"hello\r\n.\r\nX\r\n"]  # no dot handling
    assert conv.of_type(smtp.MessageComplete) == [smtp.MessageComplete(13)]
    assert conv.lines[-2:] == ["250 2.0.0 Ok: queued as Q1", "250 2.0.0 Ok"]


def test_bare_lf_in_bdat_content_is_refused_at_last() -> None:
    conv = converse(TXN + b"BDAT 5\r\nhelloBDAT 0\r\nBDAT 7 last\r\n world\n")
    # same content rules as DATA: the chunks are acknowledged, the message is refused at LAST
    assert conv.lines[-3:] == ["250 2.0.0 5 octets received", "250 2.0.0 0 octets received",
                               str(replies.BARE_LINE_ENDING)]
    assert conv.of_type(smtp.MessageAborted)[0].reply == replies.BARE_LINE_ENDING


def test_chunks_are_reassembled() -> None:
    conv = converse(TXN + b"BDAT 7\r\nhello\r\nBDAT 0\r\nBDAT 8 LAST\r\n world\r\n")
    assert conv.lines[-3:] == ["250 2.0.0 7 octets received", "250 2.0.0 0 octets received",
                               "250 2.0.0 Ok: queued as Q1"]
    assert conv.app.messages == [b"hello\r\n world\r\n"]


def test_crlf_split_across_chunks_is_fine() -> None:
    conv = converse(TXN + b"BDAT 6\r\nhello\rBDAT 1 LAST\r\n\n")
    assert conv.app.messages == [b"hello\r\n"]


def test_bdat_zero_last() -> None:
    conv = converse(TXN + b"BDAT 0 LAST\r\n")
    assert conv.of_type(smtp.MessageComplete) == [smtp.MessageComplete(0)]
    assert conv.app.messages == [b""]


@pytest.mark.parametrize("split", [None, 1, 3, 7])
def test_chunk_split_arbitrarily(split: int | None) -> None:
    stream = TXN + b"BDAT 10 LAST\r\nQUIT\r\nabcdNOOP\r\n"
    chunks = [stream] if split is None else [stream[i : i + split] for i in range(0, len(stream), split)]
    conv = converse(chunks)
    assert conv.app.messages == [b"QUIT\r\nabcd"]
    assert conv.last == "250 2.0.0 Ok"


@pytest.mark.parametrize(
    ("setup", "reply"),
    [
        (b"", replies.NEED_HELO),
        (b"EHLO c\r\n", replies.NEED_MAIL),
        (b"EHLO c\r\nMAIL FROM:<a@b.example>\r\n", replies.NEED_RCPT),
        (b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<>\r\n", replies.NO_VALID_RECIPIENTS),
        (b"HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@y.example>\r\n", replies.NEED_EHLO),
    ],
)
def test_refused_bdat_still_consumes_its_octets(setup: bytes, reply: smtp.Reply) -> None:
    conv = converse(setup + b"BDAT 28 LAST\r\nMAIL FROM:<evil@x.example>\r\nNOOP\r\n")
    assert conv.lines[-2:] == [str(reply), "250 2.0.0 Ok"]
    assert not any(isinstance(e, smtp.MailFrom) and e.path.local_part == "evil" for e in conv.events)
    assert not conv.of_type(smtp.MessageComplete)


def test_data_after_bdat_is_refused() -> None:
    conv = converse(TXN + b"BDAT 3\r\nabcDATA\r\n")
    assert conv.last == str(replies.DATA_AFTER_BDAT)


@pytest.mark.parametrize("arg", [b"BDAT\r\n", b"BDAT x\r\n", b"BDAT 5 LASTX\r\n", b"BDAT -1\r\n",
                                 b"BDAT 5 LAST more\r\n"])
def test_malformed_bdat_closes(arg: bytes) -> None:
    conv = converse(TXN + arg + b"hello")
    assert conv.lines[-2:] == ["501 5.5.4 Syntax: BDAT <size> [LAST]", str(replies.BDAT_UNSYNCHRONISED)]
    assert conv.conn.closed


def test_oversize_bdat_consumed_then_552_at_last() -> None:
    block = b"x" * 98 + b"\r\n"
    conv = converse(TXN + b"BDAT 600\r\n" + block * 6 + b"BDAT 600 LAST\r\n" + block * 6 + b"NOOP\r\n",
                    max_message_size=1000)
    assert conv.lines[-3:] == ["250 2.0.0 600 octets received", str(replies.MESSAGE_TOO_BIG), "250 2.0.0 Ok"]
    assert sum(len(e.data) for e in conv.of_type(smtp.DataChunk)) == 600
    assert conv.of_type(smtp.MessageAborted)[0].reply == replies.MESSAGE_TOO_BIG


def test_huge_announced_chunk_is_streamed_not_buffered() -> None:
    conn = smtp.ServerConnection("mx", max_message_size=0)
    conn.start()
    conn.receive_data(TXN + b"BDAT 1000000 LAST\r\n")
    for _ in range(3):
        conn.next_event()
        conn.accept()
    total = 0
    for _ in range(1000000 // 50000):
        conn.receive_data((b"z" * 98 + b"\r\n") * 500)
        event = conn.next_event()
        assert isinstance(event, smtp.DataChunk)
        total += len(event.data)
    assert total == 1000000
    assert conn.next_event() == smtp.MessageComplete(1000000)


def test_eof_mid_bdat_closes_without_message() -> None:
    conv = converse(TXN + b"BDAT 100 LAST\r\nonly a part", eof=True)
    assert conv.conn.closed
    assert not conv.of_type(smtp.MessageComplete) and not conv.of_type(smtp.MessageAborted)
    assert isinstance(conv.events[-1], smtp.ConnectionClosed)


def test_eof_mid_data_closes_without_message() -> None:
    conv = converse(TXN + b"DATA\r\nsome text\r\n.", eof=True)
    assert not conv.of_type(smtp.MessageComplete)
    assert isinstance(conv.events[-1], smtp.ConnectionClosed)
