"""Two real `mailboat serve` processes in a chain, found through a real DNS server (nsd).

smtplib → hop 1 (127.0.0.1, relays for its trusted network) → MX lookup of example.org in nsd →
hop 2 (listening on 127.0.0.2:MX_PORT, example.org local) → Maildir. The message arrives with
both Received headers, newest first, and hop 1's log has Postfix-style `relay=` and `status=sent`.
"""

from __future__ import annotations

import re
import smtplib

import pytest

from interop_support import received_headers
from relay_support import free_port, serve

pytestmark = pytest.mark.interop

@pytest.fixture
def chain(tmp_path, nsd):
    mx_port = free_port("127.0.0.2")
    dns = nsd({"example.org": "@ MX 10 mx2\nmx2 A 127.0.0.2\n"})
    hop2 = serve(tmp_path / "hop2", hostname="mx2.example.org", address=f"127.0.0.2:{mx_port}",
                 local=("example.org",), nameserver=dns.nameserver, users=("bob@example.org",))
    hop1 = serve(tmp_path / "hop1", hostname="relay.example.com", address="127.0.0.1:0", local=("example.com",),
                 mx_port=mx_port, nameserver=dns.nameserver)
    yield hop1, hop2
    logs = hop1.stop() + hop2.stop()
    assert "Traceback" not in logs, logs


def test_two_hops_by_mx(chain) -> None:
    hop1, hop2 = chain
    with smtplib.SMTP("127.0.0.1", hop1.ports["smtp"]) as client:
        client.sendmail("alice@example.com", ["bob@example.org"],
                        b"From: alice@example.com\r\nTo: bob@example.org\r\nSubject: chain\r\n\r\n.two hops\r\n")
    try:
        (message,) = hop2.wait_messages("bob@example.org", 1)
    except AssertionError:
        raise AssertionError("hop1:\n" + hop1.stop()[-3000:] + "\nhop2:\n" + hop2.stop()[-3000:]) from None
    assert len(received_headers(message)) == 2
    # Newest first: hop 2 received it from hop 1 (EHLO relay.example.com), hop 1 from smtplib.
    by = re.findall(rb"\tby (\S+) \(mailboat\)", message)
    assert by == [b"mx2.example.org", b"relay.example.com"]
    assert message.startswith(b"Return-Path: <alice@example.com>")
    assert b"Received: from relay.example.com " in message
    assert message.endswith(b"\r\n.two hops\r\n")
    log = hop1.stop()
    assert re.search(r"to=<bob@example\.org>, relay=mx2\.example\.org\[127\.0\.0\.2\]:\d+, .*status=sent", log), log
