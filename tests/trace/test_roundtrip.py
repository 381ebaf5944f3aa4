"""Every Received header mailboat writes (mail.received.format_received) parses back to what was written."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from mailboat.mail import received
from mailboat.trace.parse import parse_received

HOSTS = st.from_regex(r"[a-z][a-z0-9-]{0,12}(\.[a-z][a-z0-9-]{0,12}){0,3}\.example\.(com|net|org)", fullmatch=True)
IPS = st.one_of(
    st.integers(0, 255).map(lambda n: f"192.0.2.{n}"),
    st.integers(0, 2**64 - 1).map(lambda n: str(ipaddress.IPv6Address((0x20010DB8 << 96) | n))),
)
PROTOCOLS = st.sampled_from(["SMTP", "ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA", "LMTP", "LMTPS", "UTF8SMTPS",
                             "UTF8SMTPSA", "UTF8LMTPA"])
WHEN = st.datetimes(datetime(1990, 1, 1), datetime(2090, 1, 1)).map(lambda d: d.replace(microsecond=0))
ZONES = st.integers(-12 * 4, 14 * 4).map(lambda q: timezone(timedelta(minutes=15 * q)))


@settings(max_examples=300, deadline=None)
@given(helo=st.one_of(HOSTS, IPS.map(lambda ip: f"[{ip}]")), ip=IPS, rdns=st.one_of(st.none(), HOSTS), host=HOSTS,
       protocol=PROTOCOLS, queue_id=st.from_regex(r"[0-9A-F]{8,16}", fullmatch=True),
       tls=st.booleans(), recipient=st.one_of(st.none(), HOSTS.map(lambda h: "user@" + h)), when=WHEN, zone=ZONES)
def test_what_we_write_reads_back(helo, ip, rdns, host, protocol, queue_id, tls, recipient, when, zone) -> None:
    at = when.replace(tzinfo=zone)
    info = received.ReceivedInfo(
        helo=helo, ip=ip, rdns=rdns, hostname=host, protocol=protocol, queue_id=queue_id,
        tls_version="TLSv1.3" if tls else None, tls_cipher="TLS_AES_256_GCM_SHA384" if tls else None,
        recipient=recipient, at=at,
    )
    raw = received.format_received(info)
    hop = parse_received(raw)
    expected_tls = True if tls else protocol.endswith(("S", "SA"))
    assert hop.warnings == ()
    assert (hop.from_helo, hop.from_rdns, hop.from_ip) == (helo, rdns, ip)
    assert (hop.by_host, hop.with_protocol, hop.id, hop.for_) == (host, protocol, queue_id, recipient)
    assert hop.tls is expected_tls
    assert hop.timestamp == at.astimezone(UTC)
