"""Table tests: every command, sequence rule and engine-side error of ServerConnection (SMTP mode).

Each row: a list of client lines (str: CRLF appended; bytes: sent raw), the glob the *last*
server line must match, and engine options.
"""

from __future__ import annotations

import re

import pytest

from dialog import converse

EHLO = ["EHLO client.example"]
HELO = ["HELO client.example"]
MAIL = ["MAIL FROM:<a@b.example>"]
RCPT = ["RCPT TO:<c@d.example>"]

TABLE: list[tuple[str, list[str | bytes], str, dict]] = [
    ("greeting", [], "220 mx.example.com ESMTP mailboat", {}),
    ("helo", HELO, "250 mx.example.com", {}),
    ("ehlo", EHLO, "250 DSN", {}),
    ("ehlo lowercase verb", ["ehlo client.example"], "250 DSN", {}),
    ("ehlo address literal", ["EHLO [192.0.2.1]"], "250 DSN", {}),
    ("helo without name", ["HELO"], "501 5.5.4 Syntax: HELO hostname", {}),
    ("ehlo two words", ["EHLO a b"], "501 5.5.4 *", {}),
    ("lhlo in smtp mode", ["LHLO client.example"], "500 5.5.1 *", {}),
    ("unknown verb", ["FOO bar"], "500 5.5.2 *", {}),
    ("empty line", [""], "500 5.5.2 *", {}),
    ("verb with digits", ["M4IL FROM:<a@b>"], "500 5.5.2 *", {}),
    ("noop", ["NOOP"], "250 2.0.0 Ok", {}),
    ("noop with argument", ["NOOP hello"], "250 2.0.0 Ok", {}),
    ("help", ["HELP"], "214 2.0.0 *", {}),
    ("help topic", ["HELP MAIL"], "214 2.0.0 *", {}),
    ("vrfy", ["VRFY someone"], "252 2.5.0 *", {}),
    ("vrfy without argument", ["VRFY"], "501 5.5.4 *", {}),
    ("expn", ["EXPN staff"], "502 5.5.1 *", {}),
    ("rset", ["RSET"], "250 2.0.0 Ok", {}),
    ("rset with argument", ["RSET now"], "501 5.5.4 Syntax: RSET", {}),
    ("quit", ["QUIT"], "221 2.0.0 Bye", {}),
    ("quit with argument", ["QUIT now"], "501 5.5.4 Syntax: QUIT", {}),
    # MAIL
    ("mail before helo", MAIL, "503 5.5.1 Error: send HELO/EHLO first", {}),
    ("mail after helo", HELO + MAIL, "250 2.1.0 Ok", {}),
    ("mail after ehlo", EHLO + MAIL, "250 2.1.0 Ok", {}),
    ("mail null sender", EHLO + ["MAIL FROM:<>"], "250 2.1.0 Ok", {}),
    ("mail lowercase", EHLO + ["mail from:<a@b.example>"], "250 2.1.0 Ok", {}),
    ("mail space after colon", EHLO + ["MAIL FROM: <a@b.example>"], "250 2.1.0 Ok", {}),
    ("mail source route", EHLO + ["MAIL FROM:<@r.example:a@b.example>"], "250 2.1.0 Ok", {}),
    ("mail without brackets", EHLO + ["MAIL FROM:a@b.example"], "501 5.5.4 Syntax: MAIL FROM:<address>", {}),
    ("mail without FROM", EHLO + ["MAIL <a@b.example>"], "501 5.5.4 *", {}),
    ("mail bad address", EHLO + ["MAIL FROM:<a@@b.example>"], "501 5.1.7 *", {}),
    ("mail garbage after path", EHLO + ["MAIL FROM:<a@b.example>x"], "501 5.5.4 *", {}),
    ("nested mail", EHLO + MAIL + ["MAIL FROM:<c@d.example>"], "503 5.5.1 Error: nested MAIL command", {}),
    ("mail params need ehlo", HELO + ["MAIL FROM:<a@b.example> SIZE=10"], "555 5.5.4 *", {}),
    ("mail size over limit", EHLO + ["MAIL FROM:<a@b.example> SIZE=1001"], "552 5.3.4 *", {"max_message_size": 1000}),
    ("mail size at limit", EHLO + ["MAIL FROM:<a@b.example> SIZE=1000"], "250 2.1.0 Ok", {"max_message_size": 1000}),
    ("mail size unlimited", EHLO + ["MAIL FROM:<a@b.example> SIZE=99999999999"], "250 2.1.0 Ok",
     {"max_message_size": 0}),
    ("mail unknown parameter", EHLO + ["MAIL FROM:<a@b.example> XFOO=1"], "555 5.5.4 *", {}),
    ("mail duplicate parameter", EHLO + ["MAIL FROM:<a@b.example> RET=FULL RET=HDRS"], "501 5.5.4 *", {}),
    ("mail 8bit without SMTPUTF8", EHLO + ["MAIL FROM:<jö@b.example>"], "553 5.6.7 *", {}),
    ("mail 8bit with SMTPUTF8", EHLO + ["MAIL FROM:<jö@bü.example> SMTPUTF8"], "250 2.1.0 Ok", {}),
    ("mail invalid utf-8", EHLO + [b"MAIL FROM:<\xff@b.example> SMTPUTF8\r\n"], "500 5.5.2 *", {}),
    ("mail all params", EHLO + ["MAIL FROM:<a@b.example> SIZE=1 BODY=8BITMIME RET=HDRS ENVID=x+2By AUTH=<>"],
     "250 2.1.0 Ok", {}),
    # RCPT
    ("rcpt before helo", RCPT, "503 5.5.1 *", {}),
    ("rcpt before mail", EHLO + RCPT, "503 5.5.1 Error: need MAIL command", {}),
    ("rcpt", EHLO + MAIL + RCPT, "250 2.1.5 Ok", {}),
    ("rcpt postmaster", EHLO + MAIL + ["RCPT TO:<Postmaster>"], "250 2.1.5 Ok", {}),
    ("rcpt null path", EHLO + MAIL + ["RCPT TO:<>"], "501 5.1.3 *", {}),
    ("rcpt bad address", EHLO + MAIL + ["RCPT TO:<a b@c.example>"], "501 5.1.3 *", {}),
    ("rcpt without TO", EHLO + MAIL + ["RCPT <c@d.example>"], "501 5.5.4 Syntax: RCPT TO:<address>", {}),
    ("rcpt dsn params", EHLO + MAIL + ["RCPT TO:<c@d.example> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;c+40d.example"],
     "250 2.1.5 Ok", {}),
    ("rcpt NOTIFY=NEVER exclusive", EHLO + MAIL + ["RCPT TO:<c@d.example> NOTIFY=NEVER,DELAY"], "501 5.5.4 *", {}),
    ("rcpt params need ehlo", HELO + MAIL + ["RCPT TO:<c@d.example> NOTIFY=NEVER"], "555 5.5.4 *", {}),
    ("rcpt 8bit without SMTPUTF8", EHLO + MAIL + ["RCPT TO:<jö@d.example>"], "553 5.6.7 *", {}),
    ("rcpt 8bit with SMTPUTF8", EHLO + ["MAIL FROM:<a@b.example> SMTPUTF8", "RCPT TO:<jö@dü.example>"],
     "250 2.1.5 Ok", {}),
    ("too many recipients", EHLO + MAIL + RCPT * 3, "452 4.5.3 *", {"max_recipients": 2}),
    # DATA
    ("data before helo", ["DATA"], "503 5.5.1 *", {}),
    ("data before mail", EHLO + ["DATA"], "503 5.5.1 Error: need MAIL command", {}),
    ("data before rcpt", EHLO + MAIL + ["DATA"], "503 5.5.1 Error: need RCPT command", {}),
    ("data after refused rcpts", EHLO + MAIL + ["RCPT TO:<>", "DATA"], "554 5.5.1 Error: no valid recipients", {}),
    ("data with argument", EHLO + MAIL + RCPT + ["DATA now"], "501 5.5.4 Syntax: DATA", {}),
    ("data", EHLO + MAIL + RCPT + ["DATA"], "354 End data with <CR><LF>.<CR><LF>", {}),
    ("data after too many recipients", EHLO + MAIL + RCPT * 3 + ["DATA"], "354 *", {"max_recipients": 2}),
    # STARTTLS / AUTH when not offered
    ("starttls not offered", EHLO + ["STARTTLS"], "502 5.5.1 *", {}),
    ("auth not offered", EHLO + ["AUTH PLAIN"], "502 5.5.1 *", {}),
    # line discipline
    ("line of 512 octets", ["NOOP " + "x" * 505], "250 2.0.0 Ok", {}),
    ("line of 513 octets", ["NOOP " + "x" * 506], "500 5.5.2 Error: line too long", {}),
    ("MAIL line of 1012 octets", EHLO + ["MAIL FROM:<a@b.example> AUTH=" + "x" * 981], "250 2.1.0 Ok", {}),
    ("MAIL line of 1013 octets", EHLO + ["MAIL FROM:<a@b.example> AUTH=" + "x" * 982],
     "500 5.5.2 Error: line too long", {}),
    ("bare LF inside a command", [b"NOOP\nNOOP\r\n"], "500 5.5.2 *", {}),
    ("bare CR inside a command", [b"NOOP\rNOOP\r\n"], "500 5.5.2 *", {}),
    ("NUL inside a command", [b"NO\x00OP\r\n"], "500 5.5.2 *", {}),
    ("LF-only line then CRLF", [b"EHLO a\nMAIL FROM:<a@b.example>\r\n"], "500 5.5.2 *", {}),
    ("8bit in EHLO", ["EHLO exämple.org"], "500 5.5.2 *", {}),
    ("8bit in NOOP", ["NOOP é"], "500 5.5.2 *", {}),
]


@pytest.mark.parametrize(("lines", "expected", "options"), [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_command_table(lines: list[str | bytes], expected: str, options: dict) -> None:
    data = [line if isinstance(line, bytes) else line.encode() + b"\r\n" for line in lines]
    conv = converse(b"".join(data), **options)
    pattern = re.escape(expected).replace(r"\*", ".*")
    assert re.fullmatch(pattern, conv.last), conv.lines


@pytest.mark.parametrize(
    "raw",
    [b"NOOP\nNOOP\r\n", b"NOOP\rNOOP\r\n", b"RSET\nQUIT\r\n", b"EHLO a\nMAIL FROM:<a@b.example>\r\n"],
)
def test_bare_line_endings_never_split_a_command(raw: bytes) -> None:
    conv = converse(raw)
    assert conv.lines[1:] == ["500 5.5.2 Error: bare <CR> or <LF> in command"]
    assert not conv.conn.closed


def test_ehlo_capabilities() -> None:
    conv = converse(b"EHLO client.example\r\n", max_message_size=5000)
    assert conv.lines[1:] == [
        "250-mx.example.com",
        "250-PIPELINING",
        "250-SIZE 5000",
        "250-8BITMIME",
        "250-SMTPUTF8",
        "250-ENHANCEDSTATUSCODES",
        "250-CHUNKING",
        "250 DSN",
    ]
    assert conv.conn.helo_name == "client.example" and conv.conn.esmtp


def test_ehlo_size_unlimited_and_auth_without_tls_requirement() -> None:
    conv = converse(b"EHLO c\r\n", max_message_size=0, auth_mechanisms=("plain", "LOGIN"), auth_requires_tls=False)
    assert "250-SIZE" in conv.lines and "250 AUTH PLAIN LOGIN" in conv.lines


def test_ehlo_hides_auth_before_tls_and_offers_starttls() -> None:
    conv = converse(b"EHLO c\r\n", starttls_available=True, auth_mechanisms=("PLAIN",))
    assert conv.last == "250 STARTTLS"
    assert not any("AUTH" in line for line in conv.lines)


def test_helo_is_not_esmtp() -> None:
    conv = converse(b"HELO client.example\r\n")
    assert conv.conn.helo_name == "client.example" and not conv.conn.esmtp
