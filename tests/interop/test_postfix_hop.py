"""Three real hops: mailboat → Postfix → mailboat, found by MX through a real DNS server (nsd).

smtplib → mailboat A (127.0.0.1, relays for its trusted network; example.org's MX in nsd is
pf.example.org = 127.0.0.3, A's mx_port = Postfix's port) → a private Postfix instance on
127.0.0.3:PORT (relays everything from 127.0.0.0/8 to `relayhost = [127.0.0.4]:PORT_B`) →
mailboat B on 127.0.0.4:PORT_B (example.org local) → Maildir.

So it covers mailboat relaying to a real Postfix, and Postfix relaying into mailboat. Every
message arrives exactly once, byte-exact in its body, with three Received headers, newest first:
B's (strict SPEC layout, from Postfix at 127.0.0.3), Postfix's (from A, by regex), A's (strict,
from smtplib); and the queue ids chain up through the logs (A's "queued as" is Postfix's id,
Postfix's "queued as" is B's id).
"""

from __future__ import annotations

import re
import smtplib
from email import message_from_bytes
from email.utils import parsedate_to_datetime

import pytest

from ourheaders import RECEIVED, header_block
from relay_support import PostfixInstance, free_port, serve, wait_for

pytestmark = pytest.mark.interop

COUNT = 5
BODY = (b"line one\r\n.a line that starts with a dot\r\n..two dots\r\n" + b"x" * 998 + b"\r\n"
        + b"the end\r\n")
POSTFIX_RECEIVED = re.compile(  # "for <...>" only with a single recipient
    rb"Received: from (?P<helo>\S+) \((?P<rdns>\S+) \[(?P<ip>[0-9.]+)\]\)\r\n"
    rb"\tby (?P<by>\S+) \(Postfix\) with (?P<proto>E?SMTP) id (?P<id>[0-9A-F]+)"
    rb"(?:;\r\n\t|\r\n\tfor <(?P<for>[^>]+)>; )"
    rb"(?P<date>(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), {1,2}\d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4} \(\w+\))")


@pytest.fixture
def three_hops(tmp_path, nsd):
    pf_port, b_port = free_port("127.0.0.3"), free_port("127.0.0.4")
    dns = nsd({"example.org": "@ MX 10 pf\npf A 127.0.0.3\n"})
    hop_b = serve(tmp_path / "b", hostname="mx-b.example.org", address=f"127.0.0.4:{b_port}",
                  local=("example.org",), nameserver=dns.nameserver, users=("bob@example.org", "carol@example.org"))
    postfix = PostfixInstance("127.0.0.3", pf_port, f"[127.0.0.4]:{b_port}")
    try:
        postfix.start()
        hop_a = serve(tmp_path / "a", hostname="relay-a.example.com", address="127.0.0.1:0",
                      local=("example.com",), mx_port=pf_port, nameserver=dns.nameserver)
    except BaseException:
        hop_b.stop()
        postfix.stop()
        raise
    yield hop_a, postfix, hop_b
    logs = hop_a.stop() + hop_b.stop()
    postfix.stop()
    assert "Traceback" not in logs, logs[-5000:]


def received_fields(message: bytes) -> list[bytes]:
    """Every Received field whole (folded lines included, CRLF between them), top first.
    (ourheaders.received_headers keeps only each field's first line.)"""
    fields = re.split(rb"\r\n(?![ \t])", header_block(message))
    return [f for f in fields if f[:9].lower() == b"received:"]


def _strict(header: bytes) -> dict[str, str | None]:
    match = RECEIVED.fullmatch(header + b"\r\n")
    assert match, header
    return {k: (v.decode() if v is not None else None) for k, v in match.groupdict().items()}


def test_smtplib_mailboat_postfix_mailboat(three_hops) -> None:
    hop_a, postfix, hop_b = three_hops
    sent_ids = []
    with smtplib.SMTP("127.0.0.1", hop_a.ports["smtp"], timeout=30) as client:
        client.ehlo("client.example.com")
        for n in range(COUNT):
            message_id = f"<hop-{n}@client.example.com>"
            sent_ids.append(message_id)
            message = (f"From: alice@example.com\r\nTo: bob@example.org, carol@example.org\r\n"
                       f"Subject: three hops {n}\r\nMessage-ID: {message_id}\r\n\r\n").encode() + BODY
            refused = client.sendmail("alice@example.com", ["bob@example.org", "carol@example.org"], message)
            assert refused == {}

    def arrived() -> bool:
        return len(hop_b.messages("bob@example.org")) >= COUNT and len(hop_b.messages("carol@example.org")) >= COUNT
    try:
        wait_for(arrived, 60, "5 messages for each of bob and carol at hop B")
    except AssertionError:
        raise AssertionError("A:\n" + hop_a.stop()[-3000:] + "\nPostfix:\n" + postfix.log()[-3000:]
                             + "\nB:\n" + hop_b.stop()[-3000:]) from None
    wait_for(lambda: postfix.queue_files() == 0, 30, "Postfix's queue to empty")
    log_a, log_b, log_pf = hop_a.stop(), hop_b.stop(), postfix.log()

    # Nothing lost, nothing duplicated: each Message-ID once per recipient, bodies byte-exact.
    for rcpt in ("bob@example.org", "carol@example.org"):
        messages = hop_b.messages(rcpt)
        assert sorted(str(message_from_bytes(m)["Message-ID"]) for m in messages) == sorted(sent_ids)
        assert all(m.endswith(b"\r\n\r\n" + BODY) for m in messages), messages[0][-300:]

    for message in hop_b.messages("bob@example.org"):
        headers = received_fields(message)
        assert len(headers) == 3, headers
        newest, middle, oldest = headers
        # Hop B (newest, our strict layout): from Postfix, whose smtp client binds 127.0.0.3.
        b = _strict(newest)
        assert (b["helo"], b["ip"], b["by"], b["proto"]) == ("postfix.hop.test", "127.0.0.3", "mx-b.example.org",
                                                             "ESMTP")
        # Postfix (the middle one, by regex): from mailboat A's EHLO at 127.0.0.1.
        pf = POSTFIX_RECEIVED.fullmatch(middle)
        assert pf, middle
        assert (pf["helo"], pf["ip"], pf["by"], pf["proto"]) == (b"relay-a.example.com", b"127.0.0.1",
                                                                 b"postfix.hop.test", b"ESMTP")
        assert pf["for"] is None  # two recipients in one transaction: A sent them together
        # Hop A (oldest, strict): from smtplib.
        a = _strict(oldest)
        assert (a["helo"], a["ip"], a["by"], a["proto"]) == ("client.example.com", "127.0.0.1",
                                                             "relay-a.example.com", "ESMTP")
        # In time order too (one-second resolution).
        times = [parsedate_to_datetime(d) for d in (a["date"], pf["date"].decode(), b["date"])]
        assert times == sorted(times), times
        assert message.startswith(b"Return-Path: <alice@example.com>\r\n"), message[:200]

        # The ids chain through the logs: A handed its id to Postfix, Postfix its id to B.
        assert re.search(rf"{a['id']}: to=<bob@example\.org>, relay=pf\.example\.org\[127\.0\.0\.3\]:\d+, .*"
                         rf"status=sent \(250 2\.0\.0 Ok: queued as {pf['id'].decode()}\)", log_a), log_a[-3000:]
        assert re.search(rf"{pf['id'].decode()}: to=<bob@example\.org>, relay=127\.0\.0\.4\[127\.0\.0\.4\]:\d+, .*"
                         rf"status=sent \(250 2\.0\.0 Ok: queued as {b['id']}\)", log_pf), log_pf[-3000:]
        assert re.search(rf"{b['id']}: to=<bob@example\.org>, relay=local, .*status=sent", log_b), log_b[-3000:]
