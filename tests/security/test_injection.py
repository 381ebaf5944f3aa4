"""Injection: nothing a client sends reaches a header we write, a log line or a
queue record as CR, LF or another control byte.

Every probe goes over a real socket to `mailboat serve`. Hostile values either are refused with a
5xx reply (never 451/421, never a traceback) or arrive neutralised; then three places are read
back: the delivered Maildir files (the Return-Path, Delivered-To and Received headers we prepend),
the server's log (every line must be one well-formed syslog-style line), and the SQLite queue
(message rows and the "queued"/"connect" journey events, which outlive delivery).
"""

from __future__ import annotations

import base64
import json
import re
import smtplib

import pytest

from security_support import CONTROL, MESSAGE, Raw, bystander, queue_rows, queued_events, serving
from security_support import insecure_context as insecure

# One syslog-style line: "Nov 24 01:17:00 host mailboat/smtpd[123]: ..." with no control bytes.
LOG_LINE = re.compile(r"^[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \S+ mailboat/[a-z-]+\[\d+\]: [^\x00-\x1f\x7f]*$")
INJECTED = "X-Injected"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serving(tmp_path_factory.mktemp("injection")) as running:
        yield running


def transaction(port: int, lines: list[bytes], helo: bytes = b"client.example.org") -> list[bytes]:
    """Send each line after the previous reply (DATA content included); return the replies."""
    with Raw(port) as raw:
        assert raw.reply().startswith(b"220 ")
        replies = [raw.command(b"EHLO " + helo)]
        for line in lines:
            replies.append(raw.command(line))
            if replies[-1][:1] in (b"4", b"5") and line.startswith((b"MAIL", b"RCPT")):
                break
            if line == b"DATA" and replies[-1].startswith(b"354"):
                replies.append(raw.command(MESSAGE + b"."))
                break
        raw.command(b"QUIT")
    return replies


# -- refused at the door: decoded values with control bytes --------------------------------------

HOSTILE = [
    # (id, command lines after EHLO; the last one must be refused with 5xx)
    ("envid-crlf", [b"MAIL FROM:<s@example.org> ENVID=x+0D+0AX-Injected:+20yes"]),
    ("envid-nul", [b"MAIL FROM:<s@example.org> ENVID=x+00y"]),
    ("envid-esc", [b"MAIL FROM:<s@example.org> ENVID=x+1B[31m"]),
    ("envid-del", [b"MAIL FROM:<s@example.org> ENVID=x+7Fy"]),
    ("auth-param-crlf", [b"MAIL FROM:<s@example.org> AUTH=<x+0D+0AX-Injected:+20yes>"]),
    ("orcpt-crlf", [b"MAIL FROM:<s@example.org>",
                    b"RCPT TO:<alice@example.com> ORCPT=rfc822;a+0D+0AX-Injected:+20yes@example.com"]),
    ("orcpt-lf", [b"MAIL FROM:<s@example.org>", b"RCPT TO:<alice@example.com> ORCPT=rfc822;a+0Ab@example.com"]),
    ("orcpt-utf8-escape-cr", [b"MAIL FROM:<s@example.org> SMTPUTF8",
                              b"RCPT TO:<alice@example.com> ORCPT=utf-8;a\\x{0D}\\x{0A}X-Injected@example.com"]),
    ("orcpt-utf8-nel", [b"MAIL FROM:<s@example.org> SMTPUTF8",
                        b"RCPT TO:<alice@example.com> ORCPT=utf-8;a\\x{85}b@example.com"]),
    ("quoted-tab", [b'MAIL FROM:<"a\tb"@example.org>']),
    ("quoted-escaped-tab", [b'MAIL FROM:<"a\\\tb"@example.org>']),
    ("quoted-esc-byte", [b'MAIL FROM:<"a\x1bb"@example.org>']),
    ("quoted-del", [b'MAIL FROM:<"a\x7fb"@example.org>']),
    ("utf8-nel-local-part", ["MAIL FROM:<a\u0085X-Injected@example.org> SMTPUTF8".encode()]),
    ("utf8-line-separator", ['MAIL FROM:<"a\u2028X-Injected"@example.org> SMTPUTF8'.encode()]),
    ("utf8-c1-in-rcpt", [b"MAIL FROM:<s@example.org> SMTPUTF8", "RCPT TO:<alice\u009b@example.com>".encode()]),
    ("rcpt-nul", [b"MAIL FROM:<s@example.org>", b"RCPT TO:<alice\x00X-Injected@example.com>"]),
    ("rcpt-bare-cr", [b"MAIL FROM:<s@example.org>", b"RCPT TO:<alice@example.com>\rX-Injected: yes"]),
    ("mail-bare-lf", [b"MAIL FROM:<s@example.org>\nX-Injected: yes"]),
]


@pytest.mark.parametrize("name, lines", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_control_bytes_in_envelope_values_are_refused(server, name, lines):
    replies = transaction(server.ports["smtp"], lines)
    last = replies[-1]
    assert last[:1] == b"5" and re.match(rb"^5\d\d 5\.\d\.\d+ ", last), f"{name}: {last!r}"
    assert INJECTED.encode() not in last


@pytest.mark.parametrize("helo", [b"evil\x1b[31m.example", b"evil\x00.example", b"evil\rX-Injected: 1",
                                  b"evil\nX-Injected: 1", b"evil\x7f.example", b"evil\t.example"])
def test_control_bytes_in_helo_are_refused(server, helo):
    with Raw(server.ports["smtp"]) as raw:
        assert raw.reply().startswith(b"220 ")
        reply = raw.command(b"EHLO " + helo)
        assert re.match(rb"^50[01] 5\.5\.[24] ", reply), reply
        assert raw.command(b"NOOP").startswith(b"250")  # one refused line, still in sync


def test_crlf_inside_a_command_line_is_one_refused_command_not_two(server):
    # "RCPT TO:<a>\r\nX-Injected..." on the wire is two lines: the second is a header-looking
    # command, never a header: it ends the session, and nothing after it is taken as content.
    replies = transaction(server.ports["smtp"], [b"MAIL FROM:<s@example.org>",
                                                  b"RCPT TO:<alice@example.com>\r\nX-Injected: yes"])
    assert replies[-1].startswith(b"250 ")
    with Raw(server.ports["smtp"]) as raw:
        raw.hello()
        raw.send(b"MAIL FROM:<s@example.org>\r\nX-Injected: yes\r\n")
        assert raw.reply().startswith(b"250 ")
        assert raw.reply().startswith(b"521 5.7.0")
        assert raw.closed_by_server()


def test_auth_identity_with_control_bytes_cannot_forge_log_lines(server):
    evil = "alice@example.com\r\nNov 24 01:17:00 mx mailboat/smtpd[1]: X-Injected forged line"
    plain = base64.b64encode(f"\0{evil}\0password123".encode()).decode()
    login_user = base64.b64encode(evil.encode()).decode()
    nul_user = base64.b64encode(b"alice@example.com\0X-Injected").decode()
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=10) as client:
        client.starttls(context=insecure())
        client.ehlo()
        assert client.docmd("AUTH", f"PLAIN {plain}")[0] == 535
        assert client.docmd("AUTH", f"LOGIN {login_user}")[0] == 334
        code, _ = client.docmd(base64.b64encode(b"password123").decode())
        assert code == 535
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=10) as client:
        client.starttls(context=insecure())
        client.ehlo()
        assert client.docmd("AUTH", f"LOGIN {nul_user}")[0] == 334
        assert client.docmd(base64.b64encode(b"password123").decode())[0] in (501, 535)
    server.wait_log("SASL PLAIN authentication failed")


# -- accepted odd values: neutralised in what we write -------------------------------------------

def test_odd_but_legal_values_reach_headers_logs_and_queue_clean(server):
    sender = '"we ird\\"(quoted)<x>;y"@example.org'
    replies = transaction(server.ports["smtp"], [
        f"MAIL FROM:<{sender}> ENVID=abc+2Bdef+3Dg RET=HDRS".encode(),
        b"RCPT TO:<alice@example.com> ORCPT=rfc822;alice+2Btag@example.com NOTIFY=SUCCESS,FAILURE",
        b"DATA",
    ], helo=b'evil.example"(forged)by[10.0.0.1];with')
    assert replies[-1].startswith(b"250 2.0.0 Ok: queued as "), replies
    queue_id = replies[-1].rsplit(b" ", 1)[1]
    [delivered] = server.wait_messages("alice@example.com", 1)
    prefix = delivered[: delivered.index(MESSAGE)]
    check_written_headers(prefix)
    assert f"Return-Path: <{sender}>".encode() in prefix
    assert b"Delivered-To: alice@example.com\r\n" in prefix
    received = prefix[prefix.index(b"Received: "):]
    assert b'"' not in received and b"(forged)" not in received and b";with" not in received.split(b"\r\n")[0]
    assert queue_id in received


def check_written_headers(prefix: bytes) -> None:
    """The header lines we wrote: CRLF-terminated, only tab as a control byte, and each line a
    header we write or a folded continuation of one."""
    assert prefix.endswith(b"\r\n")
    for line in prefix[:-2].split(b"\r\n"):
        assert b"\r" not in line and b"\n" not in line, line
        assert not any(b < 0x20 and b != 0x09 or b == 0x7F for b in line), line
        assert re.match(rb"^(?:Return-Path|Delivered-To|Received|Authentication-Results|X-Original-To): |^\t",
                        line), line


def test_everything_written_stays_clean(server):
    """Runs last in this module: after every probe above, plus a bystander message."""
    bystander(server, rcpt="bob@example.com", tag="after-injection")
    for address in ("alice@example.com", "bob@example.com"):
        for message in server.messages(address):
            start = message.find(b"From: Sender") if b"From: Sender" in message else message.find(b"From:")
            check_written_headers(message[:start])
            assert INJECTED.encode() not in message
    # Log: every line is one well-formed line (a forged line would not start with our prefix,
    # or would start mid-line), and no injected header text ever starts a line.
    for line in server.log.splitlines():
        assert LOG_LINE.match(line), f"malformed log line: {line!r}"
        assert not line.startswith(INJECTED)
    # Queue: message rows and journey events hold no control character in any envelope value.
    for row in queue_rows(server.data_dir):
        assert_clean_json(json.loads(row["envelope"]), "envelope")
    details = queued_events(server.data_dir)
    assert details
    for detail in details:
        doc = json.loads(detail)
        headers = doc.pop("headers", "")
        assert_clean_json(doc, "queued event")
        assert INJECTED not in headers
    assert INJECTED not in "".join(r["envelope"] for r in queue_rows(server.data_dir))


def assert_clean_json(value: object, where: str) -> None:
    if isinstance(value, str):
        assert not (set(value) & CONTROL), f"{where}: control character in {value!r}"
        assert not re.search("[\u0080-\u009f\u2028\u2029]", value), f"{where}: {value!r}"
    elif isinstance(value, dict):
        for v in value.values():
            assert_clean_json(v, where)
    elif isinstance(value, list):
        for v in value:
            assert_clean_json(v, where)
