"""One SMTP command line → verb and typed arguments (RFC 5321 §4.1.1, §4.1.4; RFC 3030; RFC 4954).

The server engine hands this module a line it has already cut at CRLF. This module checks the
line for bytes that must never occur in a command (bare CR, bare LF, NUL, invalid UTF-8),
then parses the arguments of each verb. Errors are raised as :class:`RemoteProtocolError`
or :class:`AddressError`/:class:`ParameterError`, each carrying the reply to send.

Line limits (octets, CRLF included):

* 512 for ordinary commands (RFC 5321 §4.5.3.1.4);
* 512 + 500 for MAIL and RCPT, because ESMTP parameters such as ORCPT, ENVID and
  NOTIFY make lines longer (RFC 5321 §4.5.3.1.4 "SMTP extensions may be used to increase
  this limit"; RFC 1869 §4.1.2 reserves room per extension);
* 12288 for AUTH and for SASL responses (RFC 4954 §4).

A line :data:`ENDLESS_SLACK` octets past its limit, CRLF or not, ends the session.
"""

from __future__ import annotations

import re
from typing import final

from . import replies
from .address import Path, parse_path, split_path
from .errors import AddressError, RemoteProtocolError
from .params import MailParams, RcptParams, parse_mail_params, parse_rcpt_params
from .reply import Reply

__all__ = [
    "MAX_COMMAND_LINE",
    "MAX_PARAM_LINE",
    "MAX_AUTH_LINE",
    "ENDLESS_SLACK",
    "line_limit",
    "LineReader",
    "LineTooLong",
    "decode_line",
    "split_command",
    "parse_mail",
    "parse_rcpt",
    "parse_bdat",
    "parse_auth",
]

MAX_COMMAND_LINE = 512
MAX_PARAM_LINE = 512 + 500
MAX_AUTH_LINE = 12288
MAX_LINE = MAX_AUTH_LINE  # the longest line the engine ever buffers
# A line this much longer than its limit is not an SMTP command that went wrong but a client
# holding the session open (or not speaking SMTP): 500 5.5.2 and close, at once.
ENDLESS_SLACK = 4096
_MIN_ENDLESS = MAX_COMMAND_LINE + ENDLESS_SLACK  # no line shorter than this is endless

_BAD_COMMAND_BYTE = re.compile(rb"[\r\n\x00]")
_VERB = re.compile(rb"[A-Za-z]{1,12}")
_BDAT = re.compile(r"([0-9]{1,20})(?: +(LAST))? *", re.IGNORECASE)
_MECHANISM = re.compile(r"[A-Z0-9_-]{1,20}")  # RFC 4422 §3.1 sasl-mech
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")

MAIL_SYNTAX = Reply.make(501, "5.5.4", "Syntax: MAIL FROM:<address>")
RCPT_SYNTAX = Reply.make(501, "5.5.4", "Syntax: RCPT TO:<address>")
BDAT_SYNTAX = Reply.make(501, "5.5.4", "Syntax: BDAT <size> [LAST]")
AUTH_SYNTAX = Reply.make(501, "5.5.4", "Syntax: AUTH <mechanism> [initial-response]")


def line_limit(raw_verb: bytes) -> int:
    """Longest allowed line (CRLF included) for a command starting with ``raw_verb``."""
    verb = raw_verb.upper()
    if verb in (b"MAIL", b"RCPT"):
        return MAX_PARAM_LINE
    if verb == b"AUTH":
        return MAX_AUTH_LINE
    return MAX_COMMAND_LINE


@final
class LineTooLong:
    """Returned by :meth:`LineReader.read` for a line longer than its limit.

    ``endless`` marks a line that went past its limit plus :data:`ENDLESS_SLACK` octets (with
    or without a CRLF yet): the client is not speaking SMTP, or is only holding the session
    open, and the engine closes the connection instead of reading on to the command timeout.
    """

    __slots__ = ("head", "endless")

    def __init__(self, head: bytes, endless: bool = False) -> None:
        self.head = head  # the first octets of the line, for logs
        self.endless = endless


class LineReader:
    """Cuts CRLF-terminated lines out of a buffer with bounded memory.

    Only CRLF ends a line (RFC 5321 §2.3.8). A line longer than its limit is skipped while
    it streams in, so at most :data:`MAX_LINE` octets of one line are ever kept; the caller
    gets a :class:`LineTooLong` marker when its CRLF finally arrives, i.e. one reply per
    over-long line, in order with the other replies. A line that reaches its limit plus
    :data:`ENDLESS_SLACK` octets gets an ``endless`` marker at once; the reader then
    consumes everything and returns nothing more (the engine closes the session).
    """

    __slots__ = ("_discarding", "_length", "_bound", "_dead")

    def __init__(self) -> None:
        self._discarding: bytes | None = None  # head of the over-long line being skipped
        self._length = 0  # octets of that line skipped so far (its CRLF excluded)
        self._bound = 0  # its length at which it counts as endless
        self._dead = False  # an endless line was reported: nothing more is read

    def read(self, buf: bytes, pos: int, limit: int | None = None) -> tuple[int, bytes | LineTooLong | None]:
        """Return ``(new_pos, line)``: the line without CRLF, a LineTooLong, or None (need more).

        ``limit`` overrides the per-verb limit of :func:`line_limit` (SASL responses).
        """
        if self._dead:
            return len(buf), None
        if self._discarding is not None:
            return self._skip(buf, pos)
        crlf = buf.find(b"\r\n", pos, pos + MAX_LINE)
        if crlf < 0:
            held = len(buf) - pos
            if held < _MIN_ENDLESS:  # the usual case: a line still arriving
                return pos, None
            bound = (limit or line_limit(buf[pos : pos + 4])) + ENDLESS_SLACK
            known = held - 1 if buf.endswith(b"\r") else held  # a final CR may start the CRLF
            if held < MAX_LINE and known < bound:
                return pos, None
            # Too long for any command, or already endless: skip it while it streams in.
            self._discarding, self._length, self._bound = buf[pos : pos + 80], 0, bound
            return self._skip(buf, pos)
        line = buf[pos:crlf]
        # Every per-verb limit is at least MAX_COMMAND_LINE, so only longer lines (or an
        # explicit limit) need the verb looked at.
        if crlf - pos + 2 > MAX_COMMAND_LINE or limit is not None:
            allowed = limit or line_limit(line[:4])
            if len(line) + 2 > allowed:
                if len(line) >= allowed + ENDLESS_SLACK:
                    return self._endless(buf, line[:80])
                return crlf + 2, LineTooLong(line[:80])
        return crlf + 2, line

    def _skip(self, buf: bytes, pos: int) -> tuple[int, LineTooLong | None]:
        """Consume the over-long line being discarded, up to its CRLF or the buffer's end."""
        end = len(buf)
        crlf = buf.find(b"\r\n", pos)
        # Without a CRLF, keep a final CR that may pair with the next LF.
        stop = crlf if crlf >= 0 else max(end - 1 if buf.endswith(b"\r") else end, pos)
        self._length += stop - pos
        head = self._discarding
        assert head is not None
        if self._length >= self._bound:
            return self._endless(buf, head)
        if crlf < 0:
            return stop, None
        self._discarding = None
        return crlf + 2, LineTooLong(head)

    def _endless(self, buf: bytes, head: bytes) -> tuple[int, LineTooLong]:
        self._discarding, self._dead = None, True
        return len(buf), LineTooLong(head, endless=True)


def decode_line(raw: bytes) -> str:
    """Validate and decode one command line (without its CRLF).

    A bare CR or LF inside the line is refused, never treated as a line break: the line
    is one command or none (RFC 5321 §2.3.8). NUL is refused (security.md §1.4).
    """
    # Three memchr scans are cheaper than one regex search on the clean lines that are the
    # rule; the regex then says which bad octet comes first.
    if (b"\r" in raw or b"\n" in raw or b"\x00" in raw) and (bad := _BAD_COMMAND_BYTE.search(raw)):
        if bad[0] == b"\x00":
            raise RemoteProtocolError(replies.NUL_IN_COMMAND, "NUL in command line")
        raise RemoteProtocolError(replies.BAD_LINE_ENDING, "bare CR or LF in command line")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteProtocolError(replies.BAD_ENCODING, "invalid UTF-8 in command line") from None


def split_command(line: str) -> tuple[str, str]:
    """``"mail FROM:<a@b>"`` → ``("MAIL", "FROM:<a@b>")``. The verb is "" if it is not alphabetic."""
    verb, _, arg = line.partition(" ")
    if not (verb.isascii() and _VERB.fullmatch(verb.encode())):
        return "", arg
    return verb.upper(), arg


def parse_mail(arg: str, *, esmtp: bool) -> tuple[Path, MailParams]:
    """``FROM:<reverse-path> [SP Mail-parameters]`` (RFC 5321 §4.1.1.2).

    A space after the colon is tolerated (many clients send one; Postfix accepts it).
    """
    if not arg.startswith("FROM:") and arg[:5].upper() != "FROM:":
        raise RemoteProtocolError(MAIL_SYNTAX, "MAIL without FROM:")
    path_text, params_text = _split(arg[5:].lstrip(" "), MAIL_SYNTAX)
    params = parse_mail_params(params_text, esmtp=esmtp)
    path = parse_path(path_text, allow_null=True, smtputf8=params.smtputf8)
    return path, params


def parse_rcpt(arg: str, *, esmtp: bool, smtputf8: bool) -> tuple[Path, RcptParams]:
    """``TO:<forward-path> [SP Rcpt-parameters]`` (RFC 5321 §4.1.1.3)."""
    if not arg.startswith("TO:") and arg[:3].upper() != "TO:":
        raise RemoteProtocolError(RCPT_SYNTAX, "RCPT without TO:")
    path_text, params_text = _split(arg[3:].lstrip(" "), RCPT_SYNTAX)
    path = parse_path(path_text, allow_null=False, smtputf8=smtputf8)
    params = parse_rcpt_params(params_text, esmtp=esmtp, smtputf8=smtputf8)
    return path, params


def _split(text: str, syntax: Reply) -> tuple[str, str]:
    try:
        path_text, rest = split_path(text)
    except AddressError as exc:
        raise RemoteProtocolError(syntax, exc.reason) from None
    if rest and not rest.startswith(" "):
        raise RemoteProtocolError(syntax, "no space between path and parameters")
    return path_text, rest


def parse_bdat(arg: str) -> tuple[int, bool]:
    """``BDAT <chunk-size> [LAST]`` (RFC 3030 §2) → (size, last)."""
    match = _BDAT.fullmatch(arg)
    if match is None:
        raise RemoteProtocolError(BDAT_SYNTAX, "malformed BDAT arguments")
    return int(match[1]), match[2] is not None


def parse_auth(arg: str) -> tuple[str, str | None]:
    """``AUTH <mechanism> [initial-response]`` (RFC 4954 §4) → (MECHANISM, response).

    The initial response is returned still base64-encoded; ``"="`` (an empty initial
    response) is returned as ``""``.
    """
    words = arg.split(" ")
    if not 1 <= len(words) <= 2 or not _MECHANISM.fullmatch(words[0].upper()):
        raise RemoteProtocolError(AUTH_SYNTAX, "malformed AUTH arguments")
    if len(words) == 1:
        return words[0].upper(), None
    initial = words[1]
    if initial == "=":
        return words[0].upper(), ""
    if not initial or not _BASE64.fullmatch(initial):
        raise RemoteProtocolError(AUTH_SYNTAX, "initial response is not base64")
    return words[0].upper(), initial


def is_base64(text: str) -> bool:
    """True if ``text`` is canonical base64 (RFC 4648 §4), as SASL responses must be."""
    return _BASE64.fullmatch(text) is not None
