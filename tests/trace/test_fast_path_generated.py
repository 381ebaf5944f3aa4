"""Generated headers: the fast path (fastpath.read_fast, with the TCP-info reading folded into its
regex) gives the same Hop as the general path, field for field; and the shortcuts taken inside
the shared readers (hop.read_from's pre-checks, dates' cheaper arithmetic) give what the plain
versions gave.

The generator builds headers the way real servers write them (Postfix, Sendmail, Exim, qmail,
Exchange, webmail), then perturbs them: case, folding, odd from comments (qmail HELO, Exim helo=,
``ipv6:`` tags, ``@`` and ``helo=`` in the rDNS, "may be forged"), repeated clauses, a second
``;``, dates the fast date reader refuses. ``MAILBOAT_TRACE_CASES=200000`` runs a larger sweep.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailboat.trace import dates, fastpath, hop, parse
from mailboat.trace.parse import parse_received

CASES = int(os.environ.get("MAILBOAT_TRACE_CASES", "6000"))

HELOS = ["mail.example.org", "mail.example.org.", "[192.0.2.1]", "[IPv6:2001:db8::1]", "unknown", "UNKNOWN",
         "<unknown>", "192.0.2.5", "laptop.local", "mail.bücher.example", "x", "a.b", "HELO", "from", "by"]
RDNS = ["mail.example.org", "mail.example.org.", ".", "unknown", "Unknown", "<unknown>", "a@b.example",
        "root@mail.example.org", "helo=x", "xhelo=y", "dsl-203-0-113-9.example.net", "[unknown]", "a(b"]
IPS = ["192.0.2.10", "IPv6:2001:db8::25", "ipv6:2001:db8::25", "IPV6:2001:db8::1", "2001:db8::1%eth0",
       "198.51.100.7", "1.2.3", "abc", "::1", "IPv6:fe80::1%4"]
FROM_COMMENTS = [
    "({rdns} [{ip}])", "({rdns}  [{ip}])", "( {rdns} [{ip}] )", "({rdns}\t[{ip}])", "({rdns} [{ip}]:25)",
    "({rdns} [{ip}] (may be forged))", "({rdns} [{ip}]) (may be forged)", "({ip})", "([{ip}])",
    "([{ip}]:40022 helo={helo})", "(port=41234 helo={helo})", "(HELO {helo})", "(EHLO {helo})",
    "(helo {helo})", "(HELO {helo}) ({ip})", "({rdns} [{ip}])\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)",
    "({rdns} [{ip}]) (Authenticated sender: alice@example.com)", "({rdns} [{ip}]) (HELO {helo})",
    "({rdns} [{ip}]) ([{ip}]:25 helo=z)", "({rdns} [{ip}]) (port=25)", "({rdns} [{ip}]) (x [y])",
    "({rdns} [{ip}]) (note (may be forged))", "({rdns} [{ip}]) (No client certificate requested)",
    "({rdns} [{ip}]) (EhLo x)", "(root@[{ip}])", "(unknown)", "()", "({rdns} [{ip}] (nested) x)",
]
BYS = ["mx.example.com", "mx.example.com (Postfix)", "mx.example.com (8.17.1/8.17.1)",
       "localhost (amavisd-new, port 10024)",
       "mx.example.com (mailboat)", "2001:db8::1", "h ((a) b)", "mx.example.com (Exim 4.96)"]
WITHS = ["ESMTP", "ESMTPS", "esmtpsa", "SMTP", "LMTP", "HTTP", "HTTPS", "UTF8SMTPS", "Microsoft SMTP Server",
         "Microsoft SMTP Server (version=TLS1_2, cipher=TLS_X)", "esmtps (TLS1.3) tls TLS_AES_256_GCM_SHA384",
         "esmtps (TLSv1.2:ECDHE-RSA-AES256-GCM-SHA384:256)", "HTTP (HTTP/1.1 POST)", "mapi", "SMTPS"]
TAILS = ["id 4V4Y0a2bcdz9sWr", "id X for <bob@example.com>", "id X (envelope-from <a@example.org>) for bob@example.com",
         "id X\r\n\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\r\n\tfor <bob@example.com>", "for <a@x>, <b@y>",
         "id 15.20.7452.22 via Frontend Transport", "via TCP id 1",
         "id X for <bob@example.com> (Google Transport Security)",
         "", "id X id Y", "envelope-from <a@example.org> tls TLS_X", "id X; for <b@example.com>"]
DATES = ["Wed, 27 Mar 2024 15:02:58 +0000", "Wed, 27 Mar 2024 15:02:58 +0000 (UTC)", "27 Mar 2024 15:02:58 -0000",
         "Thu, 27 Mar 2024 15:02:58 +0000", "Wed, 27 Mar 24 10:02:58 EST", "Wed, 27 Mar 2024 17:02 CEST",
         "Sat, 31 Dec 2016 23:59:60 +0000", "27 Mar 2024 15:02:58 +0100 (PST)", "yesterday", "",
         "Wed, 27 Mar 2024 08:02:58 -0700 (PDT)", "Mon, 1 Jan 0001 00:30:00 +0100", "31 Dec 9999 23:59:59 -1400",
         "2024-03-27 15:02:58.1 +0000 UTC", "Wed,  27   Mar 2024   08:02:58   PDT"]


def _case(word: str, rng: random.Random) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c for c in word) if rng.random() < 0.15 else word


def generated_header(rng: random.Random) -> str:
    helo, rdns, ip = rng.choice(HELOS), rng.choice(RDNS), rng.choice(IPS)
    parts = []
    if rng.random() < 0.05:
        parts.append("(qmail 4711 invoked from network)")
    if rng.random() < 0.9:
        comment = rng.choice(FROM_COMMENTS).format(helo=helo, rdns=rdns, ip=ip)
        parts.append(f"{_case('from', rng)} {helo} {comment if rng.random() < 0.9 else ''}")
    parts.append(f"{_case('by', rng)} {rng.choice(BYS)}")
    if rng.random() < 0.9:
        parts.append(f"{_case('with', rng)} {rng.choice(WITHS)}")
    parts.append(rng.choice(TAILS))
    sep = rng.choice([" ", "\r\n\t", "\r\n ", "\r\n        ", "  "])
    text = sep.join(p for p in parts if p) + rng.choice([";", "; ", ";\r\n\t"]) + rng.choice(DATES)
    if rng.random() < 0.05:  # a random cut or insertion somewhere
        at = rng.randrange(len(text) + 1)
        text = text[:at] + rng.choice(["", "(", ")", ";", "\"", "[", "]", "<", ">", " ", "é"]) + text[at:]
    return text


def _fields(h: parse.Hop) -> tuple:
    values = tuple(getattr(h, f.name) for f in dataclasses.fields(h))
    return values + (type(h), h.timestamp.tzinfo if h.timestamp else None)


def test_generated_headers_fast_equals_general() -> None:
    rng = random.Random(20260324)
    fast = 0
    for _ in range(CASES):
        text = generated_header(rng)
        got = parse_received(text)
        assert _fields(got) == _fields(parse._general(text)), text
        fast += _takes_fast_path(text)
    assert fast > CASES // 2  # the sweep exercises the fast path, not only the fallback


def _takes_fast_path(raw: str) -> bool:
    text = parse._unfold(raw)
    m = (fastpath.FAST_ASCII if text.isascii() else fastpath.FAST).match(text) if "\\" not in text else None
    try:
        return m is not None and fastpath.read_fast(text, m) is not None
    except OverflowError:  # year 9999 + a negative zone: both paths report it as a parser error
        return True


@pytest.mark.parametrize("comment", ["(mail.example.org [192.0.2.1])", "( mail.example.org.\t[IPv6:2001:db8::1] )",
                                     "(unknown [198.51.100.4])"])
def test_tcp_info_is_read_by_the_regex(comment: str) -> None:
    # Guards the speed-up itself: plain TCP-info fills the regex's own rdns/ip groups.
    m = fastpath.FAST_ASCII.match(f"from h {comment} by mx.example.com; Wed, 27 Mar 2024 15:02:58 +0000")
    assert m is not None and m.group("rdns") is not None and m.group("ip") is not None


# The from-clause reader before its pre-checks (each regex tried on every comment): the pre-checks
# must never change what it finds.
def _original_read_from(words, comments, text, warnings):
    word = words[0] if words else None
    if len(words) > 1:
        warnings.append(f"extra words in the from clause: {' '.join(words[1:])[:40]!r}")
    if word is not None and word.lower() in hop.UNKNOWN:
        word = None
    helo, rdns, ip, word_is_rdns = word, None, None, False
    for comment in comments:
        inner = comment[1:-1].strip()
        if "(" in inner:
            if "may be forged" in inner:
                warnings.append("the receiver noted the reverse DNS may be forged")
            inner = hop._NESTED.sub(" ", inner).strip()
        if not inner:
            continue
        if ip is None and "helo=" not in inner:
            m = hop.TCP_INFO.match(inner)
            if m:
                name = m.group(1)
                if name[-1] == "." and len(name) > 1:
                    name = name[:-1]
                rdns = None if name.lower() in hop.UNKNOWN else name
                ip = m.group(2)
                continue
        m = hop._QMAIL_HELO.match(inner)
        if m:
            helo, word_is_rdns = m.group(1), True
            continue
        m = hop._EXIM.match(inner)
        if m and (m.group(2) or m.group(3) or inner.startswith("port=") or ("(Exim" in text and m.group(1))):
            ip = m.group(1) or ip
            helo = m.group(3) or word
            word_is_rdns = True
            continue
        if ip is None:
            m = hop._IDENT_IP.match(inner)
            if m and ("." in m.group(1) or ":" in m.group(1)):
                ip = m.group(1)
                continue
    if word is not None and word_is_rdns:
        word_ip = hop.as_ip(word)
        if word_ip is not None:
            ip = ip or word_ip
        else:
            rdns = word.rstrip(".")
    elif ip is None and word is not None:
        word_ip = hop.as_ip(word)
        if word_ip is not None:
            ip, helo = word_ip, None
    return helo, rdns, ip


COMMENT_BITS = st.sampled_from(["HELO", "EHLO", "hElO", "ehlo", "helo=", "HELO=", "port=", "port=25", "PORT=", "[", "]",
                                "[192.0.2.1]", "[IPv6:2001:db8::1]", ":25", " ", "\t", "x", "mail.example.org",
                                "192.0.2.9", "(", ")", "(a)", "may be forged", "@", "root@", "unknown", "lo", "LO",
                                "\u0130", "\u0131", "\u017f", "\u212a", "é", "h", "e", "l", "o", "=", "2001:db8::2"])
COMMENT = st.lists(COMMENT_BITS, max_size=8).map(lambda bits: "(" + "".join(bits) + ")")


@settings(max_examples=1500)
@given(word=st.sampled_from(["mail.example.org", "192.0.2.5", "[192.0.2.5]", "unknown", "x."]),
       comments=st.lists(COMMENT, max_size=3), exim=st.booleans())
def test_read_from_pre_checks_change_nothing(word, comments, exim) -> None:
    text = "from x (Exim 4.96)" if exim else "from x"
    w1: list[str] = []
    w2: list[str] = []
    assert hop.read_from([word], comments, text, w1) == _original_read_from([word], comments, text, w2)
    assert w1 == w2


@settings(max_examples=1000)
@given(COMMENT)
def test_inert_comments_are_inert(comment: str) -> None:
    # what read_fast relies on: after TCP-info gave the IP, an inert comment changes nothing
    if hop.inert_after_tcp_info(comment):
        first = "(mail.example.org [192.0.2.1])"
        for text in ("from x", "from x (Exim 4.96)"):
            w1: list[str] = []
            w2: list[str] = []
            assert _original_read_from(["h"], [first, comment], text, w1) == \
                _original_read_from(["h"], [first], text, w2)
            assert w1 == w2


@settings(max_examples=500)
@given(st.lists(st.sampled_from(["(", ")", "a", " ", "  ", "\t", "\n", "\x0b", "\x1c", "\u00a0", "\u2003", "\r\n"]),
                max_size=12).map(lambda bits: "(" + "".join(bits) + ")"))
def test_one_space_is_the_regex_substitution(comment: str) -> None:
    expected = re.sub(r"\s+", " ", comment) if "\t" in comment or "  " in comment else comment
    assert hop.one_space(comment) == expected


@settings(max_examples=300)
@given(st.lists(st.one_of(st.none(), st.text(max_size=4), st.integers()), min_size=16, max_size=16))
def test_make_hop_is_the_constructor(values) -> None:
    made, built = hop.make_hop(*values), parse.Hop(*values)
    assert type(made) is type(built)
    assert [getattr(made, f.name) for f in dataclasses.fields(made)] == list(values)
    assert made == built


def _original_build(y, mo, d, h, mi, s, frac, offset, warnings):
    s, leap = (59, 1) if s == 60 else (s, 0)
    try:
        local = datetime(y, mo, d, h, mi, s)
    except ValueError as exc:
        warnings.append(f"date out of range: {exc}")
        return None
    if frac:
        warnings.append(f"fractional seconds {frac} ignored")
    try:
        return (local - timedelta(minutes=offset, seconds=-leap)).replace(tzinfo=UTC)
    except OverflowError as exc:  # outside years 1..9999 in UTC: a warning, not a lost hop
        warnings.append(f"date out of range: {exc}")
        return None


@settings(max_examples=800)
@given(y=st.sampled_from([1, 2, 1999, 2024, 9998, 9999]), mo=st.integers(0, 13), d=st.sampled_from([0, 1, 28, 31]),
       h=st.sampled_from([0, 23, 24]), mi=st.sampled_from([0, 59]), s=st.sampled_from([0, 59, 60, 61]),
       frac=st.sampled_from([None, ".5"]), offset=st.sampled_from([0, 60, -60, 14 * 60, -14 * 60, 5999, -5999]))
def test_date_build_is_the_original(y, mo, d, h, mi, s, frac, offset) -> None:
    def run(fn):
        warnings: list[str] = []
        try:
            value = fn(y, mo, d, h, mi, s, frac, offset, warnings)
        except OverflowError as exc:
            return type(exc), str(exc)
        return value, value.tzinfo if value else None, warnings

    assert run(dates._build) == run(_original_build)


# The Postfix/Sendmail regex (fastpath.POSTFIX) and its reader: a subset of FAST, read the same way.
POSTFIX_BITS = st.sampled_from([
    "from", "by", "with", "id", "for", "FROM", "With", "via", "tls", " ", "  ", "\t", "(", ")", "=", "@", "[", "]",
    "<", ">", ",", ";", "\"", "unknown", "UNKNOWN", "mail.example.org.", ".", "[192.0.2.1]", "IPv6:2001:db8::1",
    "helo=x", "(may be forged)", "(HELO x)", "([192.0.2.2]:25)", "(using TLSv1.3 with cipher X (256/256 bits))",
    "(TLS)", "(Google\tTransport Security)", "ESMTPS", "esmtpsa", "LMTP", "HTTP", "Thu,", "31 Feb", "+0100 (PST)",
    "-0000", "99", "é",
])


def _postfix_header(helo: str, rdns: str, ip: str, extra: str, by: str, proto: str, rcpt: str, date: str) -> str:
    tail = f"\tfor {rcpt}" if rcpt else ""
    return f"from {helo} ({rdns} [{ip}]){extra}\tby {by} with {proto} id 4V4Y0a2bcdz9sWr{tail}; {date}"


POSTFIX_LIKE = st.builds(
    _postfix_header,
    st.sampled_from(["mail.example.org", "unknown", "UNKNOWN", "[192.0.2.5]", "by", "with", "x<y>", "a.b."]),
    st.sampled_from(["mail.example.org", "mail.example.org.", "unknown", "<unknown>", ".", "a=b", "root@x"]),
    st.sampled_from(["192.0.2.10", "IPv6:2001:db8::1", "2001:db8::1%eth0", "1.2.3", "ipv6:::1"]),
    st.sampled_from(["", " (using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))",
                     "\t(Authenticated sender: a@example.org)", " (HELO x)", " (x [1.2.3.4])", " (may be forged)",
                     " (port=25)", " (a (b (c)))", " (SSL)"]),
    st.sampled_from(["mx.example.com (Postfix)", "mx.example.com", "mx.example.com (8.17.1/8.17.1)",
                     "mx (a  b)", "mx (TLS)", "mx (Google\tTransport Security)", "mx (cipher=x)"]),
    st.sampled_from(["ESMTP", "ESMTPS", "esmtpsa", "HTTP", "id", "for", "Microsoft", "ID", "SMTPS", "local"]),
    st.sampled_from(["", "<bob@example.com>", "bob@example.com", "<a@x>,<b@y>", "<>", "by", "x,"]),
    st.sampled_from(DATES),
)


@settings(max_examples=3000)
@given(st.one_of(POSTFIX_LIKE, st.tuples(POSTFIX_LIKE, st.integers(0, 200), POSTFIX_BITS)
                 .map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1]:])))
def test_postfix_regex_reads_as_fast_and_general(text: str) -> None:
    text = parse._unfold(text)  # what parse_received hands the regexes
    m = fastpath.POSTFIX.match(text) if "\\" not in text and text.isascii() else None
    if m is None:
        return
    try:
        got = fastpath.read_postfix(text, m)
    except OverflowError:
        return
    if got is None:
        return
    fast = fastpath.FAST_ASCII.match(text)
    assert fast is not None, text  # POSTFIX accepts a subset of what FAST accepts
    assert _fields(got) == _fields(fastpath.read_fast(text, fast)), text
    assert _fields(got) == _fields(parse._general(text)), text


@pytest.mark.parametrize("name", ["postfix_no_tls", "postfix_tls13", "postfix_ipv6", "postfix_unknown_rdns",
                                  "postfix_submission_auth", "mailboat_no_tls", "utf8smtpa_no_tls",
                                  "mailgun_unknown_angle"])
def test_postfix_shapes_take_the_postfix_regex(name: str) -> None:
    # Guards the speed-up itself: these corpus headers are read by POSTFIX/read_postfix, and the same as FAST
    # reads them.
    path = os.path.join(os.path.dirname(__file__), "..", "data", "received", f"{name}.json")
    with open(path, encoding="utf-8") as f:
        text = parse._unfold(json.load(f)["raw"])
    m = fastpath.POSTFIX.match(text)
    assert m is not None
    got = fastpath.read_postfix(text, m)
    assert got is not None
    assert _fields(got) == _fields(fastpath.read_fast(text, fastpath.FAST_ASCII.match(text)))


def test_the_postfix_strategy_reaches_the_postfix_reader() -> None:
    text = _postfix_header("mail.example.org", "mail.example.org", "192.0.2.10", "", "mx.example.com (Postfix)",
                           "ESMTPS", "<bob@example.com>", DATES[0])
    m = fastpath.POSTFIX.match(text)
    assert m is not None and fastpath.read_postfix(text, m) is not None


@pytest.mark.parametrize("text", ["FROM;WED20 MAR 0024 0:00:00-0000", "from unknown; Wed, 27 Mar 2024 15:02:58 +0000",
                                  "by; Wed, 27 Mar 2024 15:02:58 +0000", "from unknown by; 27 Mar 2024 15:02:58 GMT"])
def test_a_clause_without_host_says_so(text: str) -> None:
    # found by test_trace_properties: a from/by keyword with nothing usable after it gave no warning
    got = parse_received(text)
    assert hop.NO_HOST in got.warnings
    assert _fields(got) == _fields(parse._general(text))


def test_made_hops_stay_frozen() -> None:
    made = hop.make_hop(*(["raw"] + [None] * 12 + [(), (), ()]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.by_host = "x"  # type: ignore[misc]
    assert dataclasses.replace(made, by_host="x").by_host == "x"
