"""ESMTP parameters of MAIL FROM and RCPT TO (RFC 5321 §4.1.2 Mail-parameters / Rcpt-parameters).

Supported: SIZE (RFC 1870), BODY=7BIT|8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531), RET and ENVID
(RFC 3461 §4.3-4.4), AUTH (RFC 4954 §5) on MAIL; NOTIFY and ORCPT (RFC 3461 §4.1-4.2) on RCPT.
Unknown keyword → 555 5.5.4 (RFC 5321 §4.1.1.11); duplicate → 501 5.5.4; bad value → 501 5.5.4.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import replies
from .errors import ParameterError

__all__ = ["MailParams", "RcptParams", "parse_mail_params", "parse_rcpt_params", "xtext_decode"]

MAX_ENVID = 100  # RFC 3461 §4.4, octets of the (encoded) value
MAX_ORCPT = 500  # RFC 3461 §4.2 with §5.1's 500-octet extended line allowance

_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_VALUE = re.compile(r"[\x21-\x3c\x3e-\x7e]+")  # esmtp-value: %d33-60 / %d62-126
_VALUE_UTF8 = re.compile(r"[\x21-\x3c\x3e-\x7e\u0080-\U0010ffff]+")  # RFC 6531 §3.3
_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-Fa-f]{2})*")
_ADDR_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")  # RFC 3461 §4.2 addr-type: atom
_UTF8_ADDR_ESCAPE = re.compile(r"\\x\{([0-9A-Fa-f]{2,6})\}")  # RFC 6533 §3 utf-8-addr-xtext
_NOTIFY_VALUES = frozenset({"NEVER", "SUCCESS", "FAILURE", "DELAY"})
# What a decoded value may not contain: C0 controls (CR, LF, NUL, ...), DEL, C1 controls and the
# Unicode line/paragraph separators. Decoded ENVID/ORCPT/AUTH= end up in queue records, DSN
# headers (Original-Envelope-Id, Original-Recipient) and logs; "+0D+0A" must not become a line
# break there (Exim CVE-2020-28021, CVE-2020-28026). Postfix likewise refuses ENVID unless it
# decodes to printable text.
_DECODED_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True, slots=True)
class MailParams:
    """Parameters of one MAIL FROM command. ``None`` means "not given"."""

    size: int | None = None  # RFC 1870 declared size, octets
    body: str | None = None  # "7BIT" or "8BITMIME" (upper-cased)
    smtputf8: bool = False  # RFC 6531
    ret: str | None = None  # "FULL" or "HDRS" (RFC 3461 §4.3)
    envid: str | None = None  # RFC 3461 §4.4, xtext-decoded
    auth: str | None = None  # RFC 4954 §5 submitter, xtext-decoded ("<>" kept as is)


@dataclass(frozen=True, slots=True)
class RcptParams:
    """Parameters of one RCPT TO command."""

    notify: tuple[str, ...] | None = None  # ("NEVER",) or a subset of SUCCESS/FAILURE/DELAY
    orcpt: tuple[str, str] | None = None  # (addr-type as given, decoded original address)


# Most commands carry no parameters; parameter sets are immutable, so those share one value.
_NO_MAIL_PARAMS = MailParams()
_NO_RCPT_PARAMS = RcptParams()


def xtext_decode(value: str) -> str:
    """Decode RFC 3461 §4 xtext (``+XX`` hex escapes). Raises :class:`ValueError` if malformed."""
    if not _XTEXT.fullmatch(value):
        raise ValueError("malformed xtext")
    if "+" not in value:
        return value
    raw = re.sub(r"\+([0-9A-Fa-f]{2})", lambda m: chr(int(m[1], 16)), value)
    return raw


def _split(text: str, *, esmtp: bool, smtputf8: bool) -> list[tuple[str, str | None]]:
    """Split the text after the path into (KEYWORD, value) pairs, checking syntax and duplicates."""
    words = text.split(" ")
    if words and words[0] == "":
        words = words[1:]  # the SP separating path and parameters
    result: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    value_re = _VALUE_UTF8 if smtputf8 else _VALUE
    for word in words:
        if not word:
            continue  # tolerate repeated spaces, as Postfix does
        keyword, eq, value = word.partition("=")
        if not _KEYWORD.fullmatch(keyword) or (eq and not value_re.fullmatch(value)):
            raise ParameterError(replies.BAD_PARAMETER, f"malformed parameter {word!r}")
        keyword = keyword.upper()
        if not esmtp:
            raise ParameterError(replies.UNKNOWN_PARAMETER, "parameters require EHLO")
        if keyword in seen:
            raise ParameterError(replies.DUPLICATE_PARAMETER, f"duplicate {keyword}")
        seen.add(keyword)
        result.append((keyword, value if eq else None))
    return result


def _bad(keyword: str, why: str) -> ParameterError:
    return ParameterError(replies.BAD_PARAMETER, f"{keyword}: {why}")


def parse_mail_params(text: str, *, esmtp: bool) -> MailParams:
    """Parse the parameters after ``MAIL FROM:<path>``.

    ``esmtp`` is False after HELO: any parameter is then refused (555 5.5.4). Non-ASCII
    values are accepted only when SMTPUTF8 is among the parameters.
    """
    if not text:
        return _NO_MAIL_PARAMS
    smtputf8 = any(w.upper() == "SMTPUTF8" for w in text.split(" "))
    size = body = ret = envid = auth = None
    for keyword, value in _split(text, esmtp=esmtp, smtputf8=smtputf8):
        match keyword:
            case "SIZE":
                if value is None or not value.isascii() or not value.isdigit() or len(value) > 20:
                    raise _bad(keyword, "not 1*20DIGIT")
                size = int(value)
            case "BODY":
                if value is None or value.upper() not in ("7BIT", "8BITMIME"):
                    raise _bad(keyword, "only 7BIT and 8BITMIME are supported")
                body = value.upper()
            case "SMTPUTF8":
                if value is not None:
                    raise _bad(keyword, "takes no value")
            case "RET":
                if value is None or value.upper() not in ("FULL", "HDRS"):
                    raise _bad(keyword, "not FULL or HDRS")
                ret = value.upper()
            case "ENVID":
                if value is None or len(value) > MAX_ENVID:
                    raise _bad(keyword, "missing or longer than 100 characters")
                envid = _xtext(keyword, value)
            case "AUTH":
                if value is None:
                    raise _bad(keyword, "missing value")
                auth = _xtext(keyword, value)
            case _:
                raise ParameterError(replies.UNKNOWN_PARAMETER, f"unknown MAIL parameter {keyword}")
    return MailParams(size, body, smtputf8, ret, envid, auth)


def parse_rcpt_params(text: str, *, esmtp: bool, smtputf8: bool) -> RcptParams:
    """Parse the parameters after ``RCPT TO:<path>``."""
    if not text:
        return _NO_RCPT_PARAMS
    notify: tuple[str, ...] | None = None
    orcpt: tuple[str, str] | None = None
    for keyword, value in _split(text, esmtp=esmtp, smtputf8=smtputf8):
        match keyword:
            case "NOTIFY":
                items = tuple(v.upper() for v in (value or "").split(","))
                if (
                    not value
                    or not set(items) <= _NOTIFY_VALUES
                    or len(set(items)) != len(items)
                    or ("NEVER" in items and len(items) > 1)  # RFC 3461 §4.1
                ):
                    raise _bad(keyword, "not NEVER or a list of SUCCESS/FAILURE/DELAY")
                notify = items
            case "ORCPT":
                addr_type, semi, addr = (value or "").partition(";")
                if not semi or not addr or not _ADDR_TYPE.fullmatch(addr_type) or len(value or "") > MAX_ORCPT:
                    raise _bad(keyword, "not addr-type;xtext")
                decoded = _xtext(keyword, addr)
                if addr_type.lower() == "utf-8":
                    decoded = _utf8_addr(decoded)
                    _refuse_controls(keyword, decoded)
                orcpt = (addr_type, decoded)
            case _:
                raise ParameterError(replies.UNKNOWN_PARAMETER, f"unknown RCPT parameter {keyword}")
    return RcptParams(notify, orcpt)


def _xtext(keyword: str, value: str) -> str:
    if not value.isascii():
        decoded = value  # RFC 6531 §3.3: raw UTF-8 is allowed in values under SMTPUTF8
    else:
        try:
            decoded = xtext_decode(value)
        except ValueError:
            raise _bad(keyword, "malformed xtext") from None
    _refuse_controls(keyword, decoded)
    return decoded


def _refuse_controls(keyword: str, decoded: str) -> None:
    if _DECODED_CONTROL.search(decoded):
        raise _bad(keyword, "decodes to a control character")


def _utf8_addr(value: str) -> str:
    """RFC 6533 §3: decode ``\\x{HEX}`` escapes of a utf-8 ORCPT address."""

    def unescape(m: re.Match[str]) -> str:
        code = int(m[1], 16)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise _bad("ORCPT", "invalid code point")
        return chr(code)

    return _UTF8_ADDR_ESCAPE.sub(unescape, value)
