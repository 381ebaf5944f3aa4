"""Writing our own Received: header (RFC 5321 §4.4, with-types of RFC 3848 and RFC 6531).

The header is built from facts the session driver knows (HELO, verified reverse DNS, IP, TLS,
AUTH, SMTPUTF8) and is prepended to the message bytes; the message itself is never re-serialised.
Every value that came from the client or from DNS goes through `_clean` first: no CR, LF, NUL
or other control byte can reach a header we write (Exim CVE-2020-28021 class).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import time
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

FOLD_AT = 78
_UNSAFE_TOKEN = re.compile(r"[^A-Za-z0-9.\-_:\[\]]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _clean(value: str, limit: int = 255) -> str:
    """Remove control characters (CR, LF, NUL, ...) and bound the length."""
    return _CONTROL.sub("", value)[:limit]


def sanitize_helo(helo: str) -> str:
    """The HELO argument as it may appear in our header: one token of safe characters.

    A HELO with spaces, parentheses or control bytes could forge structure inside the header, so
    every other character becomes '_' (the trace still shows what was sent, recognisably).
    """
    token = _UNSAFE_TOKEN.sub("_", helo.strip())[:255]
    return token or "unknown"


@functools.lru_cache(maxsize=1024)  # a busy server sees the same clients again and again
def format_ip(ip: str) -> str:
    """An address literal: "192.0.2.1" or "IPv6:2001:db8::1" (RFC 5321 §4.1.3)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return _UNSAFE_TOKEN.sub("_", ip) or "unknown"
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return f"IPv6:{addr.compressed}"
    return str(addr)


def with_protocol(*, esmtp: bool, tls: bool, auth: bool, lmtp: bool = False, smtputf8: bool = False) -> str:
    """The registered `with` keyword: SMTP, ESMTP[S][A], LMTP[S][A], UTF8SMTP[S][A], UTF8LMTP[S][A].

    RFC 3848 defines the S and A suffixes only for ESMTP and LMTP: a session that greeted with
    HELO is "SMTP" even over implicit TLS (the TLS comment still says what was used).
    """
    if lmtp:
        base = "LMTP"
    elif not esmtp:
        return "SMTP"
    else:
        base = "ESMTP"
    if smtputf8:
        base = "UTF8" + ("LMTP" if lmtp else "SMTP")
    return base + ("S" if tls else "") + ("A" if auth else "")


@dataclass(frozen=True, slots=True)
class ReceivedInfo:
    """What one Received header records about one hop into this server."""

    helo: str
    ip: str
    rdns: str | None  # forward-confirmed reverse name, None when unknown
    hostname: str  # our host name (the `by` clause)
    protocol: str  # from with_protocol()
    queue_id: str
    tls_version: str | None = None  # "TLSv1.3"
    tls_cipher: str | None = None  # "TLS_AES_256_GCM_SHA384"
    recipient: str | None = None  # only when the message has exactly one recipient
    at: datetime | None = None  # aware datetime; default now in local time


def _fold(words: list[str], first_prefix: str) -> list[str]:
    """Greedy folding of one clause's words into lines of at most FOLD_AT characters."""
    lines: list[str] = []
    current = first_prefix
    for word in words:
        candidate = f"{current} {word}" if current.strip() else current + word
        if len(candidate) > FOLD_AT and current.strip():
            lines.append(current)
            current = "\t" + word
        else:
            current = candidate
    lines.append(current)
    return lines


_date_cache: tuple[int, str] = (-1, "")


def _date_now() -> str:
    """format_datetime(now in local time), computed once per second: the header's date has a
    resolution of one second, and formatting it cost about a tenth of building the header."""
    global _date_cache
    second = int(time.time())
    if _date_cache[0] != second:
        _date_cache = (second, format_datetime(datetime.fromtimestamp(second).astimezone()))
    return _date_cache[1]


def format_received(info: ReceivedInfo) -> bytes:
    """The complete header field, CRLF-terminated and folded, as UTF-8 bytes.

    Layout (SPEC "The Received header we write"): one clause group per line,
    ``from``, ``by ... with ... id``, the TLS comment, then ``for ...; date``.
    """
    rdns = _UNSAFE_TOKEN.sub("_", _clean(info.rdns)) if info.rdns else "unknown"
    from_words = ["from", sanitize_helo(info.helo), f"({rdns}", f"[{format_ip(info.ip)}])"]
    by_words = ["by", _clean(info.hostname), "(mailboat)", "with", info.protocol, "id", _clean(info.queue_id)]
    lines = _fold(from_words, "Received:")
    lines += _fold(by_words, "\t")
    if info.tls_version:
        cipher = _clean(info.tls_cipher or "unknown").replace(")", "")
        lines += _fold(["(using", _clean(info.tls_version), "with", "cipher", cipher + ")"], "\t")
    date = format_datetime(info.at) if info.at is not None else _date_now()
    last = ["for", f"<{_clean(info.recipient, 512)}>;"] if info.recipient else []
    tail = _fold(last + date.split(" "), "\t") if last else None
    if tail is None:
        # No `for` clause: the date follows the last clause after ";" (RFC 5321 §4.4).
        lines[-1] += ";"
        tail = _fold(date.split(" "), "\t")
    lines += tail
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", "surrogateescape")


def format_local_received(hostname: str, queue_id: str, *, uid: int | None = None,
                          at: datetime | None = None) -> bytes:
    """Our Received header for mail that did not arrive over the network (RFC 5321 §4.4).

    Local submission (`mailboat sendmail`) and our own DSNs have no client and no registered
    `with` type, so, like Postfix (``by host (Postfix, from userid 0) id X; date``), the field has
    only the ``by`` and ``id`` clauses and a comment naming the submitting user when there is one:

        Received: by HOSTNAME (mailboat, from userid UID)
        \tid QUEUEID; DATE
    """
    at = at or datetime.now().astimezone()
    comment = f"(mailboat, from userid {int(uid)})" if uid is not None else "(mailboat)"
    lines = _fold(["by", _clean(hostname), *comment.split(" ")], "Received:")
    lines += _fold(["id", _clean(queue_id) + ";", *format_datetime(at).split(" ")], "\t")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", "surrogateescape")
