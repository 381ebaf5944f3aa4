"""Hypothesis: any input, however broken, parses without raising and explains itself in warnings."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailboat.trace.dates import parse_date
from mailboat.trace.parse import Hop, parse_received
from mailboat.trace.render import hop_fields, render_html, to_json
from mailboat.trace.timeline import analyse_message

FRAGMENTS = st.sampled_from([
    "from", "by", "with", "id", "for", "via", "tls", "(", ")", "((", "))", "\\", "\"", ";", "[", "]", "<", ">",
    "[IPv6:2001:db8::1]", "[192.0.2.1]", "unknown", "helo=", "(HELO x)", " ", "\t", "\r\n", "\r\n\t", "ESMTPS",
    "Wed, 27 Mar 2024 15:02:58 +0000", "27 Mar 99 25:61:61 ZZZ", "2024-03-27 15:02:58 +0000", "mail.example.org",
    "é", "\x00", "\udcff", "(using TLSv1.3 with cipher X)", "Microsoft SMTP Server", ",",
    "-", "192.0.2.1", "user@host.example", "(user@192.0.2.1 with login)", "(qmail 1 invoked from network[192.0.2.1/x])",
    "network[", "Aug, 25 2002 11:17:27 PM +1100", "22/08/2002 10:25:57", "Wed Aug 21 11:17:27 2002", "0102", "PM",
    "IST", "CEST", "()", "(Postfix)",
])
STRUCTURED = st.lists(FRAGMENTS, max_size=40).map(" ".join)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=300), STRUCTURED))
def test_any_text_gives_a_hop(value: str) -> None:
    hop = parse_received(value)
    assert isinstance(hop, Hop)
    hop_fields(hop)  # every field renders
    if hop.timestamp is None or not (hop.by_host or hop.from_helo or hop.from_ip or hop.from_rdns):
        assert hop.warnings, "an incomplete hop must say why"


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=300), STRUCTURED))
def test_no_text_reaches_the_internal_error_guard(value: str) -> None:
    # parse_received turns an exception into an "internal parser error" warning so no hop is lost;
    # the readers themselves must never need that guard
    assert not any(w.startswith("internal parser error") for w in parse_received(value).warnings)


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_any_bytes_give_a_hop(value: bytes) -> None:
    assert isinstance(parse_received(value), Hop)


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=80), STRUCTURED))
def test_any_date_text_is_safe(value: str) -> None:
    result = parse_date(value)
    assert result.value is not None or result.warnings


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(STRUCTURED, st.text(max_size=60)), max_size=6), st.binary(max_size=100))
def test_any_message_analyses(received: list[str], body: bytes) -> None:
    head = "".join(f"Received: {r.replace(chr(13), ' ').replace(chr(10), ' ')}\r\n" for r in received)
    dkim = "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/simple; d=example.org; s=s; l=5; bh=AAAA; b=x\r\n"
    data = (head + dkim + "Authentication-Results: x; spf=fail; dkim=fail\r\n\r\n").encode("utf-8", "surrogatepass")
    trace = analyse_message(data + body)
    assert len(trace.hops) == len(received)
    to_json(trace)
    render_html(trace)
