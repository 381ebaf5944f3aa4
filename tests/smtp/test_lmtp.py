"""LMTP mode (RFC 2033): LHLO, and one reply per accepted recipient after the message."""

from __future__ import annotations

from mailboat import smtp
from mailboat.smtp import replies

from dialog import converse

LHLO = b"LHLO c.example\r\nMAIL FROM:<a@b.example>\r\n"
RCPTS = b"RCPT TO:<one@y.example>\r\nRCPT TO:<bad@y.example>\r\nRCPT TO:<three@y.example>\r\n"
REFUSE_BAD = {
    smtp.RcptTo: lambda e: smtp.Reply.make(550, "5.1.1", "No such user") if e.path.local_part == "bad" else None,
}


def per_recipient(event: smtp.Event) -> list[smtp.Reply]:
    return [smtp.Reply.make(250, "2.1.5", "one delivered"), smtp.Reply.make(452, "4.2.2", "three over quota")]


def test_three_recipients_one_refused_two_replies_after_data() -> None:
    conv = converse(
        LHLO + RCPTS + b"DATA\r\nhello\r\n.\r\nNOOP\r\n",
        lmtp=True,
        hooks={**REFUSE_BAD, smtp.MessageComplete: per_recipient},
    )
    assert [p.address for p in conv.conn.accepted_recipients] == []  # transaction over
    assert conv.lines[-7:] == [
        "250 2.1.5 Ok",
        "550 5.1.1 No such user",
        "250 2.1.5 Ok",
        "354 End data with <CR><LF>.<CR><LF>",
        "250 2.1.5 one delivered",
        "452 4.2.2 three over quota",
        "250 2.0.0 Ok",
    ]


def test_message_complete_stays_pending_until_every_recipient_answered() -> None:
    conn = smtp.ServerConnection("mx", lmtp=True)
    conn.start()
    conn.receive_data(LHLO + RCPTS + b"BDAT 5 LAST\r\nhello")
    for _ in range(5):
        event = conn.next_event()
        if isinstance(event, smtp.RcptTo) and event.path.local_part == "bad":
            conn.send(smtp.Reply.make(550, "5.1.1", "No"))
        else:
            conn.accept()
    assert conn.next_event() == smtp.DataChunk(b"hello")
    assert conn.next_event() == smtp.MessageComplete(5)
    assert [p.local_part for p in conn.accepted_recipients] == ["one", "three"]
    conn.send(replies.OK)
    assert conn.awaiting_reply
    conn.send(replies.OK)
    assert not conn.awaiting_reply and conn.accepted_recipients == ()


def test_engine_refusal_is_repeated_per_recipient() -> None:
    conv = converse(LHLO + RCPTS + b"DATA\r\nbare\nLF\r\n.\r\n", lmtp=True, hooks=REFUSE_BAD)
    assert conv.lines[-2:] == [str(replies.BARE_LINE_ENDING)] * 2


def test_helo_and_ehlo_are_not_lmtp() -> None:
    conv = converse(b"HELO c\r\nEHLO c\r\nMAIL FROM:<a@b.example>\r\n", lmtp=True)
    assert conv.lines[1:] == [
        "500 5.5.1 Error: command not valid in this mode",
        "500 5.5.1 Error: command not valid in this mode",
        "503 5.5.1 Error: send LHLO first",
    ]


def test_lhlo_capabilities() -> None:
    conv = converse(b"LHLO c\r\n", lmtp=True)
    assert conv.lines[1] == "250-mx.example.com" and conv.last == "250 DSN"
    assert conv.of_type(smtp.Helo) == [smtp.Helo("c", "LHLO")]
