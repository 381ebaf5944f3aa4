"""Postfix's smtp-source against a real `mailboat serve`: thousands of messages over parallel
sessions, each of which must reach the Maildir exactly once with exactly one Received header of
ours (SPEC layout, a distinct queue id), and the queue ids in the Maildir must be exactly the ids
smtpd logged as accepted (`QUEUEID: from=<...>`). Bounded: every run fails after BUDGET seconds.

smtp-source speaks HELO (no ESMTP, no pipelining) and opens a new connection per message unless
given -d ("don't disconnect": every message over the same connection)."""

from __future__ import annotations

import time

import pytest

from interop_support import logged_server, need_tool, our_received, received_headers, run_peer, smtpd_queue_ids

pytestmark = pytest.mark.interop

BUDGET = 120.0  # seconds, from the first connection to the last file in new/
SENDER = "sender@example.org"
RCPT = "alice@example.com"

__all__ = ["logged_server"]  # the fixture, imported so pytest finds it in this module


def send_and_check(server, count: int, *options: str, length: int | None = None, kind: str = "smtp",
                   proto: str = "SMTP") -> None:
    start = time.monotonic()
    command = [need_tool("smtp-source"), *options, "-m", str(count), "-f", SENDER, "-t", RCPT]
    if length is not None:
        command += ["-l", str(length)]
    done = run_peer([*command, f"127.0.0.1:{server.ports[kind]}"], timeout=BUDGET)
    assert done.returncode == 0, done.stdout
    assert "fatal" not in done.stdout and "warning" not in done.stdout, done.stdout

    remaining = max(1.0, BUDGET - (time.monotonic() - start))
    messages = server.wait_messages(RCPT, count, timeout=remaining)
    time.sleep(0.5)  # anything delivered twice would show up now
    messages = server.messages(RCPT)
    assert len(messages) == count, f"{len(messages)} files in new/ for {count} messages sent"

    ids = []
    for message in messages:
        assert message.startswith(f"Return-Path: <{SENDER}>\r\nDelivered-To: {RCPT}\r\n".encode())
        assert len(received_headers(message)) == 1, message[:600]
        hop = our_received(message)
        # smtp-source greets with HELO (LHLO with -L): no TLS, one recipient so `for` is present.
        assert hop == {**hop, "ip": "127.0.0.1", "by": "mx.test.example", "proto": proto,
                       "tlsver": None, "for": RCPT}, hop
        if length is not None:
            body = message[message.index(b"\r\n\r\n") + 4:]
            assert len(body) >= length, (len(body), length)
        ids.append(hop["id"])
    assert len(set(ids)) == count, "a queue id appears in more than one delivered message"
    assert list((server.maildir(RCPT) / "tmp").iterdir()) == [], "files left in Maildir tmp/"

    log = server.stop()
    logged = smtpd_queue_ids(log)
    assert len(logged) == len(set(logged)) == count, f"{len(logged)} `from=<...>` lines for {count} messages"
    assert set(logged) == set(ids)


def test_smtp_source_2000_messages_over_20_sessions(logged_server):
    send_and_check(logged_server, 2000, "-s", "20")


def test_smtp_source_2000_1k_messages_over_20_sessions(logged_server):
    send_and_check(logged_server, 2000, "-s", "20", length=1024)


def test_smtp_source_200_messages_over_one_reused_connection(logged_server):
    # -d: the 200 transactions share one session (MAIL after the previous 250, no reconnect).
    send_and_check(logged_server, 200, "-s", "1", "-d")


def test_smtp_source_100_messages_of_100k_over_10_sessions(logged_server):
    send_and_check(logged_server, 100, "-s", "10", length=100 * 1024)


def test_smtp_source_lmtp_300_messages_over_5_sessions(logged_server):
    send_and_check(logged_server, 300, "-s", "5", "-L", kind="lmtp", proto="LMTP")
