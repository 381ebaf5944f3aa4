"""Password guessing over real sockets to `mailboat serve` (implicit TLS, submissions): the
failure limits count per client address and per (address, account), so a stranger guessing
alice's password is throttled while alice, from another address, still logs in.

127.0.0.2 is a second client address: the client socket binds to it (all of 127/8 is loopback
on Linux). Each wrong password costs a real scrypt check (about 0.1 s).
"""

from __future__ import annotations

import base64
import smtplib

import pytest

from mailboat.server.auth import IP_FAILURES, PAIR_FAILURES, PER_SESSION

from security_support import insecure_context as insecure
from security_support import serving

PASSWORD = "password123"


@pytest.fixture
def server(tmp_path):
    with serving(tmp_path) as running:
        yield running


def plain(account: str, password: str) -> str:
    return base64.b64encode(f"\0{account}\0{password}".encode()).decode()


def attempts(server, source: str, logins: list[tuple[str, str]]) -> list[bytes]:
    """AUTH PLAIN for each (account, password) from `source`, PER_SESSION per connection (the
    session closes after that many failures); the replies' first line ('454 4.7.0 ...')."""
    replies = []
    for start in range(0, len(logins), PER_SESSION):
        with smtplib.SMTP_SSL("127.0.0.1", server.ports["submissions"], context=insecure(), timeout=20,
                              source_address=(source, 0)) as client:
            client.ehlo("client.example.org")
            for account, password in logins[start:start + PER_SESSION]:
                code, text = client.docmd("AUTH", f"PLAIN {plain(account, password)}")
                replies.append(b"%d %s" % (code, text.split(b"\n")[0]))
                if code == 235:
                    return replies
            try:
                client.quit()
            except smtplib.SMTPServerDisconnected:
                pass  # closed after PER_SESSION failures
    return replies


def test_a_stranger_guessing_cannot_lock_the_user_out(server):
    wrong = [("alice@example.com", f"guess-{n}") for n in range(2 * PAIR_FAILURES)]
    replies = attempts(server, "127.0.0.1", wrong)
    # Alice, from her own address, logs in...
    assert attempts(server, "127.0.0.2", [("alice@example.com", PASSWORD)]) == [b"235 2.7.0 Authentication successful"]
    # ...while the stranger's address was refused alice after PAIR_FAILURES, her password too...
    assert [r[:3] for r in replies] == [b"535"] * PAIR_FAILURES + [b"454"] * PAIR_FAILURES, replies
    assert replies[-1] == b"454 4.7.0 Too many failed authentications, try again later"
    assert attempts(server, "127.0.0.1", [("alice@example.com", PASSWORD)])[0][:3] == b"454"
    # ...but may still log in as someone else (below the address's own limit).
    assert attempts(server, "127.0.0.1", [("bob@example.com", PASSWORD)])[0][:3] == b"235"
    server.wait_log("SASL PLAIN authentication failed: user=alice@example.com")


def test_one_address_guessing_many_accounts_is_throttled_alone(server):
    wrong = [(f"user{n}@example.com", "guess") for n in range(IP_FAILURES)]
    replies = attempts(server, "127.0.0.1", wrong)
    assert [r[:3] for r in replies] == [b"535"] * IP_FAILURES, replies
    # From now on every AUTH from that address gets 454, the right password too...
    assert attempts(server, "127.0.0.1", [("bob@example.com", PASSWORD)]) == [
        b"454 4.7.0 Too many failed authentications, try again later"]
    # ...while another address is not affected.
    assert attempts(server, "127.0.0.2", [("bob@example.com", PASSWORD)])[0][:3] == b"235"
