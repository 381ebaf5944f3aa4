"""One message, many addresses of one mailbox (alice+1@ ... alice+100@): one copy in alice's
Maildir, over a real socket to `mailboat serve`, and every recipient still logged as sent."""

from __future__ import annotations

import smtplib

import pytest

from security_support import MESSAGE, serving, wait_until


@pytest.fixture
def server(tmp_path):
    with serving(tmp_path) as running:
        yield running


def test_one_copy_per_mailbox_for_a_hundred_plus_addresses(server):
    rcpts = [f"alice+{n}@example.com" for n in range(1, 101)]
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], local_hostname="client.example.org", timeout=30) as client:
        refused = client.sendmail("sender@example.org", rcpts + ["bob@example.com"], MESSAGE)
    assert refused == {}
    assert wait_until(lambda: all(f"to=<{r}>" in server.log for r in rcpts), timeout=30), server.log[-3000:]
    lines = [line for line in server.log.splitlines() if "to=<alice+" in line]
    assert len(lines) == 100 and all("status=sent" in line for line in lines), lines[:3]
    [copy] = server.messages("alice@example.com")
    assert copy.startswith(b"Return-Path: <sender@example.org>\r\nDelivered-To: alice+1@example.com\r\n")
    assert len(server.wait_messages("bob@example.com", 1)) == 1
