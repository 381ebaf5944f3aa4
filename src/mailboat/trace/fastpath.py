"""The fast path of `parse.parse_received`: one compiled regex for the well-formed shape
``[(comments)] [from W (c)*] [by W (c)*] [via ...] [with ...] [tls W] [id W] [via ...] [for W] ; date``.

Nearly every real header has that shape (Postfix, Sendmail, Exim, Exchange, Gmail, qmail, the
webmails), and reading it with one match and a few string operations is several times cheaper
than the general tokenizer. The regex accepts a text only when it tokenises exactly as
`hop.TOKEN` would; anything else (a backslash, a quote, a repeated or unusual clause, a second
``;``, odd brackets) makes `match` return None or `read_fast` return None, and the caller takes the
general path. tests/trace/test_fast_path.py checks, on the corpus and on generated headers, that
both paths give the same Hop field for field.

Two readings are folded into the regex itself because they are the common case and cost a
second match otherwise: the Postfix/Sendmail TCP-info comment after the from word (``(rdns [IP])``,
groups ``rdns`` and ``ip``), and the canonical RFC 5322 date (`dates.FAST_DATE`'s groups).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from mailboat.trace.dates import FAST_DATE, fast_utc, slow_fields
from mailboat.trace.hop import (
    IP,
    NO_HOST,
    PROTOCOL_TLS,
    TOKEN,
    UNKNOWN,
    Building,
    Hop,
    inert_after_tcp_info,
    one_space,
    protocol_tls,
    read_from,
    read_tls,
)

KEYWORDS = frozenset(("from", "by", "via", "with", "id", "for", "tls", "group", "state", "priority"))


def _any_case(word: str) -> set[str]:
    variants = {""}
    for c in word:
        variants = {v + x for v in variants for x in (c, c.upper())}
    return variants


# Every spelling `tok.lower() in KEYWORDS` accepts in ASCII: one set lookup instead of lower().
# The general path starts a clause at a keyword even right after an empty one ("from ([IP]) by",
# "with id"), so a one-word clause whose word is a keyword is left to it (the readers below
# decline); testing the few words after the match is cheaper than a lookahead in the regexes.
# (No non-ASCII word lowers to a keyword: the Kelvin sign gives "k", the dotted I two characters.)
KEYWORD_SPELLINGS = frozenset(v for k in KEYWORDS for v in _any_case(k))


def _fast_pattern(ascii_only: bool) -> re.Pattern[str]:
    r"""The well-formed shape in one regex (used only when the text has no backslash).

    Every piece is a token exactly as `hop.TOKEN` cuts it (same word and comment patterns, all
    possessive), keywords are matched letter by letter as ``tok.lower()`` would (no re.I: it
    would also take the Kelvin sign and the long s) and must be followed by whitespace; a
    multi-word clause (with, via) stops at the next keyword, a one-word clause allows only
    comments after its word. So a match means the general path would build the same clauses.
    The first comment after a one-word clause has its own group (``fromc``), the others a run.
    Each clause is possessive (``?+``): a text that fails after it fails at once instead of
    retrying every way of splitting the clauses (the first way tried is the one that matches,
    so this only makes failures cheap; they take the general path).

    The first from comment is tried first as plain TCP-info, ``(rdns [IP])`` with an rdns free of
    ``@``, brackets and parentheses: exactly what `hop.TCP_INFO` would find in it, read here.

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
    keyword = "(?:" + "|".join("".join(f"[{c.upper()}{c}]" for c in k) for k in sorted(KEYWORDS)) + ")"
    not_kw = rf"(?!{keyword}(?:[{sp}();]|\Z)){word}"
    multi = rf"{not_kw}(?:{ws}*{comment}|{ws}+{not_kw})*+"
    tcp_info = rf"\({ws}*(?P<rdns>[^{sp}@\[\]()]++){ws}++\[(?:IPv6:)?(?P<ip>{IP})\]{ws}*\)"

    def one(name: str, first: str = comment) -> str:
        return (rf"(?:{kw(name)}(?P<{name}>{word})(?:{ws}*(?P<{name}c>{first}))?(?P<{name}x>{comments}){ws}*)?+")

    return re.compile(
        rf"(?P<pre>(?:{comment}{ws}*)*+)"
        + one("from", f"{tcp_info}|{comment}") + one("by")
        + rf"(?:{kw('via')}(?P<via>{multi}){ws}*)?+"
        + rf"(?:{kw('with')}(?P<with>{multi}){ws}*)?+"
        + one("tls") + one("id")
        + rf"(?:{kw('via')}(?P<via2>{multi}){ws}*)?+"
        + one("for")
        # the date; when it has the canonical form, dates.FAST_DATE's groups are filled as well
        + rf";{ws}*(?P<date>(?:(?={date})|)[^;]*)\Z"
    )


FAST = _fast_pattern(False)
FAST_ASCII = _fast_pattern(True)


def _postfix_pattern() -> re.Pattern[str]:
    r"""The Postfix/Sendmail/mailboat stamp, and nothing looser, for ASCII text:
    ``from HELO (rDNS [IP]) (c)* by HOST [(c)] with PROTO (c)* id ID (c)* [for RCPT (c)*]; DATE``.

    About half the real headers have exactly this shape, and this regex reads it in about half the
    time of `FAST` (fewer groups, no alternation per clause, single-space separators). It accepts
    a subset of what `FAST_ASCII` accepts, each group holding what FAST's group of the same role
    would (same word and comment patterns; the rDNS also refuses ``=``, so "helo=" cannot be in
    it; the with-type is one word that is not a keyword), so `read_postfix` can mirror `read_fast`
    on it. Anything else (other keyword case, extra clauses, comments nested twice) fails here and
    goes to `FAST`; a date not in the canonical form is taken as FAST takes it (its groups empty).
    """
    sp = r"\t\n\x0b\x0c\r\x1c-\x1f "
    date = FAST_DATE.replace(r"\d", "[0-9]").replace(r"\s", f"[{sp}]")
    word = rf"(?:[^{sp}()\";\\<\[]++|<[^<>()]*+>|\[[^\[\](){sp}]*+\])++"
    c1 = r"\((?:[^()]++|\([^()]*+\))*+\)"
    comments = rf"(?:[ \t]++{c1})*+"
    keyword = "(?:" + "|".join("".join(f"[{c.upper()}{c}]" for c in k) for k in sorted(KEYWORDS)) + ")"
    return re.compile(
        rf"from (?P<helo>{word}) (?P<fromc>\((?P<rdns>[^{sp}@\[\]()=]++) \[(?:IPv6:)?(?P<ip>{IP})\]\))"
        rf"(?P<fx>{comments})"
        rf"[ \t]++by (?P<by>{word})(?: (?P<byc>\([^()]*+\)))?+"
        rf"[ \t]++with (?P<with>(?!{keyword}[ \t])[A-Za-z0-9]++)(?P<withx>{comments})"
        rf"[ \t]++id (?P<id>{word})(?P<idx>{comments})(?:[ \t]++for (?P<for>{word})(?P<forx>{comments}))?+"
        rf";[ \t]*+(?P<date>(?:(?={date})|)[^;]*)\Z"
    )


POSTFIX = _postfix_pattern()
_FAST_COMMENT = re.compile(r"\((?:[^()]++|\((?:[^()]++|\([^()]*+\))*+\))*+\)")


def _split_comments(run: str, out: list[str]) -> list[str]:
    """The comments of a run matched by the fast regex (whitespace and comments only), each with
    its runs of FWS made one space, appended to `out`; returns them."""
    if run.count("(") == 1:
        found = [one_space(run.strip())]
    else:
        found = [one_space(c) for c in _FAST_COMMENT.findall(run)]
    out += found
    return found


def _multi(body: str, comments: list[str]) -> str:
    """A with/via clause body as its words joined by one space; its comments go to `comments`."""
    if "(" not in body and "<" not in body:
        return " ".join(body.split())
    words = []
    for tok in TOKEN.findall(body):
        if tok[0] == "(":
            comments.append(one_space(tok))
        else:
            words.append(tok)
    return " ".join(words)


def _first_recipient(rcpt: str) -> tuple[str | None, str | None]:
    """The `for` address without its brackets, and the warning when several were listed."""
    if "," in rcpt:
        return rcpt.split(",")[0].strip().strip("<>") or None, "several 'for' recipients; the first is kept"
    return rcpt.strip("<>") or None, None


def _read_date(date_text: str, wday, day, mon, year, hour, minute, sec, zone, zone_comment):
    """(UTC datetime or None, warnings): the fast reader's groups when they make a date, else
    the general date reader on the whole text after ';'."""
    if day is not None:
        timestamp = fast_utc(wday, day, mon, year, hour, minute, sec, zone, zone_comment)
        if timestamp is not None:
            return timestamp, ()
    timestamp, warnings, _ = slow_fields(date_text)
    return timestamp, warnings


def read_fast(text: str, m: re.Match[str]) -> Hop | None:
    """The hop for a `FAST` match, or None when a clause repeats (the general path warns).

    Written flat (few calls, the FWS test of `one_space` inlined) because it runs for nearly
    every header; each step mirrors `parse._parse`/`parse._build` on the same clauses.
    """
    (pre, from_word, fromc, rdns_name, ip_text, fromx, by_host, byc, byx, via_body, with_body, tls_word, tlsc,
     tlsx, hop_id, idc, idx, via2_body, rcpt, forc, forx, date_text,
     wday, day, mon, year, hour, minute, sec, zone, zone_comment) = m.groups()
    if via_body is not None and via2_body is not None:
        return None
    if (from_word in KEYWORD_SPELLINGS or by_host in KEYWORD_SPELLINGS or hop_id in KEYWORD_SPELLINGS
            or tls_word in KEYWORD_SPELLINGS or rcpt in KEYWORD_SPELLINGS):
        return None  # a keyword as a clause's word: the general path starts a clause there
    if from_word is None and pre and "network[" in pre:
        return None  # qmail's "invoked from network[IP/rDNS]": the general path reads it
    comments: list[str] = _split_comments(pre, []) if pre else []
    warnings: list[str] = []
    helo = rdns = ip = None
    if from_word is not None:
        if fromc is None:
            helo, rdns, ip = read_from([from_word], [], text, warnings)
        else:
            if "\t" in fromc or "  " in fromc:
                fromc = " ".join(fromc.split())
            comments.append(fromc)
            extra: Sequence[str]
            if fromx:
                extra = _split_comments(fromx, comments)
                plain = all(map(inert_after_tcp_info, extra))
            else:
                extra, plain = (), True
            if rdns_name is not None and plain and "helo=" not in rdns_name:
                # the TCP-info comment gives rdns and IP, and nothing after it changes them:
                # what read_from's loop would find
                if rdns_name[-1] == "." and len(rdns_name) > 1:
                    rdns_name = rdns_name[:-1]
                helo = None if from_word.lower() in UNKNOWN else from_word
                rdns = None if rdns_name.lower() in UNKNOWN else rdns_name
                ip = ip_text
            else:
                helo, rdns, ip = read_from([from_word], [fromc, *extra], text, warnings)
    if byc is not None:
        comments.append(" ".join(byc.split()) if "\t" in byc or "  " in byc else byc)
        if byx:
            _split_comments(byx, comments)
    via = _multi(via_body, comments) if via_body is not None else None
    if with_body is None:
        protocol = None
    elif "(" in with_body or "<" in with_body:
        protocol = _multi(with_body, comments)
    else:
        protocol = " ".join(with_body.split())
    if tlsc is not None:
        comments.append(one_space(tlsc))
        if tlsx:
            _split_comments(tlsx, comments)
    if idc is not None:
        comments.append(" ".join(idc.split()) if "\t" in idc or "  " in idc else idc)
        if idx:
            _split_comments(idx, comments)
    if via2_body is not None:
        via = _multi(via2_body, comments)
    if forc is not None:
        comments.append(" ".join(forc.split()) if "\t" in forc or "  " in forc else forc)
        if forx:
            _split_comments(forx, comments)
    if by_host is None and helo is None and rdns is None and ip is None:
        warnings.append("no 'from' or 'by' clause" if from_word is None else NO_HOST)
    if rcpt is not None:
        rcpt, several = _first_recipient(rcpt)
        if several:
            warnings.append(several)
    timestamp, date_warnings = _read_date(date_text, wday, day, mon, year, hour, minute, sec, zone, zone_comment)
    if date_warnings:
        warnings += date_warnings
    tls: bool | None
    evidence: str | None
    if tls_word is not None:
        tls, evidence = True, f"tls {tls_word}"
    elif comments and ("TLS" in text or "SSL" in text or "cipher" in text or "Google" in text):
        tls, evidence = read_tls(None, comments, protocol)  # (each comment is in `text`, FWS aside)
    elif protocol is not None:
        tls, evidence = PROTOCOL_TLS.get(protocol) or protocol_tls(protocol)
    else:
        tls = evidence = None
    hop: Any = Building(text, helo, rdns, ip, by_host, protocol, tls, evidence, hop_id, rcpt, via, timestamp, date_text,
                        tuple(dict.fromkeys(warnings)) if warnings else (),
                        (("tls", tls_word),) if tls_word is not None else (), tuple(comments))
    hop.__class__ = Hop  # (hop.make_hop, inlined)
    return hop


def read_postfix(text: str, m: re.Match[str]) -> Hop | None:
    """The hop for a `POSTFIX` match (what `read_fast` gives for the same text), or None when a
    comment after the TCP-info one could change the from reading (`FAST` then reads it)."""
    (helo, fromc, rdns, ip, fx, by_host, byc, protocol, withx, hop_id, idx, rcpt, forx, date_text,
     wday, day, mon, year, hour, minute, sec, zone, zone_comment) = m.groups()
    if helo in KEYWORD_SPELLINGS or by_host in KEYWORD_SPELLINGS or hop_id in KEYWORD_SPELLINGS or (
            rcpt is not None and rcpt in KEYWORD_SPELLINGS):
        return None  # a keyword as a clause's word: the general path starts a clause there
    comments = [fromc]
    if fx and not all(map(inert_after_tcp_info, _split_comments(fx, comments))):
        return None
    if byc is not None:
        comments.append(" ".join(byc.split()) if "\t" in byc or "  " in byc else byc)
    if withx:
        _split_comments(withx, comments)
    if idx:
        _split_comments(idx, comments)
    if forx:
        _split_comments(forx, comments)
    if helo.lower() in UNKNOWN:
        helo = None
    if rdns[-1] == "." and len(rdns) > 1:
        rdns = rdns[:-1]
    if rdns.lower() in UNKNOWN:
        rdns = None
    several = None
    if rcpt is not None:
        rcpt, several = _first_recipient(rcpt)
    timestamp, date_warnings = _read_date(date_text, wday, day, mon, year, hour, minute, sec, zone, zone_comment)
    warnings = tuple(dict.fromkeys([several, *date_warnings] if several else date_warnings))
    if "TLS" in text or "SSL" in text or "cipher" in text or "Google" in text:
        tls, evidence = read_tls(None, comments, protocol)  # (each comment is in `text`, FWS aside)
    else:
        tls, evidence = PROTOCOL_TLS.get(protocol) or protocol_tls(protocol)
    hop: Any = Building(text, helo, rdns, ip, by_host, protocol, tls, evidence, hop_id, rcpt, None, timestamp,
                        date_text, warnings, (), tuple(comments))
    hop.__class__ = Hop
    return hop
