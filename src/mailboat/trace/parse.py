"""A tolerant reader of one Received header value → `Hop`.

Grammar: RFC 5321 §4.4 (Stamp = From-domain By-domain Opt-info ";" date-time), RFC 5322 §3.6.7
and §4.5.7 (received-token / obs-received), clause keywords of RFC 3848, RFC 6531 §4.3 and the
IANA "Additional-registered-clauses" (``tls``/``group`` of RFC 8314, ``state`` of RFC 6729,
``PRIORITY`` of RFC 6710). RFC 5321 §3.7.2 asks readers to be "extremely robust", so:

* the value is unfolded, then tokenised by one precompiled regex into comments (balanced, nested,
  ``\\(`` quoted-pairs), quoted strings, ``;`` and words (``<...>`` and ``[...]`` kept whole);
* the date is whatever follows the **last** depth-0 ``;``; without one, a date pattern found in
  the tail (SendGrid writes ``id X 2024-05-14 15:44:18.1 +0000 UTC``) is used instead;
* clauses start at depth-0 keywords in any order; unknown ``atom value`` pairs after a one-word
  clause are kept as extra clauses, comments are kept in order;
* the ``from`` clause is read per dialect (reference/received-grammar.md §1.3): Postfix,
  Sendmail, Gmail and mailboat write ``HELO (rDNS [IP])``; Exim writes ``rDNS ([IP]:port
  helo=HELO)``; qmail and Yahoo ``rDNS (HELO name) (IP)``; Exchange ``HELO (IP)``;
* TLS is judged from evidence in this order (§4 "Reader" 6): the ``tls`` clause, a
  version/cipher comment, then the S of a registered with-type (RFC 3848). An unregistered
  protocol word (``HTTP``, ``local``, ``Microsoft SMTP Server``) says nothing: ``tls`` is None.

`parse_received` never raises: whatever the input, it returns a Hop whose `warnings` say what
could not be understood.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from mailboat.mail.headers import unfold
from mailboat.trace.dates import parse_date

_C0 = r"(?:[^()\\]|\\.)*"
_C1 = rf"\((?:[^()\\]|\\.|\({_C0}\))*\)"
_COMMENT_RE = rf"\((?:[^()\\]|\\.|{_C1})*\)"  # three levels of nesting in one match
# One token per match, classified by its first character: a word (``<...>`` and ``[...]`` kept
# whole), a balanced comment, ";", a quoted string, or a lone bracket.
_TOKEN = re.compile(
    rf"(?:\\.|<[^<>()]*>|\[[^\[\]()\s]*\]|[^\s()\";\\<\[])+|{_COMMENT_RE}|;|\"(?:[^\"\\]|\\.)*\"?|[<\[\\()]",
    re.S,
)
_KEYWORDS = frozenset(("from", "by", "via", "with", "id", "for", "tls", "group", "state", "priority"))
_MULTI_WORD = frozenset(("with", "via"))  # "with Microsoft SMTP Server", "via Frontend Transport"
_EXTRA_KEYWORD = re.compile(r"[A-Za-z][A-Za-z0-9-]*\Z")
_DATE_START = re.compile(
    r"(?:\b(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*\s*,\s*)?\b\d{1,2}\s+"
    r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{2,4}\s+\d{1,2}:\d{2}"
    r"|\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}",
    re.I,
)
_IP = r"(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]*:[0-9A-Fa-f:.]*(?:%\w+)?)"
_IPV4_OR_6 = re.compile(rf"\[?(?:IPv6:)?({_IP})\]?\Z", re.I)
# Postfix/Sendmail/Gmail/mailboat TCP-info: [ident@]rdns [IP] [(may be forged)]
_TCP_INFO = re.compile(rf"(?:[^\s@\[\]]+@)?(\S+?)\.?\s+\[(?:IPv6:)?({_IP})\](?::\d+)?", re.I)
# Exim: [IP]:port helo=HELO, or port=N helo=HELO (the IP then is the from word)
_EXIM = re.compile(rf"(?:\[(?:IPv6:)?({_IP})\](:\d+)?)?\s*(?:port=\d+)?\s*(?:helo=(\S+))?\s*\Z", re.I)
_QMAIL_HELO = re.compile(r"(?:HELO|EHLO)\s+(\S+)\Z", re.I)
_IDENT_IP = re.compile(rf"(?:[^\s@]+@)?\[?(?:IPv6:)?({_IP})\]?\Z", re.I)
_NESTED = re.compile(r"\([^()]*\)")
_TLS_EVIDENCE = re.compile(
    r"(?<![\w.-])(?:TLS|SSL)(?:v?\d(?:[._]\d)?)?(?![\w.-])|\bcipher[=\s]|Google Transport Security"
)
_REGISTERED = re.compile(r"(UTF8SMTP|UTF8LMTP|ESMTP|LMTP|SMTP)(S?)(A?)\Z", re.I)
_SPACES = re.compile(r"\s+")
_UNKNOWN = frozenset(("unknown", "<unknown>", "[unknown]"))


@dataclass(frozen=True, slots=True)
class Hop:
    """One Received header, read. Fields not present in the header are None."""

    raw: str
    from_helo: str | None = None  # the name the client gave in HELO/EHLO
    from_rdns: str | None = None  # reverse DNS of the client as the receiver saw it
    from_ip: str | None = None  # client address from the TCP connection (no "IPv6:" tag)
    by_host: str | None = None  # the receiving server
    with_protocol: str | None = None  # "ESMTPS", "esmtpsa", "Microsoft SMTP Server", "HTTP"
    tls: bool | None = None  # None: the header gives no evidence either way
    tls_evidence: str | None = None  # the text that decided `tls`
    id: str | None = None
    for_: str | None = None  # the recipient, without angle brackets
    via: str | None = None
    timestamp: datetime | None = None  # UTC
    date_text: str | None = None  # the date as written
    warnings: tuple[str, ...] = ()
    extras: tuple[tuple[str, str], ...] = ()  # unknown or extra clauses: ("tls", "TLS_AES_...")
    comments: tuple[str, ...] = ()  # every depth-0 comment, parentheses included, in order


class _Clause:
    __slots__ = ("keyword", "words", "comments")

    def __init__(self, keyword: str) -> None:
        self.keyword = keyword
        self.words: list[str] = []
        self.comments: list[str] = []


def parse_received(value: str | bytes) -> Hop:
    """Read one Received header value (without the ``Received:`` name). Never raises."""
    try:
        return _parse(value)
    except Exception as exc:  # a parser bug must not lose the hop: report it as a warning
        raw = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        return Hop(raw=raw, warnings=(f"internal parser error: {type(exc).__name__}: {exc}",))


def _parse(value: str | bytes) -> Hop:
    text = unfold(value)
    if text[:9].lower() == "received:":
        text = text[9:].lstrip()
    warnings: list[str] = []
    if not text:
        return Hop(raw=text, warnings=("empty Received header",))
    head, date_text = _split_date(text, warnings)
    clauses: dict[str, _Clause] = {}
    extras: list[_Clause] = []
    comments: list[str] = []
    preamble = _Clause("")
    current = preamble
    for tok in _TOKEN.findall(head):
        first = tok[0]
        if first == "(":
            if len(tok) == 1:
                warnings.append("unbalanced '(' ignored")
                continue
            if "\t" in tok or "  " in tok:
                tok = _SPACES.sub(" ", tok)  # RFC 5322 §3.2.2: a run of FWS is one space
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
            if low in _KEYWORDS and (current.words or current.keyword not in _KEYWORDS):
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
        for m in _TOKEN.finditer(text):
            if m.group() == ";":
                last = m.start()
        if last >= 0:
            return text[:last], text[last + 1 :].strip()
    found = None
    for found in _DATE_START.finditer(text):
        pass
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
        helo, rdns, ip = _read_from(clauses["from"], text, warnings)
    by = clauses.get("by")
    by_host = by.words[0] if by and by.words else None
    if by and len(by.words) > 1:
        warnings.append(f"extra words after 'by {by_host}': {' '.join(by.words[1:])[:40]!r}")
    if "from" not in clauses and by is None:
        warnings.append("no 'from' or 'by' clause")
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
    tls, evidence = _read_tls(clauses, comments, protocol)
    timestamp = None
    if date_text is not None:
        result = parse_date(date_text)
        timestamp = result.value
        warnings.extend(result.warnings)
    return Hop(
        raw=text,
        from_helo=helo,
        from_rdns=rdns,
        from_ip=ip,
        by_host=by_host,
        with_protocol=protocol,
        tls=tls,
        tls_evidence=evidence,
        id=hop_id,
        for_=rcpt,
        via=" ".join(via.words) if via and via.words else None,
        timestamp=timestamp,
        date_text=date_text,
        warnings=tuple(dict.fromkeys(warnings)),
        extras=tuple(extra_pairs),
        comments=tuple(comments),
    )


_FIELDS = frozenset(("from", "by", "via", "with", "id", "for"))


def _as_ip(token: str) -> str | None:
    m = _IPV4_OR_6.match(token)
    if m is None or (":" not in m.group(1) and "." not in m.group(1)):
        return None
    return m.group(1)


def _read_from(clause: _Clause, text: str, warnings: list[str]) -> tuple[str | None, str | None, str | None]:
    """(helo, rdns, ip) of the from clause, by dialect (reference/received-grammar.md §1.3)."""
    word = clause.words[0] if clause.words else None
    if len(clause.words) > 1:
        warnings.append(f"extra words in the from clause: {' '.join(clause.words[1:])[:40]!r}")
    if word is not None and word.lower() in _UNKNOWN:
        word = None
    helo: str | None = word
    rdns: str | None = None
    ip: str | None = None
    word_is_rdns = False
    for comment in clause.comments:
        inner = comment[1:-1].strip()
        if "(" in inner:
            if "may be forged" in inner:
                warnings.append("the receiver noted the reverse DNS may be forged")
            inner = _NESTED.sub(" ", inner).strip()
        if not inner:
            continue
        m = _TCP_INFO.match(inner)
        if m and ip is None and "helo=" not in inner:
            name = m.group(1)
            rdns = None if name.lower() in _UNKNOWN else name
            ip = m.group(2)
            continue
        m = _QMAIL_HELO.match(inner)
        if m:
            helo, word_is_rdns = m.group(1), True
            continue
        m = _EXIM.match(inner)
        if m and (m.group(2) or m.group(3) or inner.startswith("port=") or ("(Exim" in text and m.group(1))):
            ip = m.group(1) or ip
            helo = m.group(3) or word
            word_is_rdns = True
            continue
        m = _IDENT_IP.match(inner)
        if m and ip is None and ("." in m.group(1) or ":" in m.group(1)):
            ip = m.group(1)
            continue
        if inner.lower() in _UNKNOWN:
            continue
    if word is not None and word_is_rdns:
        word_ip = _as_ip(word)
        if word_ip is not None:
            ip = ip or word_ip
        else:
            rdns = word.rstrip(".")
    elif ip is None and word is not None:
        word_ip = _as_ip(word)
        if word_ip is not None:  # "from 192.0.2.1 by ..." (Yahoo, webmail): an address, no HELO
            ip, helo = word_ip, None
    return helo, rdns, ip


def _read_tls(clauses: dict[str, _Clause], comments: list[str], protocol: str | None) -> tuple[bool | None, str | None]:
    """TLS from evidence: tls clause, then a version/cipher comment, then the with-type's S."""
    tls = clauses.get("tls")
    if tls is not None and tls.words:
        return True, f"tls {' '.join(tls.words)}"
    for comment in comments:
        if _TLS_EVIDENCE.search(comment):
            return True, comment[1:-1].strip()
    if protocol:
        word = protocol.split(" ", 1)[0]
        m = _REGISTERED.match(word)
        if m:
            return bool(m.group(2)), f"with {word}"
        if word.upper() == "HTTPS":
            return True, f"with {word}"
    return None, None
