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

Speed (bench/trace_bench.py): most headers are read by one compiled regex (`_FAST`) that accepts
only the well-formed shape ``[(comments)] [from W (c)*] [by W (c)*] [via ...] [with ...] [tls W]
[id W] [via ...] [for W] ; date`` and only when it tokenises exactly as the general tokenizer
would; anything else (a backslash, a quote, a repeated or unusual clause, a second ``;``, odd
brackets) takes the general path. Both paths feed the same `_finish`, and tests/trace check that
they give identical hops.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from mailboat.mail.headers import unfold
from mailboat.trace.dates import FAST_DATE, date_value, fast_fields

_C0 = r"(?:[^()\\]++|\\.)*+"
_C1 = rf"\((?:[^()\\]++|\\.|\({_C0}\))*+\)"
_COMMENT_RE = rf"\((?:[^()\\]++|\\.|{_C1})*+\)"  # three levels of nesting in one match
# One token per match, classified by its first character: a word (``<...>`` and ``[...]`` kept
# whole), a balanced comment, ";", a quoted string, or a lone bracket. (Possessive quantifiers:
# each position has at most one applicable alternative, so they change speed, not matches.)
_WORD_RE = r"(?:[^\s()\";\\<\[]++|\\.|<[^<>()]*+>|\[[^\[\]()\s]*+\])++"
_TOKEN = re.compile(
    rf"{_WORD_RE}|{_COMMENT_RE}|;|\"(?:[^\"\\]++|\\.)*+\"?|[<\[\\()]",
    re.S,
)
_KEYWORDS = frozenset(("from", "by", "via", "with", "id", "for", "tls", "group", "state", "priority"))
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
_IP = r"(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]*:[0-9A-Fa-f:.]*(?:%\w+)?)"
_IPV4_OR_6 = re.compile(rf"\[?(?:IPv6:)?({_IP})\]?\Z", re.I)
# Postfix/Sendmail/Gmail/mailboat TCP-info: [ident@]rdns [IP] [(may be forged)]
# (written for speed as "(\S++)": the name loses one final dot in _read_from, as "(\S+?)\.?" would)
# (no re.I, which is slow: "IPv6" spelled with every letter re.I would accept, dotted and dotless i included)
_TCP_INFO = re.compile(rf"(?:[^\s@\[\]]++@)?(\S++)\s+\[(?:[Ii\u0130\u0131][Pp][Vv]6:)?({_IP})\](?::\d+)?")
# Exim: [IP]:port helo=HELO, or port=N helo=HELO (the IP then is the from word)
_EXIM = re.compile(rf"(?:\[(?:IPv6:)?({_IP})\](:\d+)?)?\s*(?:port=\d+)?\s*(?:helo=(\S+))?\s*\Z", re.I)
_QMAIL_HELO = re.compile(r"(?:HELO|EHLO)\s+(\S+)\Z", re.I)
_IDENT_IP = re.compile(rf"(?:[^\s@]+@)?\[?(?:IPv6:)?({_IP})\]?\Z", re.I)
_NESTED = re.compile(r"\([^()]*\)")
# (?<![\w.-])(?:TLS|SSL)(?:v?\d(?:[._]\d)?)?(?![\w.-])|\bcipher[=\s]|Google Transport Security, spelled
# so that every alternative starts with a literal (the lookbehinds moved after it): the regex engine
# then skips to the next T, S, c or G instead of trying every position.
_TLS_SUFFIX = r"(?:v?\d(?:[._]\d)?)?(?![\w.-])"
_TLS_EVIDENCE = re.compile(
    rf"T(?<![\w.-]T)LS{_TLS_SUFFIX}|S(?<![\w.-]S)SL{_TLS_SUFFIX}|c(?<!\wc)ipher[=\s]|Google Transport Security"
)
_REGISTERED = re.compile(r"(UTF8SMTP|UTF8LMTP|ESMTP|LMTP|SMTP)(S?)(A?)\Z", re.I)
_SPACES = re.compile(r"\s+")
_UNKNOWN = frozenset(("unknown", "<unknown>", "[unknown]"))


def _fast_pattern(ascii_only: bool) -> re.Pattern[str]:
    r"""The well-formed shape in one regex (used only when the text has no backslash).

    Every piece is a token exactly as `_TOKEN` cuts it (same word and comment patterns, all
    possessive), keywords are matched letter by letter as ``tok.lower()`` would (no re.I: it
    would also take the Kelvin sign and the long s) and must be followed by whitespace; a
    multi-word clause (with, via) stops at the next keyword, a one-word clause allows only
    comments after its word. So a match means the general path would build the same clauses.
    The first comment after a one-word clause has its own group (``fromc``), the others a run.

    `ascii_only`: for text where ``str.isascii()``, whitespace is spelled out (exactly the ASCII
    characters ``str.isspace`` and ``\s`` take, \x1c-\x1f included) and digits are [0-9]: the
    same matches on such text, several times faster than Unicode category tests.
    """
    sp = r"\t\n\x0b\x0c\r\x1c-\x1f " if ascii_only else r"\s"
    ws = f"[{sp}]"
    date = FAST_DATE.replace(r"\d", "[0-9]").replace(r"\s", ws) if ascii_only else FAST_DATE

    def kw(word: str) -> str:
        return "".join(f"[{c.upper()}{c}]" for c in word) + f"{ws}+"

    word = rf"(?:[^{sp}()\";\\<\[]++|<[^<>()]*+>|\[[^\[\](){sp}]*+\])++"
    c0 = r"[^()]*+"
    c1 = rf"\((?:[^()]++|\({c0}\))*+\)"
    comment = rf"\((?:[^()]++|{c1})*+\)"
    comments = rf"(?:{ws}*{comment})*+"
    keyword = "(?:" + "|".join("".join(f"[{c.upper()}{c}]" for c in k) for k in sorted(_KEYWORDS)) + ")"
    not_kw = rf"(?!{keyword}(?:[{sp}();]|\Z)){word}"
    multi = rf"{not_kw}(?:{ws}*{comment}|{ws}+{not_kw})*+"

    def one(name: str) -> str:
        return (rf"(?:{kw(name)}(?P<{name}>{word})(?:{ws}*(?P<{name}c>{comment}))?(?P<{name}x>{comments}){ws}*)?")

    return re.compile(
        rf"(?P<pre>(?:{comment}{ws}*)*+)"
        + one("from") + one("by")
        + rf"(?:{kw('via')}(?P<via>{multi}){ws}*)?"
        + rf"(?:{kw('with')}(?P<with>{multi}){ws}*)?"
        + one("tls") + one("id")
        + rf"(?:{kw('via')}(?P<via2>{multi}){ws}*)?"
        + one("for")
        # the date; when it has the canonical form, dates.FAST_DATE's groups are filled as well
        + rf";{ws}*(?P<date>(?:(?={date})|)[^;]*)\Z"
    )


_FAST = _fast_pattern(False)
_FAST_ASCII = _fast_pattern(True)
_FAST_COMMENT = re.compile(r"\((?:[^()]++|\((?:[^()]++|\([^()]*+\))*+\))*+\)")


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


def _hop_builder():  # returns the constructor below
    """`Hop(...)` positionally, without the frozen dataclass's 16 ``object.__setattr__`` calls.

    Sets the same slots through their descriptors: the result is an ordinary, equal, frozen Hop.
    """
    new = object.__new__
    (s_raw, s_helo, s_rdns, s_ip, s_by, s_with, s_tls, s_evidence, s_id, s_for, s_via, s_ts, s_dt,
     s_warn, s_extras, s_comments) = (getattr(Hop, name).__set__ for name in Hop.__slots__)

    def make(raw, helo, rdns, ip, by, with_, tls, evidence, id_, for_, via, ts, dt, warn, extras, comments):
        hop = new(Hop)
        s_raw(hop, raw)
        s_helo(hop, helo)
        s_rdns(hop, rdns)
        s_ip(hop, ip)
        s_by(hop, by)
        s_with(hop, with_)
        s_tls(hop, tls)
        s_evidence(hop, evidence)
        s_id(hop, id_)
        s_for(hop, for_)
        s_via(hop, via)
        s_ts(hop, ts)
        s_dt(hop, dt)
        s_warn(hop, warn)
        s_extras(hop, extras)
        s_comments(hop, comments)
        return hop

    return make


_make_hop = _hop_builder()


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
        text = _unfold(value)
        if text[:9].lower() == "received:":
            text = text[9:].lstrip()
        if "\\" not in text:
            m = (_FAST_ASCII if text.isascii() else _FAST).match(text)
            if m is not None:
                hop = _fast(text, m)
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


def _split_comments(run: str, out: list[str]) -> list[str]:
    """The comments of a run matched by the fast regex (whitespace and comments only), each with
    its runs of FWS made one space, appended to `out`; returns them."""
    if run.count("(") == 1:
        found = [run.strip()]
    else:
        found = _FAST_COMMENT.findall(run)
    for i, tok in enumerate(found):
        if "\t" in tok or "  " in tok:
            found[i] = _SPACES.sub(" ", tok)
    out += found
    return found


def _multi(body: str, comments: list[str]) -> list[str]:
    """Words of a with/via clause body; its comments are appended to `comments`."""
    if "(" not in body and "<" not in body:
        return body.split()
    words = []
    for tok in _TOKEN.findall(body):
        if tok[0] == "(":
            if "\t" in tok or "  " in tok:
                tok = _SPACES.sub(" ", tok)
            comments.append(tok)
        else:
            words.append(tok)
    return words


def _comment(tok: str, comments: list[str]) -> str:
    if "\t" in tok or "  " in tok:
        tok = _SPACES.sub(" ", tok)  # RFC 5322 §3.2.2: a run of FWS is one space
    comments.append(tok)
    return tok


def _fast(text: str, m: re.Match[str]) -> Hop | None:
    """The hop for a `_FAST` match, or None when a clause repeats (the general path warns)."""
    (pre, from_word, fromc, fromx, by_host, byc, byx, via_body, with_body, tls_word, tlsc, tlsx,
     hop_id, idc, idx, via2_body, rcpt, forc, forx, date_text,
     wday, day, mon, year, hour, minute, sec, zone, zone_comment) = m.groups()
    if via_body is not None and via2_body is not None:
        return None
    comments: list[str] = []
    warnings: list[str] = []
    if pre:
        _split_comments(pre, comments)
    helo = rdns = ip = None
    if from_word is not None:
        if fromc is None:
            helo, rdns, ip = _read_from([from_word], [], text, warnings)
        else:
            if "\t" in fromc or "  " in fromc:
                fromc = _SPACES.sub(" ", fromc)
            comments.append(fromc)
            inner = fromc[1:-1].strip()
            tcp = None
            if not fromx and "(" not in inner and "helo=" not in inner:
                tcp = _TCP_INFO.match(inner)
            if tcp is not None:  # the one comment is TCP-info: what _read_from's loop would find
                name = tcp.group(1)
                if name[-1] == "." and len(name) > 1:
                    name = name[:-1]
                helo = None if from_word.lower() in _UNKNOWN else from_word
                rdns = None if name.lower() in _UNKNOWN else name
                ip = tcp.group(2)
            else:
                from_comments = [fromc]
                if fromx:
                    from_comments += _split_comments(fromx, comments)
                helo, rdns, ip = _read_from([from_word], from_comments, text, warnings)
    if byc is not None:
        if "\t" in byc or "  " in byc:
            byc = _SPACES.sub(" ", byc)
        comments.append(byc)
        if byx:
            _split_comments(byx, comments)
    via = None
    if via_body is not None:
        via = " ".join(_multi(via_body, comments))
    protocol = None
    if with_body is not None:
        if "(" in with_body or "<" in with_body:
            protocol = " ".join(_multi(with_body, comments))
        else:
            protocol = " ".join(with_body.split())
    if tlsc is not None:
        _comment(tlsc, comments)
        if tlsx:
            _split_comments(tlsx, comments)
    if idc is not None:
        _comment(idc, comments)
        if idx:
            _split_comments(idx, comments)
    if via2_body is not None:
        via = " ".join(_multi(via2_body, comments))
    if forc is not None:
        _comment(forc, comments)
        if forx:
            _split_comments(forx, comments)
    if from_word is None and by_host is None:
        warnings.append("no 'from' or 'by' clause")
    if rcpt is not None:
        if "," in rcpt:
            warnings.append("several 'for' recipients; the first is kept")
            rcpt = rcpt.split(",")[0].strip()
        rcpt = rcpt.strip("<>") or None
    fast = fast_fields(wday, day, mon, year, hour, minute, sec, zone, zone_comment) if day is not None else None
    if fast is not None:
        timestamp = fast[0]
    else:
        timestamp, date_warnings = date_value(date_text)
        if date_warnings:
            warnings.extend(date_warnings)
    tls, evidence = _read_tls(tls_word, comments, protocol)
    return _make_hop(text, helo, rdns, ip, by_host, protocol, tls, evidence, hop_id, rcpt, via, timestamp, date_text,
                     tuple(dict.fromkeys(warnings)) if warnings else (),
                     (("tls", tls_word),) if tls_word is not None else (), tuple(comments))


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
        frm = clauses["from"]
        helo, rdns, ip = _read_from(frm.words, frm.comments, text, warnings)
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
    """TLS and the Hop itself, shared by the fast and the general path."""
    tls, evidence = _read_tls(tls_words, comments, protocol)
    return _make_hop(text, helo, rdns, ip, by_host, protocol, tls, evidence, hop_id, rcpt, via, timestamp,
                     date_text, tuple(dict.fromkeys(warnings)) if warnings else (), extras, tuple(comments))


_FIELDS = frozenset(("from", "by", "via", "with", "id", "for"))


def _as_ip(token: str) -> str | None:
    m = _IPV4_OR_6.match(token)
    if m is None or (":" not in m.group(1) and "." not in m.group(1)):
        return None
    return m.group(1)


def _read_from(
    words: list[str], comments: list[str], text: str, warnings: list[str]
) -> tuple[str | None, str | None, str | None]:
    """(helo, rdns, ip) of the from clause, by dialect (reference/received-grammar.md §1.3)."""
    word = words[0] if words else None
    if len(words) > 1:
        warnings.append(f"extra words in the from clause: {' '.join(words[1:])[:40]!r}")
    if word is not None and word.lower() in _UNKNOWN:
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
        if ip is None and "helo=" not in inner:
            m = _TCP_INFO.match(inner)
            if m:
                name = m.group(1)
                if name[-1] == "." and len(name) > 1:
                    name = name[:-1]
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
        if ip is None:
            m = _IDENT_IP.match(inner)
            if m and ("." in m.group(1) or ":" in m.group(1)):
                ip = m.group(1)
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


def _read_tls(tls_words: str | None, comments: list[str], protocol: str | None) -> tuple[bool | None, str | None]:
    """TLS from evidence: tls clause, then a version/cipher comment, then the with-type's S."""
    if tls_words is not None:
        return True, f"tls {tls_words}"
    if comments:
        # _TLS_EVIDENCE is case-sensitive and cannot match without one of these substrings; and
        # since each comment starts with "(" and ends with ")", no match spans two of them.
        joined = "".join(comments) if len(comments) > 1 else comments[0]
        if "TLS" in joined or "SSL" in joined or "cipher" in joined or "Google Transport Security" in joined:
            for comment in comments:
                if _TLS_EVIDENCE.search(comment):
                    return True, comment[1:-1].strip()
    if protocol:
        word = protocol.split(" ", 1)[0]
        if word in _PROTOCOL_TLS:
            return _PROTOCOL_TLS[word]
        m = _REGISTERED.match(word)
        if m:
            result: tuple[bool | None, str | None] = (bool(m.group(2)), f"with {word}")
        elif word.upper() == "HTTPS":
            result = (True, f"with {word}")
        else:
            result = (None, None)
        if len(_PROTOCOL_TLS) < 1024:
            _PROTOCOL_TLS[word] = result
        return result
    return None, None


# What the first word of a with-type says about TLS ("ESMTPS" → (True, "with ESMTPS")), as seen.
_PROTOCOL_TLS: dict[str, tuple[bool | None, str | None]] = {}
