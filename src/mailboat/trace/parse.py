"""A tolerant reader of one Received header value → `Hop`.

Grammar: RFC 5321 §4.4 (Stamp = From-domain By-domain Opt-info ";" date-time), RFC 5322 §3.6.7
and §4.5.7 (received-token / obs-received), clause keywords of RFC 3848, RFC 6531 §4.3 and the
IANA "Additional-registered-clauses" (``tls``/``group`` of RFC 8314, ``state`` of RFC 6729,
``PRIORITY`` of RFC 6710). RFC 5321 §3.7.2 asks readers to be "extremely robust", so:

* the value is unfolded, then tokenised by one precompiled regex into comments (balanced, nested,
  ``\\(`` quoted-pairs), quoted strings, ``;`` and words (``<...>`` and ``[...]`` kept whole);
* the date is whatever follows the **last** depth-0 ``;``; without one, a date pattern found in
  the tail (SendGrid writes ``id X 2024-05-14 15:44:18.1 +0000 UTC``) is used instead;
* clauses start at depth-0 keywords in any order, the six of RFC 5321 even right after an empty
  clause (``from ([IP]) by``, ``by (Postfix) with``, ``with id``); unknown ``atom value`` pairs
  after a one-word clause are kept as extra clauses, comments are kept in order;
* the ``from`` clause is read per dialect (reference/received-grammar.md §1.3): Postfix,
  Sendmail, Gmail and mailboat write ``HELO (rDNS [IP])``; Exim writes ``rDNS ([IP]:port
  helo=HELO)``; qmail and Yahoo ``rDNS (HELO name) (IP)`` or ``(user@IP with login)``; Exchange
  ``HELO (IP)``; fetchmail, IMail, MDaemon, Proxy+ ``HELO [IP]`` (NetMail ``HELO user@host
  [IP]``), old Exchange ``HELO - IP``; a qmail stamp with no from clause may name the peer as
  ``(qmail N invoked from network[IP/rDNS])``;
* TLS is judged from evidence in this order (§4 "Reader" 6): the ``tls`` clause, a
  version/cipher comment, then the S of a registered with-type (RFC 3848). An unregistered
  protocol word (``HTTP``, ``local``, ``Microsoft SMTP Server``) says nothing: ``tls`` is None.

`parse_received` never raises: whatever the input, it returns a Hop whose `warnings` say what
could not be understood.

Speed (bench/trace_bench.py): when the optional native reader is built (`make native`: the
`mailboat._native` extension, safe Rust, native/), it reads every ASCII header into a Hop. It is
a port of the general path below, and tests/trace/test_native.py checks it gives the same Hop,
field for field. Without it (or with MAILBOAT_NATIVE=0 in the environment), most headers are read by one
compiled regex (fastpath.py) that accepts only the well-formed shape and only when it tokenises
exactly as the general tokenizer would; anything else takes the general path below. Both paths
read the from clause and TLS with the same functions (hop.py), and tests/trace check that they
give identical hops.
"""

from __future__ import annotations

import os
import re
from datetime import datetime

from mailboat.mail.headers import unfold
from mailboat.trace.dates import date_value
from mailboat.trace.fastpath import FAST, FAST_ASCII, KEYWORDS, POSTFIX, read_fast, read_postfix
from mailboat.trace.hop import (
    NO_HOST,
    TOKEN,
    Building,
    Hop,
    make_hop,
    one_space,
    qmail_network,
    read_from,
    read_tls,
)

__all__ = ["Hop", "parse_received"]

try:
    from mailboat import _native as _native_module  # type: ignore[attr-defined]

    _native_module.configure(Building, Hop)  # it then builds the Hop as make_hop does
except (ImportError, AttributeError):  # not built (or an older build): the Python reader does everything
    _native = None
else:
    _native = _native_module.parse_received
if os.environ.get("MAILBOAT_NATIVE") == "0":
    _native = None
NATIVE = _native is not None  # whether parse_received uses the native reader for ASCII text

_MULTI_WORD = frozenset(("with", "via"))  # "with Microsoft SMTP Server", "via Frontend Transport"
_EXTRA_KEYWORD = re.compile(r"[A-Za-z][A-Za-z0-9-]*\Z")
# A date in the tail (no ';'). Written without re.I, which is slow here, by spelling out what re.I
# accepts (it also takes the dotless/dotted i, the long s and the Kelvin sign); the lookahead
# (every match starts with a digit or a weekday's first letter) lets most positions fail at once.
_I_FOLD = {"i": "Ii\u0130\u0131", "k": "Kk\u212a", "s": "Ss\u017f"}


def _ci(word: str) -> str:
    return "".join(f"[{_I_FOLD.get(c, c.upper() + c)}]" for c in word)


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_AZ = "[A-Za-z\u017f\u212a\u0130\u0131]"  # [a-z] under re.I
_DATE_START = re.compile(
    rf"(?=[\dMTWFSmtwfs\u017f])(?:"
    rf"(?:\b(?:{'|'.join(map(_ci, _WEEKDAYS))}){_AZ}*\s*,\s*)?\b\d{{1,2}}\s+"
    rf"(?:{'|'.join(map(_ci, _MONTH_NAMES))}){_AZ}*\.?\s+"
    rf"\d{{2,4}}\s+\d{{1,2}}:\d{{2}}"
    rf"|\b\d{{4}}-\d{{2}}-\d{{2}}[Tt ]\d{{2}}:\d{{2}})"
)


class _Clause:
    __slots__ = ("keyword", "words", "comments")

    def __init__(self, keyword: str) -> None:
        self.keyword = keyword
        self.words: list[str] = []
        self.comments: list[str] = []


def _unfold(value: str | bytes) -> str:
    """`unfold`, with a shortcut for the usual case: every CR and LF is part of a CRLF + WSP fold.

    Then unfold's replacements amount to deleting each CRLF, which is what the two replacements
    below do; anything else (a bare CR or LF, CRLF not followed by WSP, bytes) goes to `unfold`.
    """
    if type(value) is str:
        folded = value.replace("\r\n\t", "\t").replace("\r\n ", " ")
        if "\r" not in folded and "\n" not in folded:
            return folded.strip()
    return unfold(value)


def parse_received(value: str | bytes) -> Hop:
    """Read one Received header value (without the ``Received:`` name). Never raises."""
    try:
        if _native is not None and type(value) is str:
            hop = _native(value)  # None for text that is not ASCII or has CR/LF outside folds
            if hop is not None:
                return hop
        if type(value) is str:  # _unfold, inlined: this runs for every header
            text = value.replace("\r\n\t", "\t").replace("\r\n ", " ")
            text = unfold(value) if "\r" in text or "\n" in text else text.strip()
        else:
            text = unfold(value)
        if text[8:9] == ":" and text[:9].lower() == "received:":
            text = text[9:].lstrip()
        if "\\" not in text and ";" in text:  # the fast regexes need a ";" and no quoted-pair
            if text.isascii():
                if text[:5] == "from " and " with " in text:
                    m = POSTFIX.match(text)
                    if m is not None:
                        hop = read_postfix(text, m)
                        if hop is not None:
                            return hop
                m = FAST_ASCII.match(text)
            else:
                m = FAST.match(text)
            if m is not None:
                hop = read_fast(text, m)
                if hop is not None:
                    return hop
        return _parse(text)
    except Exception as exc:  # a parser bug must not lose the hop: report it as a warning
        raw = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        return Hop(raw=raw, warnings=(f"internal parser error: {type(exc).__name__}: {exc}",))


def _general(value: str | bytes) -> Hop:
    """`parse_received` without the fast path (tests compare the two)."""
    try:
        text = _unfold(value)
        if text[:9].lower() == "received:":
            text = text[9:].lstrip()
        return _parse(text)
    except Exception as exc:  # noqa: BLE001 - as in parse_received
        raw = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        return Hop(raw=raw, warnings=(f"internal parser error: {type(exc).__name__}: {exc}",))


def _parse(text: str) -> Hop:
    warnings: list[str] = []
    if not text:
        return Hop(raw=text, warnings=("empty Received header",))
    head, date_text = _split_date(text, warnings)
    clauses: dict[str, _Clause] = {}
    extras: list[_Clause] = []
    comments: list[str] = []
    preamble = _Clause("")
    current = preamble
    for tok in TOKEN.findall(head):
        first = tok[0]
        if first == "(":
            if len(tok) == 1:
                warnings.append("unbalanced '(' ignored")
                continue
            tok = one_space(tok)
            current.comments.append(tok)
            comments.append(tok)
        elif first == ")":
            warnings.append("stray ')' ignored")
        elif first == ";":
            warnings.append("more than one ';' outside comments; the date is after the last")
        elif first == '"':
            if not tok.endswith('"') or len(tok) < 2:
                warnings.append("unterminated quoted string")
            current.words.append(tok)
        else:
            low = tok.lower()
            # the six clauses of RFC 5321 start even right after an empty one ("from ([IP]) by",
            # "by (Postfix) with", "with id"); a registered one there is a value ("with TLS")
            if low in KEYWORDS and (low in _FIELDS or current.words or current.comments
                                    or current.keyword not in KEYWORDS):
                current = _Clause(low)
                if low in clauses:
                    warnings.append(f"second '{low}' clause kept as an extra clause")
                    extras.append(current)
                else:
                    clauses[low] = current
            elif current.words and current is not preamble and current.keyword not in _MULTI_WORD \
                    and _EXTRA_KEYWORD.match(tok):
                current = _Clause(low)
                extras.append(current)
            else:
                current.words.append(tok)
    if preamble.words:
        warnings.append(f"text before the first clause: {' '.join(preamble.words)[:60]!r}")
    return _build(text, clauses, extras, comments, date_text, warnings)


def _split_date(text: str, warnings: list[str]) -> tuple[str, str | None]:
    """(clauses part, date text): the date follows the last ';' outside comments and quotes."""
    i = text.rfind(";")
    if i >= 0:
        head, tail = text[:i], text[i + 1 :]
        if ("\\" not in head and head.count("(") == head.count(")") and head.count('"') % 2 == 0
                and tail.count(")") <= tail.count("(")):
            return head, tail.strip()
        last = -1  # odd header: let the tokenizer say which ';' is outside comments and quotes
        for m in TOKEN.finditer(text):
            if m.group() == ";":
                last = m.start()
        if last >= 0:
            return text[:last], text[last + 1 :].strip()
    found = None
    if ":" in text:  # every date _DATE_START finds has hour ":" minute
        for match in _DATE_START.finditer(text):  # the last one
            found = match
    if found is not None:
        warnings.append("no ';' before the date")
        return text[: found.start()], text[found.start() :].strip()
    warnings.append("no date (no ';' and no date found)")
    return text, None


def _build(
    text: str,
    clauses: dict[str, _Clause],
    extras: list[_Clause],
    comments: list[str],
    date_text: str | None,
    warnings: list[str],
) -> Hop:
    helo = rdns = ip = None
    if "from" in clauses:
        frm = clauses["from"]
        helo, rdns, ip = read_from(frm.words, frm.comments, text, warnings)
    elif comments and "network[" in text:
        rdns, ip = qmail_network(comments)
    by = clauses.get("by")
    by_host = by.words[0] if by and by.words else None
    if by and len(by.words) > 1:
        warnings.append(f"extra words after 'by {by_host}': {' '.join(by.words[1:])[:40]!r}")
    if by_host is None and helo is None and rdns is None and ip is None:
        warnings.append(NO_HOST if "from" in clauses or by is not None else "no 'from' or 'by' clause")
    with_ = clauses.get("with")
    protocol = " ".join(with_.words) if with_ and with_.words else None
    id_ = clauses.get("id")
    hop_id = id_.words[0] if id_ and id_.words else None
    for_ = clauses.get("for")
    rcpt = " ".join(for_.words) if for_ and for_.words else None
    if rcpt:
        if "," in rcpt:
            warnings.append("several 'for' recipients; the first is kept")
            rcpt = rcpt.split(",")[0].strip()
        rcpt = rcpt.strip("<>") or None
    via = clauses.get("via")
    extra_pairs = [(c.keyword, " ".join(c.words)) for c in extras]
    extra_pairs += [(k, " ".join(c.words)) for k, c in clauses.items() if k not in _FIELDS]
    tls = clauses.get("tls")
    timestamp = None
    if date_text is not None:
        timestamp, date_warnings = date_value(date_text)
        if date_warnings:
            warnings.extend(date_warnings)
    return _finish(text, helo, rdns, ip, by_host, protocol, hop_id, rcpt,
                   " ".join(via.words) if via and via.words else None,
                   " ".join(tls.words) if tls is not None and tls.words else None,
                   tuple(extra_pairs), comments, date_text, timestamp, warnings)


def _finish(
    text: str, helo: str | None, rdns: str | None, ip: str | None, by_host: str | None,
    protocol: str | None, hop_id: str | None, rcpt: str | None, via: str | None, tls_words: str | None,
    extras: tuple[tuple[str, str], ...], comments: list[str], date_text: str | None, timestamp: datetime | None,
    warnings: list[str],
) -> Hop:
    """TLS and the Hop itself (fastpath.read_fast ends the same way, with the same readers)."""
    tls, evidence = read_tls(tls_words, comments, protocol)
    return make_hop(text, helo, rdns, ip, by_host, protocol, tls, evidence, hop_id, rcpt, via, timestamp,
                    date_text, tuple(dict.fromkeys(warnings)) if warnings else (), extras, tuple(comments))


_FIELDS = frozenset(("from", "by", "via", "with", "id", "for"))
