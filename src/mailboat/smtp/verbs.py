"""Per-verb command handling for ServerConnection: state checks, argument parsing, events.

RFC 5321 §4.1.1 (commands), §4.1.4 (order of commands), §3.3 (mail transactions);
RFC 2033 §4.1 (LHLO); RFC 3030 (BDAT); RFC 3207 (STARTTLS); RFC 4954 (AUTH).

Each handler either queues a decision event for the application, answers by itself, or
raises a :class:`~mailboat.smtp.errors.ReplyError` that the dispatcher turns into a refusal.
Sequence checks come before argument parsing, as in Postfix: a client that is out of step
learns that first.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import replies
from .commands import (
    MAX_AUTH_LINE,
    LineTooLong,
    is_base64,
    parse_auth,
    parse_bdat,
    parse_mail,
    parse_rcpt,
    split_command,
)
from .data import BdatReceiver, ContentCheck
from .errors import ReplyError
from .events import (
    Auth,
    AuthResponse,
    ConnectionClosed,
    Data,
    Event,
    Helo,
    MailFrom,
    MessageAborted,
    MessageComplete,
    Quit,
    RcptTo,
    Reset,
    StartTls,
)
from .limits import is_non_smtp
from .reply import Reply

if TYPE_CHECKING:
    from .address import Path

__all__ = ["VerbHandlers", "InputMode"]


class InputMode(enum.Enum):
    """Which reader consumes the next input octets (see the theory block in server.py)."""

    COMMAND = "command"
    DATA = "data"
    BDAT = "bdat"
    AUTH = "auth"
    TLS_PENDING = "tls-pending"
    CLOSED = "closed"


# Module-level aliases: reading a member through the Enum class costs about ten times more
# than a global, and the engine tests the mode several times per command.
_COMMAND = InputMode.COMMAND
_DATA = InputMode.DATA
_BDAT = InputMode.BDAT
_AUTH = InputMode.AUTH
_TLS_PENDING = InputMode.TLS_PENDING
_CLOSED = InputMode.CLOSED

# Events without fields are immutable values: one instance each serves every connection.
_DATA_EVENT = Data()
_RESET = Reset()
_QUIT = Quit()
_START_TLS = StartTls()
CONNECTION_CLOSED = ConnectionClosed()


_SYNTAX = {
    verb: Reply.make(501, "5.5.4", f"Syntax: {usage}")
    for verb, usage in {
        "HELO": "HELO hostname",
        "EHLO": "EHLO hostname",
        "LHLO": "LHLO hostname",
        "DATA": "DATA",
        "RSET": "RSET",
        "QUIT": "QUIT",
        "VRFY": "VRFY address",
        "STARTTLS": "STARTTLS",
    }.items()
}


class VerbHandlers:
    """Mixin holding the command handlers of :class:`~mailboat.smtp.server.ServerConnection`."""

    # Provided by ServerConnection (declared for type checkers).
    if TYPE_CHECKING:
        lmtp: bool
        max_message_size: int
        max_recipients: int
        starttls_available: bool
        auth_mechanisms: tuple[str, ...]
        tls_active: bool
        helo_name: str | None
        esmtp: bool
        authenticated: bool
        _pending: deque[Event]
        _refused_session: bool
        _mail: MailFrom | None
        _rcpts: list[Path]
        _rcpt_attempted: bool
        _body_kind: str | None
        _bdat_check: ContentCheck | None
        _receiver: Any
        _mode: InputMode
        _buf: bytes
        _pos: int
        _out: list[bytes]
        _final_replies_left: int

        def _reply(self, reply: Reply) -> None: ...
        def _read_line(self, limit: int | None = None) -> bytes | LineTooLong | None: ...
        def _reject(self, command: bytes | str, reply: Reply, *, count: bool = True) -> None: ...
        def _count_error(self) -> None: ...
        def _junk_command(self, line: str) -> bool: ...
        def _non_smtp(self, line: bytes | str) -> None: ...
        def _reset_transaction(self) -> None: ...
        def _auth_allowed(self) -> bool: ...
        def _close(self) -> None: ...
        @property
        def closed(self) -> bool: ...

    def _handle_command(self, line: str) -> None:
        """Check one decoded command line against the session, then run its verb's handler.

        The verb is looked up in :data:`_VERBS` as written first (clients send upper case),
        and only then through :func:`split_command`, which validates and upper-cases it.
        """
        verb, _, arg = line.partition(" ")
        handler = _VERBS.get(verb)
        if handler is None:
            if is_non_smtp(line):  # HTTP or a header: end the session before anything else runs
                self._non_smtp(line)
                return
            verb, arg = split_command(line)
            handler = _VERBS.get(verb, VerbHandlers._unknown)
        if not line.isascii() and verb not in ("MAIL", "RCPT"):
            self._reject(line, replies.BAD_ENCODING)  # 8-bit only in SMTPUTF8 paths
            return
        if self._refused_session and verb != "QUIT":
            self._reject(line, replies.SESSION_REFUSED)
            return
        try:
            handler(self, verb, arg, line)
        except ReplyError as exc:
            self._reject(line, exc.reply)

    # -- helpers ---------------------------------------------------------------------------

    def _no_argument(self, verb: str, arg: str) -> None:
        if arg.strip(" "):
            raise ReplyError(_SYNTAX[verb], f"{verb} takes no argument")

    def _require_helo(self) -> None:
        if self.helo_name is None:
            raise ReplyError(replies.NEED_LHLO if self.lmtp else replies.NEED_HELO, "no HELO yet")

    def _require_recipients(self) -> None:
        """Shared by DATA and BDAT: a transaction with at least one accepted recipient."""
        self._require_helo()
        if self._mail is None:
            raise ReplyError(replies.NEED_MAIL, "no MAIL yet")
        if not self._rcpts:
            if self._rcpt_attempted:  # RFC 5321 §3.3: 554 when every RCPT was refused
                raise ReplyError(replies.NO_VALID_RECIPIENTS, "no recipient accepted")
            raise ReplyError(replies.NEED_RCPT, "no RCPT yet")

    # -- verbs -----------------------------------------------------------------------------

    # Every handler takes (verb, arg, line): the upper-cased verb, the text after its space,
    # and the whole line (for the logs of a refusal). Each ignores what it does not need.

    def _hello(self, verb: str, arg: str, line: str) -> None:
        if (verb == "LHLO") != self.lmtp:
            raise ReplyError(replies.WRONG_MODE, f"{verb} in {'LMTP' if self.lmtp else 'SMTP'} mode")
        domain = arg.strip(" ")
        # Policy on the name (FCrDNS, syntax) is the application's; we only need one word.
        if not domain or " " in domain or not domain.isprintable():
            raise ReplyError(_SYNTAX[verb], f"{verb} without a single hostname")
        if self._mail is not None:  # RFC 5321 §4.1.4: EHLO implies RSET
            self._reset_transaction()
            self._pending.append(_RESET)
        self.helo_name, self.esmtp = None, False
        kind = "HELO" if verb == "HELO" else "EHLO" if verb == "EHLO" else "LHLO"
        self._pending.append(Helo(domain, kind))

    def _mail_from(self, verb: str, arg: str, line: str) -> None:
        self._require_helo()
        if self._mail is not None:
            raise ReplyError(replies.NESTED_MAIL, "MAIL inside a transaction")
        path, params = parse_mail(arg, esmtp=self.esmtp)
        if params.size is not None and self.max_message_size and params.size > self.max_message_size:
            raise ReplyError(replies.MESSAGE_TOO_BIG, f"declared SIZE {params.size}")  # RFC 1870 §6.1
        self._pending.append(MailFrom(path, params))

    def _rcpt_to(self, verb: str, arg: str, line: str) -> None:
        self._require_helo()
        if self._mail is None:
            raise ReplyError(replies.NEED_MAIL, "RCPT before MAIL")
        self._rcpt_attempted = True
        if self.max_recipients and len(self._rcpts) >= self.max_recipients:
            self._reject(f"RCPT {arg}", replies.TOO_MANY_RECIPIENTS, count=False)
            return
        path, params = parse_rcpt(arg, esmtp=self.esmtp, smtputf8=self._mail.params.smtputf8)
        self._pending.append(RcptTo(path, params))

    def _data(self, verb: str, arg: str, line: str) -> None:
        self._no_argument("DATA", arg)
        self._require_recipients()
        if self._body_kind == "BDAT":  # RFC 3030 §3: DATA and BDAT never mix
            raise ReplyError(replies.DATA_AFTER_BDAT, "DATA after BDAT")
        self._pending.append(_DATA_EVENT)

    def _bdat(self, verb: str, arg: str, line: str) -> None:
        try:
            size, last = parse_bdat(arg)
        except ReplyError as exc:
            # Without a size we cannot skip the chunk: its octets would be read as commands.
            self._reject(line, exc.reply)
            if not self.closed:
                self._reply(replies.BDAT_UNSYNCHRONISED)
                self._close()
            return
        check: ContentCheck | None = None
        try:
            self._require_recipients()
            if not self.esmtp:
                raise ReplyError(replies.NEED_EHLO, "BDAT needs EHLO/LHLO (CHUNKING)")
        except ReplyError as exc:
            self._reject(line, exc.reply)  # the chunk is still read, and dropped
        else:
            if self._bdat_check is None:
                self._bdat_check = ContentCheck(self.max_message_size)
            self._body_kind = "BDAT"
            check = self._bdat_check
        if not self.closed:
            self._receiver = BdatReceiver(size, last, check)
            self._mode = _BDAT

    def _starttls(self, verb: str, arg: str, line: str) -> None:
        if self.tls_active:
            raise ReplyError(replies.TLS_ALREADY_ACTIVE, "STARTTLS under TLS")
        if not self.starttls_available:
            raise ReplyError(replies.NOT_IMPLEMENTED, "STARTTLS not offered")
        self._no_argument("STARTTLS", arg)
        if self._mail is not None:
            raise ReplyError(replies.STARTTLS_IN_TRANSACTION, "STARTTLS inside a transaction")
        self._reply(replies.TLS_READY)
        # CVE-2011-0411: whatever follows STARTTLS in the plaintext buffer was not sent
        # through TLS and must never be executed as if it had been.
        self._buf, self._pos = b"", 0
        self._mode = _TLS_PENDING
        self._pending.append(_START_TLS)

    def _auth(self, verb: str, arg: str, line: str) -> None:
        if not self.auth_mechanisms:
            raise ReplyError(replies.NOT_IMPLEMENTED, "AUTH not offered")
        if self.helo_name is None or not self.esmtp:
            raise ReplyError(replies.NEED_EHLO, "AUTH before EHLO")
        if self.authenticated:
            raise ReplyError(replies.ALREADY_AUTHENTICATED, "second AUTH")  # RFC 4954 §4
        if self._mail is not None:
            raise ReplyError(replies.AUTH_IN_TRANSACTION, "AUTH inside a transaction")
        if not self._auth_allowed():
            raise ReplyError(replies.ENCRYPTION_REQUIRED, "AUTH before TLS")  # RFC 4954 §6
        mechanism, initial = parse_auth(arg)
        if mechanism not in self.auth_mechanisms:
            raise ReplyError(replies.UNKNOWN_MECHANISM, f"mechanism {mechanism}")
        self._pending.append(Auth(mechanism, initial))

    def _rset(self, verb: str, arg: str, line: str) -> None:
        if self._junk_command(line):
            return
        self._no_argument(verb, arg)
        self._reset_transaction()
        self._pending.append(_RESET)
        self._reply(replies.RESET_OK)

    def _noop(self, verb: str, arg: str, line: str) -> None:
        if self._junk_command(line):
            return
        self._reply(replies.NOOP_OK)  # RFC 5321 §4.1.1.9: an argument is allowed

    def _quit(self, verb: str, arg: str, line: str) -> None:
        self._no_argument(verb, arg)
        self._reply(replies.GOODBYE)
        self._pending.append(_QUIT)
        self._close()

    def _vrfy(self, verb: str, arg: str, line: str) -> None:
        if self._junk_command(line):
            return
        if not arg.strip():
            raise ReplyError(_SYNTAX["VRFY"], "VRFY without argument")
        self._reply(replies.VRFY_CANNOT)  # RFC 5321 §3.5.3: 252, never disclose

    def _expn(self, verb: str, arg: str, line: str) -> None:
        if self._junk_command(line):
            return
        self._reply(replies.EXPN_DISABLED)  # RFC 5321 §7.3: lists are not exposed

    def _help(self, verb: str, arg: str, line: str) -> None:
        if self._junk_command(line):
            return
        self._reply(replies.HELP)

    def _unknown(self, verb: str, arg: str, line: str) -> None:
        raise ReplyError(replies.UNRECOGNIZED, "unknown command")

    # -- phases that follow a command: end of message, SASL continuation lines ----------------

    def _end_of_message(self, check: ContentCheck) -> None:
        """CRLF.CRLF or the end of BDAT LAST: ask the application, or refuse on our own."""
        count = len(self._rcpts) if self.lmtp else 1
        if check.error is None:
            self._final_replies_left = count
            self._pending.append(MessageComplete(check.size))
            return
        reply, reason = check.error
        self._out.append(reply.to_bytes() * count)  # LMTP: one reply per accepted recipient
        self._pending.append(MessageAborted(reply, reason))
        self._reset_transaction()
        self._count_error()

    def _read_auth_line(self) -> bool:
        """One client line of a SASL exchange (RFC 4954 §4), after the application sent 334."""
        line = self._read_line(MAX_AUTH_LINE)
        if line is None:
            return False
        self._mode = _COMMAND  # the exchange ends unless the application sends 334
        if isinstance(line, LineTooLong):
            self._reject(b"<SASL response>", replies.AUTH_LINE_TOO_LONG, count=not line.endless)
            if line.endless:
                self._close()
        elif line == b"*":  # RFC 4954 §4: the client cancels
            self._reject(b"*", replies.AUTH_CANCELLED, count=False)
        elif not line.isascii() or not is_base64(line.decode("ascii")):
            self._reject(b"<SASL response>", replies.AUTH_BAD_RESPONSE)
        else:
            self._pending.append(AuthResponse(line.decode("ascii")))
        return True


_VERBS: dict[str, Callable[[VerbHandlers, str, str, str], None]] = {
    "HELO": VerbHandlers._hello,
    "EHLO": VerbHandlers._hello,
    "LHLO": VerbHandlers._hello,
    "MAIL": VerbHandlers._mail_from,
    "RCPT": VerbHandlers._rcpt_to,
    "DATA": VerbHandlers._data,
    "BDAT": VerbHandlers._bdat,
    "RSET": VerbHandlers._rset,
    "NOOP": VerbHandlers._noop,
    "QUIT": VerbHandlers._quit,
    "VRFY": VerbHandlers._vrfy,
    "EXPN": VerbHandlers._expn,
    "HELP": VerbHandlers._help,
    "STARTTLS": VerbHandlers._starttls,
    "AUTH": VerbHandlers._auth,
}
"""Each verb's handler, keyed by the upper-cased verb (RFC 5321 §4.1.1; RFC 3030, 3207, 4954)."""
