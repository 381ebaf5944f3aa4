"""The fast paths (one regex for well-formed headers, the canonical date form) read exactly what the
general paths read: same Hop, field for field, including comments, warnings and the UTC tzinfo."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailboat.mail import received
from mailboat.mail.headers import unfold
from mailboat.trace import dates, fastpath, hop, parse
from mailboat.trace.parse import parse_received

DATA = Path(__file__).resolve().parent.parent / "data" / "received"
CASES = sorted(DATA.glob("*.json"))


def _fields(hop: parse.Hop) -> tuple:
    values = tuple(getattr(hop, f.name) for f in dataclasses.fields(hop))
    return values + (type(hop), hop.timestamp.tzinfo if hop.timestamp else None)


def _takes_fast_path(raw: str | bytes) -> bool:
    text = unfold(raw)
    if text[:9].lower() == "received:":
        text = text[9:].lstrip()
    return "\\" not in text and (fastpath.FAST_ASCII if text.isascii() else fastpath.FAST).match(text) is not None


def assert_same(value: str | bytes) -> None:
    assert _fields(parse_received(value)) == _fields(parse._general(value))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_case_fast_equals_general(path) -> None:
    assert_same(json.loads(path.read_text("utf-8"))["raw"])


@pytest.mark.parametrize("name", ["postfix_tls13", "postfix_no_tls", "exim_tls_clause", "exim_no_rdns",
                                  "gmail_mx_inbound_esmtps", "mailboat_tls", "sendmail_tls", "exchange_frontend",
                                  "qmail_rdns_helo", "utf8smtps", "vger_semicolon_in_comment"])
def test_common_shapes_take_the_fast_path(name: str) -> None:
    # Guards the speed-up itself: a regex change that silently sends these to the general path fails.
    assert _takes_fast_path(json.loads((DATA / f"{name}.json").read_text("utf-8"))["raw"])


FRAGMENTS = st.sampled_from([
    "from", "by", "with", "id", "for", "via", "tls", "From", "BY", "Id", "group", "state", "priority",
    "(", ")", "((", "))", "\\", "\"", ";", "[", "]", "<", ">", "<a b>", "<x@example.org>", "x<y", "a[b",
    "(a (b (c (d))))", "(a (b))", "(x;y)", "[IPv6:2001:db8::1]", "[192.0.2.1]", "unknown", "<unknown>",
    "helo=", "(HELO x)", "(EHLO y)", " ", "\t", "  ", "\r\n", "\r\n\t", "ESMTPS", "esmtpsa", "HTTPS", "LMTP",
    "Wed, 27 Mar 2024 15:02:58 +0000", "Mon, 23 Nov 2026 22:40:22 +0100 (CET)", "27 Mar 2024 15:02:58 GMT",
    "27 Mar 99 25:61:61 ZZZ", "2024-03-27 15:02:58 +0000", "mail.example.org", "mail.example.org.", "é", "\x00",
    "\x1c", "\u00a0", "\u212aey", "tl\u017f", "(using TLSv1.3 with cipher X)", "Microsoft SMTP Server", ",",
    "a,b", "(mail.example.org [192.0.2.1])", "(mail.example.org. [IPv6:2001:db8::2])", "(unknown [192.0.2.9])",
    "([192.0.2.1]:25 helo=x)", "(Exim 4.9)", "(port=25 helo=h)", "(may be forged)", "root@[192.0.2.66]",
    "(TLS)", "(Google Transport Security)", "Received:",
])
STRUCTURED = st.lists(FRAGMENTS, max_size=40).map(" ".join)
# Mostly well-formed headers with one fragment dropped in somewhere.
WELL_FORMED = st.builds(
    lambda helo, comment, proto, extra, at, date: (
        f"from {helo} {comment}\r\n\tby mx.example.com (Postfix) with {proto} id 4V5B1c2Dz1z4x3 {extra}"
        f"\r\n\tfor <bob@example.com>; {date}"[:at] + f"{extra}" + f"from {helo} {comment} by mx.example.com "
        f"with {proto} id X for <bob@example.com>; {date}"[at:]
    ),
    FRAGMENTS, FRAGMENTS, FRAGMENTS, FRAGMENTS, st.integers(0, 200), FRAGMENTS,
)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(STRUCTURED, WELL_FORMED, st.text(max_size=200)))
def test_fast_path_equals_general_path(value: str) -> None:
    assert_same(value)


@settings(max_examples=200)
@given(STRUCTURED)
def test_fast_path_equals_general_path_on_bytes(value: str) -> None:
    assert_same(value.encode("utf-8", "surrogatepass"))


@settings(max_examples=100, deadline=None)
@given(helo=st.sampled_from(["mail.example.org", "[192.0.2.1]", "[IPv6:2001:db8::1]"]),
       rdns=st.one_of(st.none(), st.just("a.example.net")), tls=st.booleans(),
       recipient=st.one_of(st.none(), st.just("bob@example.com")),
       when=st.datetimes(datetime(1990, 1, 1), datetime(2090, 1, 1)).map(lambda d: d.replace(microsecond=0)),
       zone=st.integers(-12 * 4, 14 * 4).map(lambda q: timezone(timedelta(minutes=15 * q))))
def test_our_own_headers_take_the_fast_path(helo, rdns, tls, recipient, when, zone) -> None:
    info = received.ReceivedInfo(
        helo=helo, ip="192.0.2.7", rdns=rdns, hostname="mx.example.com", protocol="ESMTPS" if tls else "ESMTP",
        queue_id="4F2A9C0B7D20", tls_version="TLSv1.3" if tls else None,
        tls_cipher="TLS_AES_256_GCM_SHA384" if tls else None, recipient=recipient, at=when.replace(tzinfo=zone),
    )
    raw = received.format_received(info)
    assert _takes_fast_path(raw)
    assert_same(raw)


DATE_PARTS = st.sampled_from([
    "Mon,", "Wed,", "Sun,", "Thu,", "1", "01", "27", "29", "31", "Feb", "Mar", "Dec", "2024", "2023", "0001", "9999",
    "00:00:00", "23:59:59", "23:59:60", "15:02", "+0000", "-0000", "+0100", "-0700", "+1460", "+0060", "GMT", "UT",
    "EST", "PDT", "Z", "CEST", "(PDT)", "(UTC)", "(CET)", "(+0100)", "(PST)", "\u0662", "  ",
])


@settings(max_examples=500)
@given(st.one_of(st.lists(DATE_PARTS, max_size=8).map(" ".join), st.text(max_size=40)))
def test_date_fast_path_equals_full_path(text: str) -> None:
    def run(fn):
        try:
            result = fn(text)
        except OverflowError as exc:  # both paths do the same arithmetic, so the same errors
            return type(exc), str(exc)
        return result.value, result.warnings, result.zone_known, result.value.tzinfo if result.value else None

    assert run(dates.parse_date) == run(dates._slow)


# The patterns below are the original (re.I, lazy) spellings; the module's faster spellings must
# match exactly the same text.
_ORIGINAL_DATE_START = re.compile(
    r"(?:\b(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*\s*,\s*)?\b\d{1,2}\s+"
    r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{2,4}\s+\d{1,2}:\d{2}"
    r"|\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}",
    re.IGNORECASE,
)
_ORIGINAL_TLS_EVIDENCE = re.compile(
    r"(?<![\w.-])(?:TLS|SSL)(?:v?\d(?:[._]\d)?)?(?![\w.-])|\bcipher[=\s]|Google Transport Security"
)
_ORIGINAL_TCP_INFO = re.compile(rf"(?:[^\s@\[\]]+@)?(\S+?)\.?\s+\[(?:IPv6:)?({hop.IP})\](?::\d+)?", re.IGNORECASE)
DATEISH = st.lists(st.sampled_from(["Mon", "mon", "\u017fun", "Fri", "fR\u0130", "27", "1", "Mar", "\u017fep", "2024",
                                    "24", "15:02", "2024-03-27", "T", "t", " ", ",", ".", "x", "_", "\u0661", "\t",
                                    "-", "Wednesday", "Marchy"]), max_size=14).map("".join)
TCPISH = st.lists(st.sampled_from(["a", "mail.example.org", ".", "..", "@", "root@", " ", "  ", "\t", "[", "]",
                                   "[192.0.2.1]", "[IPv6:2001:db8::1]", "[ipv6:2001:db8::1]", "[\u0130Pv6:2001:db8::1]",
                                   "[2001:db8::1%eth0]", ":25", "(x)", "unknown"]), max_size=8).map("".join)


@settings(max_examples=500)
@given(DATEISH)
def test_date_start_pattern_is_the_original(text: str) -> None:
    assert [m.span() for m in parse._DATE_START.finditer(text)] == \
        [m.span() for m in _ORIGINAL_DATE_START.finditer(text)]


@settings(max_examples=500)
@given(TCPISH)
def test_tcp_info_pattern_is_the_original(text: str) -> None:
    old, new = _ORIGINAL_TCP_INFO.match(text), hop.TCP_INFO.match(text)
    assert (old is None) == (new is None)
    if old is not None:
        name = new.group(1)
        if name[-1] == "." and len(name) > 1:
            name = name[:-1]
        assert (old.group(1), old.group(2)) == (name, new.group(2))


TLSISH = st.lists(st.sampled_from(["TLS", "SSL", "TLSv1.3", "TLS1_2", "SSLv3", "cipher", "cipher=", "cipher ",
                                   "xcipher",
                                   "Google Transport Security", "x", ".", "-", "_", "1", "v", " ", "(", ")", "\u00e9",
                                   "ATLS", "TLSx", "\u0661", "c", "T", "S", "\t"]), max_size=8).map("".join)


@settings(max_examples=500)
@given(TLSISH)
def test_tls_evidence_pattern_is_the_original(text: str) -> None:
    old, new = _ORIGINAL_TLS_EVIDENCE.search(text), hop.TLS_EVIDENCE.search(text)
    assert (old and old.span()) == (new and new.span())


@settings(max_examples=500)
@given(st.lists(st.sampled_from(["a", " ", "\t", "\r", "\n", "\r\n", "\r\n ", "\r\n\t", "x y", "\x0b"]), max_size=12)
       .map("".join))
def test_unfold_shortcut_is_unfold(text: str) -> None:
    assert parse._unfold(text) == unfold(text)
    assert parse._unfold(text.encode()) == unfold(text.encode())
