"""Received hops → the message's journey: travel order, delays, and findings in plain words.

Order: RFC 5321 §4.4 and RFC 5322 §3.6.7 say each server *prepends* its Received field, so the
bottom field is the first hop (index 1) and the top one the last. Delays are signed seconds
between consecutive stamps (None when either is unknown): a negative delay is a clock problem,
never "23 hours". The time between hop i-1 and hop i was spent in the queue of hop i-1's
receiving server (its ``by`` host), which is who to ask about a long delay.

Findings (SPEC ``mailboat trace --json``): ``long_delay``, ``clock_skew``, ``no_tls``,
``forwarded`` (the ``for`` address changes, List-Id (RFC 2919), SRS (``SRS0=``), ARC-Seal
(RFC 8617)), ``spf_broken_by_forward`` and ``dkim_body_modified`` (Authentication-Results,
RFC 8601; ARC-Authentication-Results; and, when the body is present, a recomputed DKIM body
hash, RFC 6376 §3.7), ``unparsable``. Each message quotes its evidence: the header, the hop and
the values ("for changed from <a@x> at hop 2 to <b@y> at hop 3").

What is *not* a finding, because real mailboxes are full of it: a ``for`` that changes at or after
a mailbox download hop (fetchmail ``with POP3``/``with IMAP`` writes its own), or to the list's
own address (an alias of the list); the list expansion itself is one ``forwarded`` that names the
list header. A hop without TLS between private addresses (PRIVATE_NETWORKS) or from a host to
itself is not ``no_tls``. Total transit starts at the Date header when it precedes hop 1 (see
`_total`).
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from mailboat.mail.headers import Field, parse_fields, split_message
from mailboat.trace.auth import AuthResult, body_hash_failed, check_body_hash, parse_auth_results
from mailboat.trace.dates import date_value
from mailboat.trace.parse import Hop, parse_received

LONG_DELAY_SECONDS = 600.0  # ten minutes between two stamps is worth a look
CLOCK_SKEW_TOLERANCE = 60.0  # small negative delays are normal between unsynchronised clocks
DATE_LEAD_LIMIT = 86400.0  # a Date more than a day before hop 1 is a wrong clock or a resent message
# Addresses inside one organisation: a hop between them without TLS is not a finding (RFC 1918,
# loopback, IPv4 and IPv6 link-local, IPv6 unique local fc00::/7 of RFC 4193).
PRIVATE_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16",
    "::1/128", "fc00::/7", "fe80::/10"))
_ANGLE = re.compile(r"<([^<>]*)>")
_MAILTO = re.compile(r"<mailto:([^<>?\s]+)", re.I)
_EZMLM = re.compile(r"\s*list\s+(\S+@[^\s;]+)", re.I)
# with-types of a mailbox download (fetchmail writes its protocol name: POP3, IMAP, ...)
DOWNLOAD_PROTOCOLS = frozenset(("pop", "pop2", "pop3", "pop3s", "apop", "kpop", "rpop", "sdps", "imap", "imap4",
                                "imap4rev1", "imaps"))


@dataclass(frozen=True, slots=True)
class TimedHop:
    """A hop in travel order with its delay since the previous hop."""

    index: int  # 1 = the bottom Received header
    hop: Hop
    delay_seconds: float | None


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    hop: int | None  # the hop it concerns, None for the whole message
    message: str


@dataclass(frozen=True, slots=True)
class Trace:
    hops: tuple[TimedHop, ...]
    total_seconds: float | None
    slowest_hop: int | None  # index of the hop with the longest positive delay
    slowest_queue: str | None  # whose queue that time was spent in
    findings: tuple[Finding, ...]
    total_from: str | None = None  # where total_seconds starts: "date" (the Date header) or "hop" (hop 1's stamp)


def duration(seconds: float) -> str:
    """Human duration: "41 s", "2 min 5 s", "9 h 2 min", "3 d 4 h"."""
    s = int(round(abs(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min" if s % 3600 // 60 else f"{s // 3600} h"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def host_name(hop: Hop) -> str:
    """A name for the sending side of a hop: rDNS, else HELO, else IP."""
    return hop.from_rdns or hop.from_helo or hop.from_ip or "an unnamed host"


def analyse_message(data: bytes, *, now: datetime | None = None) -> Trace:
    """Analyse a whole message (or a header block): Received chain plus authentication headers.

    Header bytes that are not UTF-8 (a raw latin-1 HELO name) are read as U+FFFD, so every
    string of the trace is valid text; the body is kept as it is (the DKIM body hash needs it).
    """
    header, body = split_message(data)
    if not header.isascii():
        try:
            header.decode("utf-8")
        except UnicodeDecodeError:
            header = header.decode("utf-8", "replace").encode("utf-8")
    fields = parse_fields(header)
    received = [parse_received(f.raw_value) for f in fields if f.name.lower() == "received"]
    return build_trace(list(reversed(received)), fields, body, now=now)


def build_trace(
    hops: Sequence[Hop], fields: Iterable[Field] = (), body: bytes | None = None, *, now: datetime | None = None
) -> Trace:
    """Hops in travel order (first hop first) → Trace. `fields`/`body` enable the auth findings."""
    timed: list[TimedHop] = []
    prev: Hop | None = None
    for i, hop in enumerate(hops, 1):
        delay = None
        if prev is not None and prev.timestamp and hop.timestamp:
            delay = (hop.timestamp - prev.timestamp).total_seconds()
        timed.append(TimedHop(i, hop, delay))
        prev = hop
    fields = list(fields)
    by_name: dict[str, list[Field]] = {}
    for f in fields:
        by_name.setdefault(f.name.lower(), []).append(f)
    total, total_from, date_findings = _total(timed, by_name)
    ahead = _clocks_ahead(timed)
    positive = [t for t in timed if t.delay_seconds is not None and t.delay_seconds > 0 and t.index not in ahead
                and download_protocol(t.hop) is None]
    slowest = max(positive, key=lambda t: t.delay_seconds or 0.0, default=None)
    queue = None
    if slowest is not None:
        before = timed[slowest.index - 2].hop
        queue = before.by_host or host_name(slowest.hop)
    findings = date_findings + _hop_findings(timed, ahead, now or datetime.now(UTC))
    findings += _message_findings(timed, by_name, body)
    return Trace(tuple(timed), total, slowest.index if slowest else None, queue, tuple(findings), total_from)


def stamp(ts: datetime) -> str:
    """A UTC time as findings quote it: "2024-03-27 15:02:58 UTC"."""
    return ts.strftime("%Y-%m-%d %H:%M:%S UTC")


def header_date(by_name: dict[str, list[Field]]) -> tuple[datetime | None, str | None]:
    """The Date header (RFC 5322 §3.6.1) as UTC, and as written; (None, text) when unreadable."""
    for f in by_name.get("date", [])[:1]:
        return date_value(f.value)[0], f.value
    return None, None


def _total(timed: list[TimedHop], by_name: dict[str, list[Field]]) -> tuple[float | None, str | None, list[Finding]]:
    """Total transit: the last stamp minus the start, and where the start is ("date" or "hop").

    The start is the Date header when it is readable, not after the first stamped hop and no more
    than DATE_LEAD_LIMIT before it (the sender's program dated the message, then handed it to hop
    1): a one-hop message then has a total too. Otherwise the start is the first stamp (one stamp
    alone gives no total). A Date more than CLOCK_SKEW_TOLERANCE after the first stamp is the
    sender's clock running ahead (a clock_skew finding), never negative transit.
    """
    stamped = [(t, t.hop.timestamp) for t in timed if t.hop.timestamp is not None]
    if not stamped:
        return None, None, []
    (first, start), (last, end) = stamped[0], stamped[-1]
    date, text = header_date(by_name)
    findings: list[Finding] = []
    if date is not None:
        lead = (start - date).total_seconds()
        if lead < -CLOCK_SKEW_TOLERANCE:
            findings.append(Finding("clock_skew", None, f"the Date header ({text}) is {duration(lead)} after hop "
                                    f"{first.index} ({first.hop.by_host or 'the first server'}) stamped the "
                                    f"message at {stamp(start)}: the sender's clock is ahead, so the total transit "
                                    f"is counted from hop {first.index}"))
        elif 0 <= lead <= DATE_LEAD_LIMIT:
            return (end - date).total_seconds(), "date", findings
    if first is last:
        return None, None, findings
    return (end - start).total_seconds(), "hop", findings


def _clocks_ahead(timed: list[TimedHop]) -> dict[int, float]:
    """Hops whose clock runs ahead: a long "delay" into them that the next hop takes back.

    +2 h then -2 h is not a two-hour queue but one server stamping two hours in the future.
    Maps the hop index to how far ahead its clock seems to be (seconds).
    """
    ahead: dict[int, float] = {}
    for a, b in itertools.pairwise(timed):
        da, db = a.delay_seconds, b.delay_seconds
        if da is None or db is None:
            continue
        if da >= LONG_DELAY_SECONDS and db < -CLOCK_SKEW_TOLERANCE and abs(da + db) < LONG_DELAY_SECONDS:
            ahead[a.index] = -db
    return ahead


def is_private(ip: str) -> bool:
    """Whether `ip` is an address inside one organisation (PRIVATE_NETWORKS); False for a non-address."""
    try:
        addr = ipaddress.ip_address(ip.partition("%")[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr in net for net in PRIVATE_NETWORKS)


def same_host(hop: Hop) -> bool:
    """Whether the hop's sender and receiver are one host (``from mx.example by mx.example``)."""
    by = (hop.by_host or "").lower().rstrip(".")
    return bool(by) and by in {(name or "").lower().rstrip(".") for name in (hop.from_rdns, hop.from_helo)}


def download_protocol(hop: Hop) -> str | None:
    """The protocol of a mailbox download hop (fetchmail, getmail: ``by localhost with POP3
    (fetchmail-6.4.37)``), else None. Such a hop is not a relay: the message was delivered
    before it, into a mailbox that a client then fetched."""
    word = (hop.with_protocol or "").split(" ", 1)[0]
    if word.lower() in DOWNLOAD_PROTOCOLS:
        return word
    for comment in hop.comments:
        low = comment.lower()
        if "fetchmail" in low or "getmail" in low:
            return word or comment[1:-1].split(" ", 1)[0]
    return None


def _where(t: TimedHop) -> str:
    """ "mx.example.net (hop 3, stamped 2024-03-27 15:02:58 UTC)" """
    when = f", stamped {stamp(t.hop.timestamp)}" if t.hop.timestamp else ""
    return f"{t.hop.by_host or 'an unnamed server'} (hop {t.index}{when})"


def _hop_findings(timed: list[TimedHop], ahead: dict[int, float], now: datetime) -> list[Finding]:
    out: list[Finding] = []
    for t in timed:
        hop, by = t.hop, t.hop.by_host or "an unnamed server"
        if t.index in ahead:
            nxt = timed[t.index]
            out.append(Finding("clock_skew", t.index, f"the clock of {by} (hop {t.index}) is about "
                               f"{duration(ahead[t.index])} ahead: it stamped the message "
                               f"{duration(t.delay_seconds or 0)} after the previous hop, and "
                               f"{_where(nxt)} stamped it {duration(ahead[t.index])} earlier again "
                               f"(hop {t.index}: {stamp(hop.timestamp) if hop.timestamp else '?'})"))
        if hop.timestamp is None:
            why = next((w for w in hop.warnings if "date" in w), "no date")
            if hop.date_text:
                said = "" if hop.date_text in why else f" ({why})"  # the warning may quote the date already
                what = f"the date {hop.date_text!r} of its Received header could not be read{said}"
            else:
                what = f"its Received header has no date ({why})"
            out.append(Finding("unparsable", t.index, f"hop {t.index} ({by}): {what}; the delays before and after "
                               "it are unknown"))
        elif not (hop.by_host or hop.from_helo or hop.from_ip or hop.from_rdns) and hop.warnings:
            out.append(Finding("unparsable", t.index, f"hop {t.index}: no from or by clause could be read in its "
                               f"Received header ({'; '.join(hop.warnings)})"))
        explained = t.index in ahead or t.index - 1 in ahead
        if t.delay_seconds is not None and t.index > 1 and not explained:
            before = timed[t.index - 2]
            prev_by = before.hop.by_host or host_name(hop)
            if t.delay_seconds >= LONG_DELAY_SECONDS:
                fetched = download_protocol(hop)
                why = (f"the message waited in a mailbox on {prev_by} until it was fetched with {fetched} (the "
                       "download interval, not a queue)" if fetched else
                       f"the message waited in the queue of {prev_by}")
                out.append(Finding("long_delay", t.index, f"{duration(t.delay_seconds)} passed between "
                                   f"{_where(before)} and {_where(t)}: {why}"))
            elif t.delay_seconds < -CLOCK_SKEW_TOLERANCE:
                out.append(Finding("clock_skew", t.index, f"{_where(t)} stamped the message "
                                   f"{duration(t.delay_seconds)} before {_where(before)} handed it over: one of "
                                   "the two clocks is wrong, so this delay is not real"))
        if hop.timestamp is not None and (hop.timestamp - now).total_seconds() > CLOCK_SKEW_TOLERANCE:
            future = duration((hop.timestamp - now).total_seconds())
            out.append(Finding("clock_skew", t.index, f"{by} (hop {t.index}) stamped {stamp(hop.timestamp)}, "
                               f"{future} in the future: its clock is ahead"))
        if hop.tls is False and hop.from_ip and not is_private(hop.from_ip) and not same_host(hop):
            out.append(Finding("no_tls", t.index, f"TLS not shown by hop {t.index} `{hop.tls_evidence}` from "
                               f"{host_name(hop)} [{hop.from_ip}] to {by}: its Received header names no TLS "
                               "version or cipher, so the message crossed the network in clear text"))
    return out


def _message_findings(timed: list[TimedHop], by_name: dict[str, list[Field]], body: bytes | None) -> list[Finding]:
    out: list[Finding] = []
    forwarded = _forwarding(timed, by_name)
    out += forwarded
    results = [r for f in by_name.get("authentication-results", [])[:1] for r in parse_auth_results(f.value)]
    arc = [
        r
        for f in by_name.get("arc-authentication-results", [])
        for r in parse_auth_results(f.value, "ARC-Authentication-Results")
    ]
    spf = next((r for r in results if r.method == "spf"), None)
    if spf and spf.result in ("fail", "softfail"):
        entry = _entry_hop(timed, spf.authserv_id)
        via = f"{host_name(entry.hop)} [{entry.hop.from_ip}] (hop {entry.index})" if entry else "a relay"
        earlier = next((r for r in arc if r.method == "spf" and r.result == "pass"), None)
        if earlier or forwarded:
            seen = f"; {earlier.authserv_id} had recorded spf=pass (ARC i={earlier.instance})" if earlier else ""
            where = entry.index if entry else None
            out.append(Finding("spf_broken_by_forward", where, f"SPF {spf.result} at {spf.authserv_id} "
                               f"(Authentication-Results: spf={spf.result}) for {spf.domain or 'the sender'}: the "
                               f"message arrived from {via}, a forwarder that the sender's SPF record does not "
                               f"list{seen}"))
    out += _dkim_findings(timed, by_name, results, arc, body)
    return out


def _entry_hop(timed: list[TimedHop], authserv_id: str) -> TimedHop | None:
    """The hop where the checking server received the message from outside (SPF checks that IP)."""
    outside = [t for t in timed if t.hop.from_ip and not is_private(t.hop.from_ip)]
    named = [t for t in outside if (t.hop.by_host or "").lower() == authserv_id.lower()]
    if named:
        return named[0]
    return outside[-1] if outside else None


def list_addresses(by_name: dict[str, list[Field]]) -> list[tuple[str, str]]:
    """What identifies the mailing list a message went through: (header, value) pairs for the
    List-Id (RFC 2919: ``Name <list-label.domain>``, the label inside the brackets), the List-Post
    address (RFC 2369 ``<mailto:list@domain>``) and ezmlm's ``Mailing-List: list list@domain``."""
    found: list[tuple[str, str]] = []
    for f in by_name.get("list-id", [])[:1]:
        m = _ANGLE.search(f.value)
        found.append(("List-Id", (m.group(1) if m else f.value).strip().lower()))
    for f in by_name.get("list-post", [])[:1]:
        m = _MAILTO.search(f.value)
        if m:
            found.append(("List-Post", m.group(1).lower()))
    for f in by_name.get("mailing-list", [])[:1]:
        m = _EZMLM.match(f.value)
        if m:
            found.append(("Mailing-List", m.group(1).lower()))
    return found


def list_match(address: str, lists: list[tuple[str, str]]) -> str | None:
    """The header that names `address` as the list's own address, or None.

    A List-Id names the list ``local.domain`` by convention (RFC 2919 §3: Mailman writes
    ``exmh-workers.example.com`` for exmh-workers@example.com), and the domain part often differs
    (an alias, the list host): the local part followed by a dot is enough."""
    low = address.lower()
    local = low.rpartition("@")[0]
    for header, value in lists:
        if header == "List-Id":
            if local and (value == local or value.startswith(local + ".")):
                return header
        elif value == low:
            return header
    return None


def _forwarding(timed: list[TimedHop], by_name: dict[str, list[Field]]) -> list[Finding]:
    """``forwarded`` findings: a ``for`` that changes between hops, SRS, ARC.

    Not forwarding: a change at or after a mailbox download hop (fetchmail writes its own local
    ``for``), and a change to the list's own address (an alias of the list). A change from the
    list's address to a subscriber is the list expansion: one finding at that hop naming the list
    header that explains it, instead of a bare "recipient changed"."""
    out: list[Finding] = []
    lists = list_addresses(by_name)
    name = _list_name(by_name, lists)
    prev: TimedHop | None = None
    fetched: TimedHop | None = None
    expanded = False
    for t in timed:
        if fetched is None and download_protocol(t.hop) is not None:
            fetched = t
        rcpt, old = t.hop.for_, prev.hop.for_ if prev else None
        if rcpt and old and prev and rcpt.lower() != old.lower() and fetched is None:
            by = t.hop.by_host or "the next server"
            header = list_match(old, lists)
            if list_match(rcpt, lists) is not None:
                pass  # addressed to an alias of the list (exmh-workers@example.com -> @lists.example.com)
            elif header is not None:
                expanded = True
                out.append(Finding("forwarded", t.index, f"list expansion: the mailing list {name} "
                                   f"({header} header) re-sent the message for <{old}> at hop {prev.index} to the "
                                   f"subscriber <{rcpt}> at hop {t.index} ({by})"))
            else:
                out.append(Finding("forwarded", t.index, f"for changed from <{old}> at hop {prev.index} to <{rcpt}> "
                                   f"at hop {t.index} ({by}): the message was forwarded"))
        if rcpt:
            prev = t
    if lists and not expanded:
        out.append(Finding("forwarded", None, f"the message went through the mailing list {name} "
                           f"({lists[0][0]} header); no hop's `for` shows where the list re-sent it"))
    srs = [t for t in timed if t.hop.for_ and "srs0=" in t.hop.for_.lower()]
    return_path = by_name.get("return-path", [])
    rewritten = [f for f in return_path if "srs0=" in f.value.lower() or "srs1=" in f.value.lower()]
    if srs or rewritten:
        where = f"Return-Path: {rewritten[0].value}" if rewritten else f"for <{srs[0].hop.for_}> at hop {srs[0].index}"
        out.append(Finding("forwarded", srs[0].index if srs else None, f"the envelope sender was rewritten with SRS "
                           f"({where}): a forwarder re-sent the message under its own domain"))
    seals = by_name.get("arc-seal", [])
    if seals:
        out.append(Finding("forwarded", None, f"{len(seals)} ARC set(s) present (ARC-Seal headers): intermediaries "
                           "re-sent the message and recorded the authentication results they saw"))
    return out


def _list_name(by_name: dict[str, list[Field]], lists: list[tuple[str, str]]) -> str:
    """The list as a person knows it: the List-Id as written, else the list's address."""
    for f in by_name.get("list-id", [])[:1]:
        return f.value
    return f"<{lists[0][1]}>" if lists else "?"


def _dkim_findings(
    timed: list[TimedHop],
    by_name: dict[str, list[Field]],
    results: list[AuthResult],
    arc: list[AuthResult],
    body: bytes | None,
) -> list[Finding]:
    out: list[Finding] = []
    hop = len(timed) or None
    if body is not None:
        for f in by_name.get("dkim-signature", []):
            check = check_body_hash(f.value, body)
            if check is not None and not check.ok:
                cut = f" of the first {check.length} bytes (l=)" if check.length is not None else ""
                out.append(Finding("dkim_body_modified", hop, f"the body no longer matches the DKIM body hash{cut} "
                                   f"signed by d={check.domain} s={check.selector} ({check.canonicalization}): "
                                   f"a server after the signer changed the content (bh={check.expected}, now "
                                   f"{check.computed})"))
        if out:
            return out
    for r in results:
        if r.method != "dkim" or r.result != "fail":
            continue
        earlier = next((a for a in arc if a.method == "dkim" and a.result == "pass" and a.domain == r.domain), None)
        if body_hash_failed(r) or earlier:
            seen = f"; {earlier.authserv_id} had recorded dkim=pass (ARC i={earlier.instance})" if earlier else ""
            out.append(Finding("dkim_body_modified", hop, f"DKIM for d={r.domain or '?'} failed at {r.authserv_id} "
                               f"({r.reason or 'no reason given'}): the content changed on the way{seen}"))
    return out
