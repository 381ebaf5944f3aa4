"""RFC 5321 §4.1.2 paths: parsing, limits (§4.5.3.1) and the null / Postmaster special cases.

``parse_path`` accepts exactly the ABNF of RFC 5321 §4.1.2 (dot-string or quoted-string
local parts, domains, IPv4 / IPv6 / general address literals, source routes), extended
by RFC 6531 §3.3 to UTF-8 local parts and U-labels when SMTPUTF8 was requested. Source
routes are parsed, kept in :attr:`Path.source_route` for logging, and ignored for
delivery as RFC 5321 §3.6.1 and Appendix C tell servers to do ("strip down to final hop").
Domains are kept as written; the router normalises (see :attr:`Path.domain_lower`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from . import replies
from .errors import AddressError
from .reply import Reply

__all__ = ["Path", "parse_path", "split_path", "MAX_LOCAL_PART", "MAX_DOMAIN", "MAX_PATH"]

MAX_LOCAL_PART = 64  # RFC 5321 §4.5.3.1.1, octets
MAX_DOMAIN = 255  # RFC 5321 §4.5.3.1.2, octets
MAX_PATH = 256  # RFC 5321 §4.5.3.1.3, octets including "<", ">" and separators
_MAX_LABEL = 63  # RFC 1035 §2.3.4

_ATEXT = r"A-Za-z0-9!#$%&'*+\-/=?^_`{|}~"
# RFC 6531 §3.3: UTF8-non-ascii extends atext, qtext and sub-domain. Minus the C1 controls
# (U+0080-U+009F, NEL among them) and U+2028/U+2029, which some readers take as line breaks:
# an address ends up in Return-Path, Delivered-To and logs (RFC 5198 bans them from text too).
_U8 = r"\u00a0-\u2027\u202a-\U0010ffff"


def _compile(utf8: str) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    atom = f"[{_ATEXT}{utf8}]+"
    dot_string = re.compile(rf"{atom}(?:\.{atom})*")
    quoted = re.compile(rf'"(?:[\x20\x21\x23-\x5b\x5d-\x7e{utf8}]|\\[\x20-\x7e])*"')
    let_dig = f"A-Za-z0-9{utf8}"
    label = rf"[{let_dig}](?:[{let_dig}\-]*[{let_dig}])?"
    domain = re.compile(rf"{label}(?:\.{label})*")
    return dot_string, quoted, domain


_ASCII_RES = _compile("")
_UTF8_RES = _compile(_U8)
_GENERAL_LITERAL = re.compile(r"[A-Za-z0-9-]*[A-Za-z0-9]:[\x21-\x5a\x5e-\x7e]+")
_IPV4_LITERAL = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")


@dataclass(frozen=True, slots=True)
class Path:
    """A reverse-path or forward-path from MAIL FROM / RCPT TO.

    Attributes:
        local_part: as written, including the quotes of a quoted-string local part.
            Empty for the null path; ``"Postmaster"`` for the bare ``<Postmaster>``.
        domain: as written (case preserved), or an address literal with its brackets.
            Empty for the null path and for ``<Postmaster>``.
        source_route: the obsolete ``@a,@b:`` hops (RFC 5321 §4.1.2 A-d-l), already
            stripped from the address; kept only for logs.
    """

    local_part: str
    domain: str
    source_route: tuple[str, ...] = ()

    @property
    def is_null(self) -> bool:
        """The null reverse-path ``<>`` (bounces, RFC 5321 §4.5.5)."""
        return not self.local_part and not self.domain

    @property
    def is_postmaster(self) -> bool:
        """The domain-less ``<Postmaster>`` recipient every server must accept (§4.5.1)."""
        return not self.domain and self.local_part == "Postmaster"

    @property
    def address(self) -> str:
        """``local@domain``; ``""`` for the null path; ``"Postmaster"`` for ``<Postmaster>``."""
        if not self.domain:
            return self.local_part
        return f"{self.local_part}@{self.domain}"

    @property
    def domain_lower(self) -> str:
        """The domain folded to lower case (ASCII and U-labels alike), for routing."""
        return self.domain.lower()

    @property
    def unquoted_local_part(self) -> str:
        """The local part with quoted-string quoting removed (``"a\\ b"`` → ``a b``)."""
        lp = self.local_part
        if len(lp) >= 2 and lp[0] == '"' and lp[-1] == '"':
            return re.sub(r"\\(.)", r"\1", lp[1:-1])
        return lp

    def __str__(self) -> str:
        return f"<{self.address}>"


def split_path(arg: str) -> tuple[str, str]:
    """Split ``"<path> PARAMS"`` into ``("<path>", " PARAMS")``.

    The closing ``>`` is found with quoted-string awareness, so ``<"a>b"@example.org>`` is
    one path. Raises :class:`AddressError` (501 5.5.4) when there is no bracketed path.
    """
    if not arg.startswith("<"):
        raise AddressError(replies.SYNTAX_ERROR, "path does not start with '<'")
    close = arg.find(">")
    if close > 0 and arg.find('"', 0, close) < 0:  # no quoted-string before it: the usual case
        return arg[: close + 1], arg[close + 1 :]
    in_quote = False
    i = 1
    n = len(arg)
    while i < n:
        c = arg[i]
        if in_quote:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quote = False
        elif c == '"':
            in_quote = True
        elif c == ">":
            return arg[: i + 1], arg[i + 1 :]
        i += 1
    raise AddressError(replies.SYNTAX_ERROR, "path has no closing '>'")


def parse_path(
    text: str, *, allow_null: bool, smtputf8: bool, allow_postmaster: bool | None = None
) -> Path:
    """Parse a bracketed path (``"<user@example.org>"``) per RFC 5321 §4.1.2.

    Args:
        text: the path including its angle brackets, nothing else.
        allow_null: True to parse a Reverse-path (MAIL FROM): ``<>`` is allowed and errors
            use 5.1.7 (bad sender mailbox syntax). False to parse a Forward-path (RCPT TO):
            errors use 5.1.3 (bad destination mailbox syntax).
        smtputf8: allow UTF-8 local parts and domains (RFC 6531). Without it, any
            non-ASCII character is refused with 553 5.6.7.
        allow_postmaster: accept the bare ``<Postmaster>`` (case-insensitive, §4.1.1.3);
            defaults to ``not allow_null``, i.e. forward paths.

    Raises:
        AddressError: carrying the reply to send.
    """
    if allow_postmaster is None:
        allow_postmaster = not allow_null

    # Lengths are limits in octets; an ASCII string has as many octets as characters.
    if (len(text) if text.isascii() else len(text.encode("utf-8", "surrogateescape"))) > MAX_PATH:
        raise _fail(allow_null, "path longer than 256 octets", _too_long(allow_null, "Path"))
    if len(text) < 2 or text[0] != "<" or text[-1] != ">":
        raise _fail(allow_null, "path not enclosed in angle brackets")
    inner = text[1:-1]
    if not inner:
        if allow_null:
            return Path("", "")
        raise _fail(allow_null, "null path not allowed here")
    if not inner.isascii() and not smtputf8:
        raise _fail(allow_null, "non-ASCII path without SMTPUTF8", replies.NON_ASCII_ADDRESS)
    dot_string, quoted, domain_re = _UTF8_RES if smtputf8 else _ASCII_RES
    if allow_postmaster and len(inner) == 10 and inner.lower() == "postmaster":
        return Path("Postmaster", "")

    route: tuple[str, ...] = ()
    if inner.startswith("@"):
        adl, colon, inner = inner.partition(":")
        if not colon:
            raise _fail(allow_null, "source route without ':'")
        hops = []
        for hop in adl.split(","):
            if not hop.startswith("@") or not _valid_domain(hop[1:], domain_re):
                raise _fail(allow_null, "malformed source route")
            hops.append(hop[1:])
        route = tuple(hops)

    local, at, domain = inner.rpartition("@")
    if not at or not local:
        raise _fail(allow_null, "mailbox has no local part and domain")
    if not (dot_string.fullmatch(local) or quoted.fullmatch(local)):
        raise _fail(allow_null, "malformed local part")
    if (len(local) if local.isascii() else len(local.encode("utf-8"))) > MAX_LOCAL_PART:
        raise _fail(allow_null, "local part longer than 64 octets", _too_long(allow_null, "Local part"))
    if domain.startswith("["):
        if not _valid_literal(domain):
            raise _fail(allow_null, "malformed address literal")
    elif not _valid_domain(domain, domain_re):
        raise _fail(allow_null, "malformed domain")
    return Path(local, domain, route)


def _fail(allow_null: bool, reason: str, reply: Reply | None = None) -> AddressError:
    """The error for a bad path: 5.1.7 (sender) or 5.1.3 (recipient) unless ``reply`` says otherwise."""
    if reply is None:
        reply = replies.BAD_SENDER_SYNTAX if allow_null else replies.BAD_RECIPIENT_SYNTAX
    return AddressError(reply, reason)


def _too_long(allow_null: bool, what: str) -> Reply:
    return Reply.make(501, "5.1.7" if allow_null else "5.1.3", f"{what} too long")


def _valid_domain(domain: str, domain_re: re.Pattern[str]) -> bool:
    if not domain or not domain_re.fullmatch(domain):
        return False
    if len(domain) <= _MAX_LABEL and domain.isascii():
        return True  # no label, nor the whole, can be too long
    if len(domain.encode("utf-8")) > MAX_DOMAIN:
        return False
    return all(len(label.encode("utf-8")) <= _MAX_LABEL for label in domain.split("."))


def _valid_literal(literal: str) -> bool:
    """RFC 5321 §4.1.3 address-literal, brackets included."""
    if len(literal) < 3 or not literal.endswith("]"):
        return False
    body = literal[1:-1]
    if _IPV4_LITERAL.fullmatch(body):
        try:
            ipaddress.IPv4Address(body)  # refuses octets > 255 and leading zeros
        except ValueError:
            return False
        return True
    if body[:5].upper() == "IPV6:":
        addr = body[5:]
        if "%" in addr or not addr.isascii():  # no zone ids in mail
            return False
        try:
            ipaddress.IPv6Address(addr)
        except ValueError:
            return False
        return True
    return _GENERAL_LITERAL.fullmatch(body) is not None and body.isascii()
