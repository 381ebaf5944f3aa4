"""Abuse limits of the engine (smtp/limits.py): non-SMTP input, the error count, junk commands."""

from __future__ import annotations

import pytest

from mailboat import smtp
from mailboat.smtp import replies

from dialog import converse

BODY = b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n"
HTTP_POST = (b"POST / HTTP/1.1\r\nHost: mx.example.com:25\r\nContent-Type: text/plain\r\n"
             b"Content-Length: %d\r\n\r\n" % len(BODY)) + BODY

NON_SMTP = [
    ("browser form POST", HTTP_POST),
    ("curl GET", b"GET / HTTP/1.1\r\nHost: mx\r\nUser-Agent: curl/8.0\r\n\r\n" + BODY),
    ("proxy CONNECT", b"CONNECT mx.example.com:25 HTTP/1.1\r\n\r\n" + BODY),
    ("HEAD", b"HEAD /index.html HTTP/1.0\r\n" + BODY),
    ("PUT", b"PUT /x HTTP/1.1\r\n" + BODY),
    ("OPTIONS", b"OPTIONS * HTTP/1.1\r\n" + BODY),
    ("lower-case method", b"post / HTTP/1.1\r\n" + BODY),
    ("bare method", b"GET\r\n" + BODY),
    ("header line first", b"Host: mx.example.com\r\n" + BODY),
    ("header with a tab", b"User-Agent:\tcurl\r\n" + BODY),
    ("header without a value", b"X-Empty:\r\n" + BODY),
    ("after EHLO, before MAIL", b"EHLO x\r\nContent-Type: text/plain\r\n" + BODY[8:]),
    ("inside a transaction", b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nGET / HTTP/1.1\r\n" + BODY[33:]),
    ("request line too long", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + BODY),
]


@pytest.mark.parametrize("raw", [row[1] for row in NON_SMTP], ids=[row[0] for row in NON_SMTP])
def test_non_smtp_line_closes_before_the_rest_runs(raw: bytes) -> None:
    conv = converse(raw)
    assert conv.last == "521 5.7.0 Error: non-SMTP command, closing connection"
    assert conv.conn.closed and isinstance(conv.events[-1], smtp.ConnectionClosed)
    assert len(conv.of_type(smtp.NonSmtpCommand)) == 1
    # Nothing after the line ran: no transaction was opened, no message taken, no QUIT.
    assert not conv.of_type(smtp.RcptTo) and not conv.of_type(smtp.Data) and not conv.app.messages
    assert not conv.of_type(smtp.Quit)


def test_non_smtp_event_carries_the_line_for_the_log() -> None:
    conv = converse(HTTP_POST)
    (event,) = conv.of_type(smtp.NonSmtpCommand)
    assert event.command == "POST / HTTP/1.1" and event.reply == replies.NON_SMTP_COMMAND


@pytest.mark.parametrize(
    "line",
    [b"MAIL FROM:<a@b.example>", b"RCPT TO:<c@d.example>", b"NOOP Host: x", b"HELP GET", b"EHLO get",
     b"FOO bar", b"GETX / HTTP/1.1", b"Host:x", b"http://x/"],
)
def test_smtp_and_plain_unknown_lines_are_not_taken_for_http(line: bytes) -> None:
    conv = converse(line + b"\r\nNOOP\r\n")
    assert not conv.of_type(smtp.NonSmtpCommand) and not conv.conn.closed
    assert conv.last == "250 2.0.0 Ok"


def test_non_smtp_line_is_refused_even_while_a_decision_is_pending() -> None:
    # Pipelined behind a MAIL the application has not answered yet: the MAIL is answered,
    # then the request line ends the session, and the RCPT after it never becomes an event.
    conn = smtp.ServerConnection("mx")
    conn.start()
    conn.receive_data(b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nPOST / HTTP/1.1\r\nRCPT TO:<c@d.example>\r\n")
    assert isinstance(conn.next_event(), smtp.Helo)
    conn.accept()
    assert isinstance(conn.next_event(), smtp.MailFrom)
    conn.accept()
    assert isinstance(conn.next_event(), smtp.NonSmtpCommand)
    assert conn.next_event() == smtp.ConnectionClosed()
    assert conn.data_to_send().endswith(b"250 2.1.0 Ok\r\n521 5.7.0 Error: non-SMTP command, closing connection\r\n")


# -- the error count: every 4yz/5yz reply ----------------------------------------------------------

UNKNOWN = smtp.Reply.make(550, "5.1.1", "User unknown")
SESSION = b"EHLO c\r\nMAIL FROM:<a@b.example>\r\n"


def test_refused_recipients_count_towards_max_errors() -> None:
    conv = converse(SESSION + b"RCPT TO:<x@y.example>\r\n" * 30, hooks={smtp.RcptTo: lambda e: UNKNOWN},
                    max_errors=20)
    assert conv.lines.count("550 5.1.1 User unknown") == 20
    assert conv.last == "421 4.7.0 Error: too many errors, closing connection"
    assert conv.conn.closed and len(conv.of_type(smtp.RcptTo)) == 20


def test_errors_property_counts_engine_and_application_refusals() -> None:
    conv = converse(SESSION + b"FOO\r\nRCPT TO:<x@y.example>\r\n", hooks={smtp.RcptTo: lambda e: UNKNOWN})
    assert conv.conn.errors == 2


def test_accepted_message_starts_the_counts_again() -> None:
    refuse_x = {smtp.RcptTo: lambda e: UNKNOWN if e.path.local_part == "x" else None}
    message = b"RCPT TO:<ok@y.example>\r\nDATA\r\nhi\r\n.\r\n"
    probes = b"RCPT TO:<x@y.example>\r\n" * 2
    conv = converse(SESSION + probes + message + b"MAIL FROM:<a@b.example>\r\n" + probes, hooks=refuse_x,
                    max_errors=3)
    assert not conv.conn.closed and conv.conn.errors == 2 and len(conv.app.messages) == 1


def test_refused_message_counts_and_does_not_reset() -> None:
    conv = converse(SESSION + b"RCPT TO:<x@y.example>\r\nDATA\r\nhi\r\n.\r\nFOO\r\n",
                    hooks={smtp.MessageComplete: lambda e: smtp.Reply.make(554, "5.7.1", "Spam")}, max_errors=2)
    assert conv.lines[-3:] == ["554 5.7.1 Spam", "500 5.5.2 Error: command not recognized",
                               "421 4.7.0 Error: too many errors, closing connection"]


def test_lmtp_counts_one_error_per_message() -> None:
    lhlo = b"LHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@y.example>\r\nRCPT TO:<z@y.example>\r\n"
    refuse = smtp.Reply.make(552, "5.2.2", "Mailbox full")
    conv = converse(lhlo + b"DATA\r\nhi\r\n.\r\n", lmtp=True, max_errors=2,
                    hooks={smtp.MessageComplete: lambda e: [refuse, refuse]})
    assert conv.lines[-2:] == ["552 5.2.2 Mailbox full"] * 2
    assert not conv.conn.closed and conv.conn.errors == 1


# -- junk commands ---------------------------------------------------------------------------------

@pytest.mark.parametrize("verb", [b"NOOP", b"RSET", b"VRFY postmaster", b"HELP", b"EXPN staff"])
def test_junk_commands_past_the_limit_close(verb: bytes) -> None:
    conv = converse(b"EHLO c\r\n" + (verb + b"\r\n") * 101 + b"MAIL FROM:<a@b.example>\r\n")
    assert len(conv.lines) == 1 + 8 + 100 + 1  # greeting, EHLO, 100 served, then 421
    assert conv.last == "421 4.7.0 Error: too many NOOP/RSET/VRFY/HELP commands, closing connection"
    assert conv.conn.closed and not conv.of_type(smtp.MailFrom)


def test_junk_commands_mixed_and_limit_configurable() -> None:
    conv = converse(b"NOOP\r\nRSET\r\nHELP\r\nVRFY x\r\nNOOP\r\n", max_junk_commands=4)
    assert conv.lines[1:] == ["250 2.0.0 Ok", "250 2.0.0 Ok", "214 2.0.0 See https://www.rfc-editor.org/rfc/rfc5321",
                              "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery",
                              "421 4.7.0 Error: too many NOOP/RSET/VRFY/HELP commands, closing connection"]


def test_junk_count_starts_again_after_a_message() -> None:
    message = SESSION + b"RCPT TO:<c@d.example>\r\nDATA\r\nhi\r\n.\r\n"
    conv = converse(b"NOOP\r\n" * 3 + message + b"NOOP\r\n" * 3, max_junk_commands=3)
    assert not conv.conn.closed and conv.last == "250 2.0.0 Ok" and len(conv.app.messages) == 1


def test_junk_limit_zero_is_unlimited() -> None:
    conv = converse(b"NOOP\r\n" * 300, max_junk_commands=0)
    assert not conv.conn.closed and conv.lines.count("250 2.0.0 Ok") == 300


# -- endless lines ---------------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", [b"", b"EHLO c\r\n", b"EHLO c\r\nMAIL FROM:<a@b.example>\r\n"])
def test_endless_line_answers_500_and_closes(prefix: bytes) -> None:
    conv = converse(prefix + b"NOOP " + b"x" * 5000)  # no CRLF: still arriving
    assert conv.last == "500 5.5.2 Error: line too long" and conv.conn.closed


def test_endless_sasl_line_closes() -> None:
    conv = converse(b"EHLO c\r\nAUTH LOGIN\r\n" + b"A" * 20000, auth_mechanisms=("LOGIN",), auth_requires_tls=False)
    assert conv.last == "500 5.5.6 Authentication exchange line is too long" and conv.conn.closed
