"""Relay control: the classic battery of relay tricks is refused; local users and AUTH are not."""

import asyncio

import pytest

from mailboat.policy import SessionInfo, TransactionInfo
from mailboat.policy.filters.relay import RelayFilter
from mailboat.policy.filters.submission import ListenerRequirementsFilter
from mailboat.routing.router import Router

ROUTER = Router(local_domains=["example.com"], account_exists=lambda a: a == "alice@example.com", aliases={},
                catch_all=False, maildir_template="{data_dir}/{local}", data_dir="/d", hostname="mx.example.com")


def rcpt(address, ip="127.0.0.1", auth=None, trusted=()):
    session = SessionInfo(listener="smtp", peer_ip=ip, peer_port=1, auth_user=auth)
    verdict = asyncio.run(RelayFilter(ROUTER, trusted).on_rcpt(session, TransactionInfo(sender="s@x.org"), address))
    return None if verdict.reply is None else (verdict.reply.code, verdict.reply.status)


@pytest.mark.parametrize("address", [
    "victim@example.net",
    "user%example.net@example.com",
    "example.net!user@example.com",
    '"user@example.net"@example.com',
    "user@example.net@example.com",
    "user@[192.0.2.1]",
    "user@example.com.example.net",
    "user@EXAMPLE.NET",
    "user@example.net.",
])
def test_relay_tricks_refused_from_loopback(address):
    assert rcpt(address) in {(554, (5, 7, 1)), (550, (5, 7, 1))}


def test_unknown_local_user():
    assert rcpt("nobody@example.com") == (550, (5, 1, 1))


@pytest.mark.parametrize("address", ["alice@example.com", "ALICE@Example.Com.", "postmaster@example.com"])
def test_local_recipients_accepted(address):
    assert rcpt(address) is None


def test_authenticated_and_trusted_may_relay():
    assert rcpt("victim@example.net", auth="alice@example.com") is None
    assert rcpt("victim@example.net", ip="192.0.2.9", trusted=["192.0.2.0/24"]) is None
    assert rcpt("victim@example.net", ip="198.51.100.9", trusted=["192.0.2.0/24"]) == (554, (5, 7, 1))
    # Routing syntax is refused even for trusted clients: we never route by it.
    assert rcpt("user%example.net@example.com", auth="alice@example.com") == (550, (5, 7, 1))


@pytest.mark.parametrize("tls_required, auth_required, tls, auth, expected", [
    (True, True, None, None, (530, (5, 7, 0), "Must issue a STARTTLS command first")),
    (True, True, "TLSv1.3", None, (530, (5, 7, 0), "Authentication required")),
    (True, True, "TLSv1.3", "alice@example.com", None),
    (False, False, None, None, None),
])
def test_listener_requirements(tls_required, auth_required, tls, auth, expected):
    session = SessionInfo(listener="submission", peer_ip="127.0.0.1", peer_port=1, tls_required=tls_required,
                          auth_required=auth_required, tls_version=tls, auth_user=auth)
    verdict = asyncio.run(ListenerRequirementsFilter().on_mail(session, TransactionInfo(sender="a@b.c")))
    got = None if verdict.reply is None else (verdict.reply.code, verdict.reply.status, verdict.reply.lines[0])
    assert got == expected
