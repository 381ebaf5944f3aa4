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
hash, RFC 6376 §3.7), ``unparsable``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from mailboat.mail.headers import Field, parse_fields, split_message
from mailboat.trace.auth import AuthResult, body_hash_failed, check_body_hash, parse_auth_results
from mailboat.trace.parse import Hop, parse_received

LONG_DELAY_SECONDS = 600.0  # ten minutes between two stamps is worth a look
CLOCK_SKEW_TOLERANCE = 60.0  # small negative delays are normal between unsynchronised clocks


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
    """Analyse a whole message (or a header block): Received chain plus authentication headers."""
    header, body = split_message(data)
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
    stamps = [t.hop.timestamp for t in timed if t.hop.timestamp is not None]
    total = (stamps[-1] - stamps[0]).total_seconds() if len(stamps) >= 2 else None
    ahead = _clocks_ahead(timed)
    positive = [t for t in timed if t.delay_seconds is not None and t.delay_seconds > 0 and t.index not in ahead]
    slowest = max(positive, key=lambda t: t.delay_seconds or 0.0, default=None)
    queue = None
    if slowest is not None:
        before = timed[slowest.index - 2].hop
        queue = before.by_host or host_name(slowest.hop)
    findings = _hop_findings(timed, ahead, now or datetime.now(timezone.utc))
    findings += _message_findings(timed, list(fields), body)
    return Trace(tuple(timed), total, slowest.index if slowest else None, queue, tuple(findings))


def _clocks_ahead(timed: list[TimedHop]) -> dict[int, float]:
    """Hops whose clock runs ahead: a long "delay" into them that the next hop takes back.

    +2 h then -2 h is not a two-hour queue but one server stamping two hours in the future.
    Maps the hop index to how far ahead its clock seems to be (seconds).
    """
    ahead: dict[int, float] = {}
    for a, b in zip(timed, timed[1:]):
        da, db = a.delay_seconds, b.delay_seconds
        if da is None or db is None:
            continue
        if da >= LONG_DELAY_SECONDS and db < -CLOCK_SKEW_TOLERANCE and abs(da + db) < LONG_DELAY_SECONDS:
            ahead[a.index] = -db
    return ahead


def _hop_findings(timed: list[TimedHop], ahead: dict[int, float], now: datetime) -> list[Finding]:
    out: list[Finding] = []
    for t in timed:
        if t.index in ahead:
            nxt = timed[t.index].hop.by_host or "the next server"
            out.append(Finding("clock_skew", t.index, f"the clock of {t.hop.by_host or 'hop ' + str(t.index)} "
                               f"(hop {t.index}) is about {duration(ahead[t.index])} ahead: it stamped the message "
                               f"{duration(t.delay_seconds or 0)} after the previous hop, and {nxt} (hop "
                               f"{t.index + 1}) stamped it {duration(ahead[t.index])} earlier again"))
        hop, by = t.hop, t.hop.by_host or "an unnamed server"
        if hop.timestamp is None:
            why = next((w for w in hop.warnings if "date" in w), "no date")
            out.append(Finding("unparsable", t.index, f"hop {t.index} ({by}): the date could not be read ({why}); "
                               "the delays before and after it are unknown"))
        elif not (hop.by_host or hop.from_helo or hop.from_ip or hop.from_rdns) and hop.warnings:
            out.append(Finding("unparsable", t.index, f"hop {t.index}: no from or by clause could be read "
                               f"({'; '.join(hop.warnings)})"))
        explained = t.index in ahead or t.index - 1 in ahead
        if t.delay_seconds is not None and t.index > 1 and not explained:
            prev = timed[t.index - 2].hop
            prev_by = prev.by_host or host_name(hop)
            if t.delay_seconds >= LONG_DELAY_SECONDS:
                out.append(Finding("long_delay", t.index, f"{duration(t.delay_seconds)} passed between {prev_by} "
                                   f"(hop {t.index - 1}) and {by} (hop {t.index}): the message waited in the queue "
                                   f"of {prev_by}"))
            elif t.delay_seconds < -CLOCK_SKEW_TOLERANCE:
                out.append(Finding("clock_skew", t.index, f"{by} (hop {t.index}) stamped the message "
                                   f"{duration(t.delay_seconds)} before {prev_by} (hop {t.index - 1}) handed it "
                                   "over: one of the two clocks is wrong, so this delay is not real"))
        if hop.timestamp is not None and (hop.timestamp - now).total_seconds() > CLOCK_SKEW_TOLERANCE:
            future = duration((hop.timestamp - now).total_seconds())
            out.append(Finding("clock_skew", t.index, f"{by} (hop {t.index}) stamped a time {future} in the future: "
                               "its clock is ahead"))
        if hop.tls is False and hop.from_ip and not _is_loopback(hop.from_ip):
            out.append(Finding("no_tls", t.index, f"hop {t.index}: {host_name(hop)} [{hop.from_ip}] sent the message "
                               f"to {by} without TLS ({hop.tls_evidence})"))
    return out


def _is_loopback(ip: str) -> bool:
    return ip.startswith("127.") or ip in ("::1", "0:0:0:0:0:0:0:1")


def _message_findings(timed: list[TimedHop], fields: list[Field], body: bytes | None) -> list[Finding]:
    out: list[Finding] = []
    by_name: dict[str, list[Field]] = {}
    for f in fields:
        by_name.setdefault(f.name.lower(), []).append(f)
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
        via = f"{host_name(entry.hop)} [{entry.hop.from_ip}]" if entry else "a relay"
        earlier = next((r for r in arc if r.method == "spf" and r.result == "pass"), None)
        if earlier or forwarded:
            seen = f"; {earlier.authserv_id} had recorded spf=pass (ARC i={earlier.instance})" if earlier else ""
            where = entry.index if entry else None
            out.append(Finding("spf_broken_by_forward", where, f"SPF {spf.result} at {spf.authserv_id} "
                               f"for {spf.domain or 'the sender'}: the message arrived from {via}, a forwarder "
                               f"that the sender's SPF record does not list{seen}"))
    out += _dkim_findings(timed, by_name, results, arc, body)
    return out


def _entry_hop(timed: list[TimedHop], authserv_id: str) -> TimedHop | None:
    """The hop where the checking server received the message from outside (SPF checks that IP)."""
    outside = [t for t in timed if t.hop.from_ip and not _is_loopback(t.hop.from_ip)]
    named = [t for t in outside if (t.hop.by_host or "").lower() == authserv_id.lower()]
    if named:
        return named[0]
    return outside[-1] if outside else None


def _forwarding(timed: list[TimedHop], by_name: dict[str, list[Field]]) -> list[Finding]:
    out: list[Finding] = []
    prev_for: str | None = None
    for t in timed:
        rcpt = t.hop.for_
        if rcpt and prev_for and rcpt.lower() != prev_for.lower():
            by = t.hop.by_host or "the next server"
            out.append(Finding("forwarded", t.index, f"the recipient changed from {prev_for} to {rcpt} at hop "
                               f"{t.index} ({by}): the message was forwarded"))
        prev_for = rcpt or prev_for
    for f in by_name.get("list-id", [])[:1]:
        out.append(Finding("forwarded", None, f"the message went through the mailing list {f.value}"))
    srs = [t for t in timed if t.hop.for_ and "srs0=" in t.hop.for_.lower()]
    return_path = by_name.get("return-path", [])
    if srs or any("srs0=" in f.value.lower() or "srs1=" in f.value.lower() for f in return_path):
        where = return_path[0].value if return_path else srs[0].hop.for_
        out.append(Finding("forwarded", srs[0].index if srs else None, f"the envelope sender was rewritten with SRS "
                           f"({where}): a forwarder re-sent the message under its own domain"))
    seals = by_name.get("arc-seal", [])
    if seals:
        out.append(Finding("forwarded", None, f"{len(seals)} ARC set(s) present: intermediaries re-sent the message "
                           "and recorded the authentication results they saw"))
    return out


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
