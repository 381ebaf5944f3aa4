"""Session behaviour: pipelining, decisions, resets, error limits, greetings, EOF."""

from __future__ import annotations

import pytest

from mailboat import smtp
from mailboat.smtp import replies

from dialog import converse

SESSION = b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@y.example>\r\n"


def test_pipelined_commands_are_emitted_one_decision_at_a_time() -> None:
    conn = smtp.ServerConnection("mx.example.com")
    conn.start()
    conn.receive_data(SESSION + b"NOOP\r\nRSET\r\n")
    greeting = conn.data_to_send()
    assert greeting == b"220 mx.example.com ESMTP mailboat\r\n"
    helo = conn.next_event()
    assert helo == smtp.Helo("c.example", "EHLO") and conn.awaiting_reply
    # nothing after EHLO is answered before the application decides
    assert conn.data_to_send() == b""
    with pytest.raises(smtp.LocalProtocolError):
        conn.next_event()
    conn.accept()
    assert conn.data_to_send().endswith(b"250 DSN\r\n")
    assert isinstance(conn.next_event(), smtp.MailFrom)
    conn.send(smtp.Reply.make(250, "2.1.0", "Sender ok"))
    assert isinstance(conn.next_event(), smtp.RcptTo)
    conn.accept()
    assert conn.next_event() == smtp.Reset()  # NOOP answered silently, RSET notifies
    assert conn.next_event() is smtp.NEED_DATA
    assert conn.data_to_send() == b"250 2.1.0 Sender ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n"


def test_refusals_by_the_application_keep_the_session() -> None:
    refuse = smtp.Reply.make(550, "5.1.1", "No such user")
    conv = converse(
        SESSION + b"RCPT TO:<ok@y.example>\r\nDATA\r\n",
        hooks={smtp.RcptTo: lambda e: refuse if e.path.local_part == "x" else None},
    )
    assert conv.lines[-3:] == ["550 5.1.1 No such user", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>"]
    assert [p.address for p in conv.conn.accepted_recipients] == ["ok@y.example"]


def test_refused_mail_does_not_open_a_transaction() -> None:
    conv = converse(SESSION, hooks={smtp.MailFrom: lambda e: smtp.Reply.make(550, "5.7.1", "Go away")})
    assert conv.lines[-2:] == ["550 5.7.1 Go away", "503 5.5.1 Error: need MAIL command"]


def test_refused_ehlo_leaves_session_ungreeted() -> None:
    conv = converse(
        b"EHLO bad\r\nMAIL FROM:<a@b.example>\r\n",
        hooks={smtp.Helo: lambda e: smtp.Reply.make(550, "5.7.1", "No")},
    )
    assert conv.lines[-2:] == ["550 5.7.1 No", "503 5.5.1 Error: send HELO/EHLO first"]
    assert conv.conn.helo_name is None


def test_rset_discards_transaction() -> None:
    conv = converse(SESSION + b"RSET\r\nRCPT TO:<x@y.example>\r\n")
    assert conv.lines[-2:] == ["250 2.0.0 Ok", "503 5.5.1 Error: need MAIL command"]
    assert smtp.Reset() in conv.events
    assert conv.conn.mail_from is None


def test_ehlo_inside_transaction_resets_it() -> None:
    conv = converse(SESSION + b"EHLO again.example\r\nRCPT TO:<x@y.example>\r\n")
    kinds = [type(e).__name__ for e in conv.events]
    assert kinds[-3:] == ["Reset", "Helo", "CommandRejected"]
    assert conv.last == "503 5.5.1 Error: need MAIL command"
    assert conv.conn.helo_name == "again.example"


def test_command_rejected_events_are_reported() -> None:
    conv = converse(b"FOO\r\nMAIL FROM:<a@b.example>\r\n")
    rejected = conv.of_type(smtp.CommandRejected)
    assert [(r.command, r.reply) for r in rejected] == [
        ("FOO", replies.UNRECOGNIZED),
        ("MAIL FROM:<a@b.example>", replies.NEED_HELO),
    ]


def test_max_errors_closes_with_421() -> None:
    conv = converse(b"FOO\r\nBAR\r\nBAZ\r\nNOOP\r\n", max_errors=3)
    assert conv.lines[1:] == [
        "500 5.5.2 Error: command not recognized",
        "500 5.5.2 Error: command not recognized",
        "500 5.5.2 Error: command not recognized",
        "421 4.7.0 Error: too many errors, closing connection",
    ]
    assert conv.conn.closed
    assert isinstance(conv.events[-1], smtp.ConnectionClosed)
    assert conv.conn.next_event() == smtp.ConnectionClosed()


def test_application_refusals_count_as_errors() -> None:
    conv = converse(
        b"EHLO c\r\n" + b"MAIL FROM:<a@b.example>\r\n" * 5,
        hooks={smtp.MailFrom: lambda e: smtp.Reply.make(450, "4.7.1", "Later")},
        max_errors=3,
    )
    assert conv.lines[-4:] == ["450 4.7.1 Later"] * 3 + ["421 4.7.0 Error: too many errors, closing connection"]
    assert conv.conn.closed


def test_too_many_recipients_is_not_an_error_event_that_closes() -> None:
    conv = converse(SESSION + b"RCPT TO:<x@y.example>\r\n" * 5, max_recipients=1, max_errors=3)
    assert conv.lines[-5:] == ["452 4.5.3 Error: too many recipients"] * 5
    assert not conv.conn.closed


def test_application_421_closes() -> None:
    conv = converse(SESSION + b"NOOP\r\n",
                    hooks={smtp.RcptTo: lambda e: smtp.Reply.make(421, "4.3.2", "Shutting down")})
    assert conv.last == "421 4.3.2 Shutting down"
    assert conv.conn.closed and isinstance(conv.events[-1], smtp.ConnectionClosed)


def test_quit_closes_and_ignores_the_rest() -> None:
    conv = converse(b"QUIT\r\nNOOP\r\n")
    assert conv.lines[1:] == ["221 2.0.0 Bye"]
    assert [type(e) for e in conv.events] == [smtp.Quit, smtp.ConnectionClosed]
    conv.conn.receive_data(b"NOOP\r\n")  # ignored after close
    assert conv.conn.data_to_send() == b""


def test_eof_processes_buffered_commands_first() -> None:
    conn = smtp.ServerConnection("mx")
    conn.start()
    conn.receive_data(b"NOOP\r\nNOOP\r\n")
    conn.receive_data(b"")
    assert not conn.closed
    assert conn.next_event() == smtp.ConnectionClosed()
    assert conn.closed
    assert conn.data_to_send().endswith(b"250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n")


def test_eof_mid_line_closes() -> None:
    conv = converse(b"NOO", eof=True)
    assert conv.conn.closed and conv.lines == ["220 mx.example.com ESMTP mailboat"]


def test_421_greeting_closes() -> None:
    conv = converse(b"EHLO c\r\n", greeting=smtp.Reply.make(421, "4.3.2", "Busy"))
    assert conv.lines == ["421 4.3.2 Busy"] and conv.conn.closed


def test_554_greeting_serves_only_quit() -> None:
    conv = converse(b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nQUIT\r\n", greeting=smtp.Reply.make(554, "5.7.1", "No"))
    assert conv.lines == [
        "554 5.7.1 No",
        "503 5.5.1 Error: service refused, only QUIT is accepted",
        "503 5.5.1 Error: service refused, only QUIT is accepted",
        "221 2.0.0 Bye",
    ]


def test_custom_greeting_and_banner() -> None:
    assert converse(b"", banner="LMTP ready").lines == ["220 mx.example.com LMTP ready"]


def test_overlong_line_is_discarded_while_streaming() -> None:
    conn = smtp.ServerConnection("mx")
    conn.start()
    conn.receive_data(b"x" * 4000)  # over the 512 limit, under the 4 KiB slack: still read
    assert conn.next_event() is smtp.NEED_DATA
    assert len(conn._buf) - conn._pos == 4000  # (white-box: memory stays bounded by MAX_LINE)
    conn.receive_data(b"x\r")
    assert conn.next_event() is smtp.NEED_DATA
    conn.receive_data(b"\nNOOP\r\n")
    event = conn.next_event()
    assert isinstance(event, smtp.CommandRejected) and event.reply == replies.LINE_TOO_LONG
    assert event.command.startswith("xxxx")
    assert conn.next_event() is smtp.NEED_DATA
    assert conn.data_to_send().endswith(b"500 5.5.2 Error: line too long\r\n250 2.0.0 Ok\r\n")


def test_endless_line_closes_without_waiting_for_its_end() -> None:
    conn = smtp.ServerConnection("mx")
    conn.start()
    conn.data_to_send()
    for _ in range(64):  # 4 MiB without a CRLF, as it streams in
        conn.receive_data(b"x" * 65536)
        event = conn.next_event()
        if event is not smtp.NEED_DATA:
            break
    assert isinstance(event, smtp.CommandRejected) and event.reply == replies.LINE_TOO_LONG
    assert conn.closed and conn.next_event() == smtp.ConnectionClosed()
    assert conn.data_to_send() == b"500 5.5.2 Error: line too long\r\n"


def test_state_properties() -> None:
    conv = converse(b"EHLO c\r\nMAIL FROM:<a@b.example> SMTPUTF8 BODY=8BITMIME\r\nRCPT TO:<x@y.example>\r\n")
    conn = conv.conn
    assert conn.smtputf8 and conn.body_type == "8BITMIME"
    assert conn.mail_from is not None and conn.mail_from.path.address == "a@b.example"
    assert not conn.tls_active and not conn.authenticated and conn.auth_identity is None
