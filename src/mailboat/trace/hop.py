"""The `Hop` value, and the readings both parsing paths share: the from clause by dialect
(reference/received-grammar.md §1.3) and TLS from evidence (§4 "Reader" 6, RFC 3848 with-types).

`parse.py` (the general tokenizer) and `fastpath.py` (one regex for well-formed headers) both end
here, so the two paths cannot disagree on what a comment or a with-type means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

_C0 = r"(?:[^()\\]++|\\.)*+"
_C1 = rf"\((?:[^()\\]++|\\.|\({_C0}\))*+\)"
_COMMENT_RE = rf"\((?:[^()\\]++|\\.|{_C1})*+\)"  # three levels of nesting in one match
# One token per match, classified by its first character: a word (``<...>`` and ``[...]`` kept
# whole), a balanced comment, ";", a quoted string, or a lone bracket. (Possessive quantifiers:
# each position has at most one applicable alternative, so they change speed, not matches.)
_WORD_RE = r"(?:[^\s()\";\\<\[]++|\\.|<[^<>()]*+>|\[[^\[\]()\s]*+\])++"
TOKEN = re.compile(
    rf"{_WORD_RE}|{_COMMENT_RE}|;|\"(?:[^\"\\]++|\\.)*+\"?|[<\[\\()]",
    re.S,
)
IP = r"(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]*:[0-9A-Fa-f:.]*(?:%\w+)?)"
_IPV4_OR_6 = re.compile(rf"\[?(?:IPv6:)?({IP})\]?\Z", re.I)
# Postfix/Sendmail/Gmail/mailboat TCP-info: [ident@]rdns [IP] [(may be forged)]
# (written for speed as "(\S++)": the name loses one final dot in read_from, as "(\S+?)\.?" would)
# (no re.I, which is slow: "IPv6" spelled with every letter re.I would accept, dotted and dotless i included)
TCP_INFO = re.compile(rf"(?:[^\s@\[\]]++@)?(\S++)\s+\[(?:[Ii\u0130\u0131][Pp][Vv]6:)?({IP})\](?::\d+)?")
# Exim: [IP]:port helo=HELO, or port=N helo=HELO (the IP then is the from word)
_EXIM = re.compile(rf"(?:\[(?:IPv6:)?({IP})\](:\d+)?)?\s*(?:port=\d+)?\s*(?:helo=(\S+))?\s*\Z", re.I)
_QMAIL_HELO = re.compile(r"(?:HELO|EHLO)\s+(\S+)\Z", re.I)
# "(IP)", "(ident@IP)", Yahoo's "(user@IP with login)" (or "with plain"), "(user@domain@IP)"
_IDENT_IP = re.compile(rf"(?:[^\s@]+@)*\[?(?:IPv6:)?({IP})\]?(?:\s+with\s+(?:login|plain))?\Z", re.I)
# The address written as a word after the from word (no parentheses): "[IP]" (fetchmail, IMail,
# MDaemon, AltaVista), after "user@host" (Novell NetMail), or "- IP" (old Microsoft SMTPSVC)
_BRACKETED = re.compile(rf"\[(?:IPv6:)?({IP})\]\Z", re.I)
_BARE = re.compile(rf"({IP})\Z")
# qmail's own stamp when it knows the peer: "(qmail 1 messnum 2 invoked from network[IP/rDNS])"
QMAIL_NETWORK = re.compile(rf"invoked from network\[({IP})(?:/([^\]\s]*))?\]")
_NESTED = re.compile(r"\([^()]*\)")
# (?<![\w.-])(?:TLS|SSL)(?:v?\d(?:[._]\d)?)?(?![\w.-])|\bcipher[=\s]|Google Transport Security, spelled
# so that every alternative starts with a literal (the lookbehinds moved after it): the regex engine
# then skips to the next T, S, c or G instead of trying every position.
_TLS_SUFFIX = r"(?:v?\d(?:[._]\d)?)?(?![\w.-])"
TLS_EVIDENCE = re.compile(
    rf"T(?<![\w.-]T)LS{_TLS_SUFFIX}|S(?<![\w.-]S)SL{_TLS_SUFFIX}|c(?<!\wc)ipher[=\s]|Google Transport Security"
)
_REGISTERED = re.compile(r"(UTF8SMTP|UTF8LMTP|ESMTP|LMTP|SMTP)(S?)(A?)\Z", re.I)
UNKNOWN = frozenset(("unknown", "<unknown>", "[unknown]"))
# A from or by clause is there but names no host or address ("from unknown;", "by;"): an
# incomplete hop must say why (tests/trace/test_trace_properties.py).
NO_HOST = "no host or address in the 'from' or 'by' clause"


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


class Building:
    """Hop's slot layout without its frozen ``__setattr__``: `make_hop` fills one of these with
    plain attribute stores, then makes it a Hop by assigning ``__class__`` (allowed between
    classes of the same slot layout). The frozen dataclass's own ``__init__`` goes through
    ``object.__setattr__`` 16 times and costs several times more; the result here is an ordinary,
    equal, frozen Hop (tests/trace/test_fast_path_generated.py checks it against ``Hop(...)``).
    """

    __slots__ = Hop.__slots__

    def __init__(self, raw, helo, rdns, ip, by, with_, tls, evidence, id_, for_, via, ts, date_text, warnings,
                 extras, comments):  # fmt: skip
        self.raw = raw
        self.from_helo = helo
        self.from_rdns = rdns
        self.from_ip = ip
        self.by_host = by
        self.with_protocol = with_
        self.tls = tls
        self.tls_evidence = evidence
        self.id = id_
        self.for_ = for_
        self.via = via
        self.timestamp = ts
        self.date_text = date_text
        self.warnings = warnings
        self.extras = extras
        self.comments = comments


def make_hop(raw, helo, rdns, ip, by, with_, tls, evidence, id_, for_, via, ts, date_text, warnings, extras,
             comments, *, _building=Building, _hop=Hop):  # fmt: skip
    """`Hop(...)` positionally, several times cheaper (see `Building`)."""
    hop = _building(raw, helo, rdns, ip, by, with_, tls, evidence, id_, for_, via, ts, date_text, warnings, extras,
                    comments)
    hop.__class__ = _hop
    return hop


def one_space(comment: str) -> str:
    """A comment with each run of FWS made one space (RFC 5322 §3.2.2).

    Same result as ``re.sub(r"\\s+", " ", comment)`` (str.split splits on exactly what ``\\s``
    matches, and a comment starts with "(" and ends with ")"), several times faster.
    """
    if "\t" in comment or "  " in comment:
        return " ".join(comment.split())
    return comment


def as_ip(token: str) -> str | None:
    m = _IPV4_OR_6.match(token)
    if m is None or (":" not in m.group(1) and "." not in m.group(1)):
        return None
    return m.group(1)


def read_from(
    words: list[str], comments: list[str], text: str, warnings: list[str]
) -> tuple[str | None, str | None, str | None]:
    """(helo, rdns, ip) of the from clause, by dialect (reference/received-grammar.md §1.3)."""
    word = words[0] if words else None
    word_ip_after = None
    if len(words) > 1:
        word_ip_after = _address_words(words)
        if word_ip_after is None:
            warnings.append(f"extra words in the from clause: {' '.join(words[1:])[:40]!r}")
    if word is not None and word.lower() in UNKNOWN:
        word = None
    helo: str | None = word
    rdns: str | None = None
    ip: str | None = None
    word_is_rdns = False
    for comment in comments:
        inner = comment[1:-1].strip()
        if "(" in inner:
            if "may be forged" in inner:
                warnings.append("the receiver noted the reverse DNS may be forged")
            inner = _NESTED.sub(" ", inner).strip()
        if not inner:
            continue
        # Each reading below is tried only when the text it needs is there (TCP-info and Exim's
        # [IP] need a "[", qmail's "HELO x"/"EHLO x" an "lo" after two letters, Exim's helo= a
        # "helo="; re.I folds nothing else to these letters): the same results, without running
        # four regexes over every comment.
        bracket = "[" in inner
        if ip is None and bracket and "helo=" not in inner:
            m = TCP_INFO.match(inner)
            if m:
                name = m.group(1)
                if name[-1] == "." and len(name) > 1:
                    name = name[:-1]
                rdns = None if name.lower() in UNKNOWN else name
                ip = m.group(2)
                continue
        if inner[2:4].lower() == "lo":
            m = _QMAIL_HELO.match(inner)
            if m:
                helo, word_is_rdns = m.group(1), True
                continue
        if bracket or inner.startswith("port=") or "helo=" in inner.lower():
            m = _EXIM.match(inner)
            if m and (m.group(2) or m.group(3) or inner.startswith("port=") or ("(Exim" in text and m.group(1))):
                ip = m.group(1) or ip
                helo = m.group(3) or word
                word_is_rdns = True
                continue
        if ip is None:
            m = _IDENT_IP.match(inner)
            if m and ("." in m.group(1) or ":" in m.group(1)):
                ip = m.group(1)
                continue
    if ip is None:
        ip = word_ip_after
    if word is not None and word_is_rdns:
        word_ip = as_ip(word)
        if word_ip is not None:
            ip = ip or word_ip
        else:
            rdns = word.rstrip(".")
    elif ip is None and word is not None:
        word_ip = as_ip(word)
        if word_ip is not None:  # "from 192.0.2.1 by ..." (Yahoo, webmail): an address, no HELO
            ip, helo = word_ip, None
    return helo, rdns, ip


def _address_words(words: list[str]) -> str | None:
    """The address in the words after the from word, when they are ``[IP]``, ``user@host [IP]``
    or ``- IP`` (and nothing else); else None."""
    if len(words) == 2:
        m = _BRACKETED.match(words[1])
    elif len(words) == 3 and words[1] == "-":
        m = _BARE.match(words[2])
    elif len(words) == 3 and "@" in words[1] and words[1][0] not in "[<":
        m = _BRACKETED.match(words[2])
    else:
        return None
    return m.group(1) if m is not None and ("." in m.group(1) or ":" in m.group(1)) else None


def qmail_network(comments: list[str]) -> tuple[str | None, str | None]:
    """(rdns, ip) from qmail's "(qmail N invoked from network[IP/rDNS])", else (None, None)."""
    for comment in comments:
        if "network[" in comment:
            m = QMAIL_NETWORK.search(comment)
            if m is not None and ("." in m.group(1) or ":" in m.group(1)):
                rdns = m.group(2) or None
                return (None if rdns is None or rdns.lower() in UNKNOWN else rdns), m.group(1)
    return None, None


def inert_after_tcp_info(comment: str) -> bool:
    """Whether `read_from`, once a TCP-info comment has given the IP, learns nothing from this
    later comment of the from clause (Postfix's "(using TLSv1.3 ...)", "(Authenticated sender:
    ...)").

    With the IP known, only the qmail ``HELO x`` and the Exim ``[IP]:port helo=x`` / ``port=N``
    readings, or a nested "may be forged", can still change the result; each needs one of the
    substrings tested here (re.I folds no other character to h, e, l, o, p, r or t, and removing
    nested comments only inserts spaces, which cannot create them).
    """
    if "[" in comment or "may be forged" in comment:
        return False
    low = comment.lower()
    return "helo" not in low and "ehlo" not in low and "port=" not in low


def read_tls(tls_words: str | None, comments: list[str], protocol: str | None) -> tuple[bool | None, str | None]:
    """TLS from evidence: tls clause, then a version/cipher comment, then the with-type's S."""
    if tls_words is not None:
        return True, f"tls {tls_words}"
    if comments:
        # TLS_EVIDENCE is case-sensitive and cannot match without one of these substrings; and
        # since each comment starts with "(" and ends with ")", no match spans two of them.
        joined = "".join(comments) if len(comments) > 1 else comments[0]
        if "TLS" in joined or "SSL" in joined or "cipher" in joined or "Google Transport Security" in joined:
            for comment in comments:
                if TLS_EVIDENCE.search(comment):
                    return True, comment[1:-1].strip()
    if protocol:
        return protocol_tls(protocol)
    return None, None


def protocol_tls(protocol: str) -> tuple[bool | None, str | None]:
    """What the first word of a with-type says about TLS: "ESMTPS" → (True, "with ESMTPS")."""
    word = protocol.split(" ", 1)[0]
    if word in PROTOCOL_TLS:
        return PROTOCOL_TLS[word]
    m = _REGISTERED.match(word)
    if m:
        result: tuple[bool | None, str | None] = (bool(m.group(2)), f"with {word}")
    elif word.upper() == "HTTPS":
        result = (True, f"with {word}")
    else:
        result = (None, None)
    if len(PROTOCOL_TLS) < 1024:
        PROTOCOL_TLS[word] = result
    return result


# The protocol_tls answers seen so far, keyed on the with-type's first word (a table of words such
# as "ESMTPS", bounded; never keyed on a whole header).
PROTOCOL_TLS: dict[str, tuple[bool | None, str | None]] = {}
