"""Debian's swaks against a real `mailboat serve`: plain, STARTTLS, implicit TLS, several
recipients, pipelining and LMTP. Every accepted message is read back from the Maildir and its
Received header checked strictly against SPEC (tests/integration/ourheaders.py)."""

from __future__ import annotations

import re
import time

import pytest

from interop_support import need_tool, our_received, received_headers, run_peer

pytestmark = pytest.mark.interop

SENDER = "sender@example.org"
HELO = "client.example.org"
QUEUED = re.compile(r"<[-~]\s+250 2\.0\.0 Ok: queued as ([0-9A-Za-z]+)")


def swaks(server, *args: str, kind: str = "smtp") -> tuple[int, str]:
    command = [need_tool("swaks"), "--server", f"127.0.0.1:{server.ports[kind]}", "--from", SENDER,
               "--helo", HELO, "--timeout", "10", *args]
    done = run_peer(command, timeout=30)
    return done.returncode, done.stdout


def queued_ids(transcript: str) -> list[str]:
    return QUEUED.findall(transcript)


def test_swaks_plain_message_arrives_with_our_received(server):
    code, out = swaks(server, "--to", "alice@example.com", "--header", "Subject: interop plain")
    assert code == 0, out
    [queue_id] = queued_ids(out)
    [message] = server.wait_messages("alice@example.com", 1)
    assert message.startswith(b"Return-Path: <sender@example.org>\r\nDelivered-To: alice@example.com\r\n")
    assert len(received_headers(message)) == 1
    hop = our_received(message)
    assert hop == {**hop, "helo": HELO, "ip": "127.0.0.1", "by": "mx.test.example", "proto": "ESMTP",
                   "id": queue_id, "tlsver": None, "cipher": None, "for": "alice@example.com"}
    assert b"\r\nSubject: interop plain\r\n" in message
    assert server.messages("bob@example.com") == []


def test_swaks_starttls_gives_esmtps_with_the_negotiated_version_and_cipher(server):
    code, out = swaks(server, "--to", "alice@example.com", "--tls")
    assert code == 0, out
    assert re.search(r"(?m)^ -> STARTTLS$", out) and re.search(r"(?m)^<-  220 2\.0\.0 ", out), out
    negotiated = re.search(r"=== TLS started with cipher (TLSv[0-9.]+):([A-Za-z0-9_-]+):\d+", out)
    assert negotiated, out
    [queue_id] = queued_ids(out)
    [message] = server.wait_messages("alice@example.com", 1)
    assert len(received_headers(message)) == 1
    hop = our_received(message)
    assert hop == {**hop, "helo": HELO, "proto": "ESMTPS", "id": queue_id, "for": "alice@example.com",
                   "tlsver": negotiated.group(1), "cipher": negotiated.group(2)}


def test_swaks_implicit_tls_on_submissions_is_refused_at_mail_without_auth(server):
    code, out = swaks(server, "--to", "alice@example.com", "--protocol", "SSMTP", kind="submissions")
    assert "=== TLS started with cipher" in out, out
    # swaks marks the transcript inside TLS with "~>" / "<~"; the refusal comes right after MAIL.
    assert re.search(r"(?m)^ ~> MAIL FROM:<sender@example\.org>\n<~\*\s+530 5\.7\.0 ", out), out
    assert code != 0, out
    assert queued_ids(out) == []
    time.sleep(0.3)
    assert server.messages("alice@example.com") == []


def test_swaks_several_recipients_one_queue_id_no_for_clause(server):
    code, out = swaks(server, "--to", "alice@example.com,bob@example.com")
    assert code == 0, out
    assert len(re.findall(r"(?m)^<-\s+250 2\.1\.5 ", out)) == 2, out
    [queue_id] = queued_ids(out)
    for address in ("alice@example.com", "bob@example.com"):
        [message] = server.wait_messages(address, 1)
        assert message.startswith(f"Return-Path: <{SENDER}>\r\nDelivered-To: {address}\r\n".encode())
        assert len(received_headers(message)) == 1
        hop = our_received(message)
        assert hop == {**hop, "proto": "ESMTP", "id": queue_id, "for": None}


def test_swaks_pipelined_transaction_with_one_unknown_recipient(server):
    code, out = swaks(server, "--to", "alice@example.com,nobody@example.com", "--pipeline")
    assert code == 0, out
    assert re.search(r"(?m)^<-  250-PIPELINING$", out), out
    # MAIL, both RCPTs and DATA go out in one write before any reply is read.
    assert re.search(r"(?m)^ -> MAIL FROM:<[^>]+>\n -> RCPT TO:<alice@example\.com>\n"
                     r" -> RCPT TO:<nobody@example\.com>\n -> DATA\n<-  250 2\.1\.0 ", out), out
    assert re.search(r"(?m)^<\*\*\s+550 5\.1\.1 .*nobody@example\.com", out), out
    [queue_id] = queued_ids(out)
    [message] = server.wait_messages("alice@example.com", 1)
    hop = our_received(message)
    # One recipient was accepted, so `for` names it (SPEC: `for` only with a single recipient).
    assert hop == {**hop, "proto": "ESMTP", "id": queue_id, "for": "alice@example.com"}
    assert not server.maildir("nobody@example.com").exists()


def test_swaks_lmtp_one_reply_per_recipient(server):
    code, out = swaks(server, "--to", "alice@example.com,bob@example.com", "--protocol", "LMTP", kind="lmtp")
    assert code == 0, out
    assert re.search(r"(?m)^ -> LHLO ", out), out
    after_dot = out[out.index("\n -> .\n"):]
    assert len(re.findall(r"(?m)^<-\s+250 ", after_dot)) == 2, out
    for address in ("alice@example.com", "bob@example.com"):
        [message] = server.wait_messages(address, 1)
        assert len(received_headers(message)) == 1
        assert our_received(message)["proto"] == "LMTP"
