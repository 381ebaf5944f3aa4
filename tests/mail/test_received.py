"""Our Received header: SPEC layout, with-types, sanitising, folding."""

import re
from datetime import UTC, datetime

import pytest

from mailboat.mail.received import ReceivedInfo, format_received, sanitize_helo, with_protocol

AT = datetime(2026, 11, 23, 22, 40, 22, tzinfo=UTC)


def info(**kw):
    base = dict(helo="client.example", ip="192.0.2.1", rdns="mail.example.net", hostname="mx.example.com",
                protocol="ESMTPSA", queue_id="4Pq2Xk1ZGzz9rxL", tls_version="TLSv1.3",
                tls_cipher="TLS_AES_256_GCM_SHA384", recipient="rcpt@example.com", at=AT)
    base.update(kw)
    return ReceivedInfo(**base)


def test_spec_example_exactly():
    assert format_received(info()) == (
        b"Received: from client.example (mail.example.net [192.0.2.1])\r\n"
        b"\tby mx.example.com (mailboat) with ESMTPSA id 4Pq2Xk1ZGzz9rxL\r\n"
        b"\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\r\n"
        b"\tfor <rcpt@example.com>; Mon, 23 Nov 2026 22:40:22 +0000\r\n"
    )


def test_no_tls_no_for_unknown_rdns_ipv6():
    text = format_received(info(tls_version=None, recipient=None, rdns=None, ip="2001:db8::1", protocol="ESMTP"))
    assert text == (
        b"Received: from client.example (unknown [IPv6:2001:db8::1])\r\n"
        b"\tby mx.example.com (mailboat) with ESMTP id 4Pq2Xk1ZGzz9rxL;\r\n"
        b"\tMon, 23 Nov 2026 22:40:22 +0000\r\n"
    )


@pytest.mark.parametrize("flags, expected", [
    (dict(esmtp=False, tls=False, auth=False), "SMTP"),
    (dict(esmtp=True, tls=False, auth=False), "ESMTP"),
    (dict(esmtp=True, tls=True, auth=False), "ESMTPS"),
    (dict(esmtp=True, tls=False, auth=True), "ESMTPA"),
    (dict(esmtp=True, tls=True, auth=True), "ESMTPSA"),
    (dict(esmtp=True, tls=True, auth=False, smtputf8=True), "UTF8SMTPS"),
    (dict(esmtp=True, tls=True, auth=True, smtputf8=True), "UTF8SMTPSA"),
    (dict(esmtp=True, tls=False, auth=False, lmtp=True), "LMTP"),
    (dict(esmtp=True, tls=True, auth=True, lmtp=True), "LMTPSA"),
    (dict(esmtp=True, tls=False, auth=False, lmtp=True, smtputf8=True), "UTF8LMTP"),
])
def test_with_types(flags, expected):
    assert with_protocol(**flags) == expected


@pytest.mark.parametrize("helo", ["evil\r\nX-Injected: yes", "a (fake [1.2.3.4])", "x\x00y", "ünïcode", ""])
def test_helo_cannot_forge_structure(helo):
    header = format_received(info(helo=helo))
    first = header.split(b"\r\n")[0].decode()
    assert re.fullmatch(r"Received: from [A-Za-z0-9.\-_:\[\]]+ \(mail\.example\.net \[192\.0\.2\.1\]\)", first)
    assert header.count(b"\r\n") == 4 and b"\n\r" not in header and b"\x00" not in header
    assert sanitize_helo(helo)


def test_long_helo_is_folded_at_78():
    header = format_received(info(helo="h" * 60 + ".example.com", rdns="r" * 40 + ".example.net"))
    lines = header.decode().split("\r\n")[:-1]
    assert all(len(line) <= 78 or " " not in line.strip() for line in lines)
    assert all(line.startswith("\t") for line in lines[1:])


def test_ipv4_mapped_address_is_written_as_ipv4():
    assert b"[192.0.2.7]" in format_received(info(ip="::ffff:192.0.2.7"))
