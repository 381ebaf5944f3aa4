"""ServerConnection: the sans-I/O SMTP (RFC 5321) and LMTP (RFC 2033) server engine.

Bytes go in with :meth:`ServerConnection.receive_data`, events come out of
:meth:`ServerConnection.next_event`, bytes to write come out of
:meth:`ServerConnection.data_to_send`. The engine never touches a socket or a clock.
"""

# ---------------------------------------------------------------------------------------------
# Theory of operation
# ---------------------------------------------------------------------------------------------
#
# The engine is a loop the driver turns:
#
#     conn.start()                        queue the 220 greeting
#     while True:
#         ev = conn.next_event()
#         write(conn.data_to_send())       ALWAYS, before any blocking read (see below)
#         NEED_DATA        -> conn.receive_data(await read())      (b"" means EOF)
#         decision event   -> conn.accept() / conn.send(reply)     (after any async policy work)
#         notification     -> act on it (spool a DataChunk, log a CommandRejected, ...)
#         ConnectionClosed -> flush and close the socket
#
# Replies the engine writes on its own (NOOP, RSET, HELP, every refusal) come with no event
# or with a notification, and the call of next_event() that consumed them may well return
# NEED_DATA. A driver that reads before flushing data_to_send() deadlocks against a client
# waiting for that reply.
#
# Structure. The engine is split by concept, and composed, not mixed in:
#
#     server.py    this class: input buffer and mode, the event and output queues, the
#                  driver API, and what an answer to a decision changes
#     verbs.py     reading a command line, one function per verb, the refusals, the SASL
#                  line; each function takes the connection explicitly
#     state.py     InputMode, SessionState (HELO, TLS, AUTH), Transaction (MAIL, RCPT+, body)
#     limits.py    Limits: the error and junk-command counters; non-SMTP line detection
#     commands.py, data.py    the parsers: command lines, DATA and BDAT content
#
# Input modes. Every received byte is consumed by exactly one reader, chosen by `_mode`:
#
#     COMMAND      lines cut at CRLF only (RFC 5321 §2.3.8). A line holding a bare CR, a
#                  bare LF or a NUL is refused whole; it is never split into two commands.
#                  A line longer than its limit is discarded up to the next CRLF while it
#                  streams in (memory stays bounded by commands.MAX_LINE), then refused;
#                  4 KiB past its limit it is "endless": 500 5.5.2 and close at once.
#     DATA         data.DataReceiver: bulk search for CRLF.CRLF, dot-unstuffing, content
#                  checks; ends only at the real CRLF.CRLF, even when the message is
#                  already known to be refused (SMTP smuggling, security.md §1).
#     BDAT         data.BdatReceiver: exactly N raw octets, also when the BDAT command was
#                  refused, so chunk content is never read as commands (RFC 3030 §2).
#     AUTH         one raw SASL line (RFC 4954 §4) after the application sent 334.
#     TLS_PENDING  after STARTTLS: nothing is read until tls_established().
#     CLOSED       after 221/421/EOF: input is ignored, next_event() says ConnectionClosed.
#
# Decisions. MAIL, RCPT, DATA, end of message, HELO/EHLO/LHLO and AUTH need the
# application's policy, which may take time (DNS, SPF, user lookup). The engine emits the
# event and stops parsing until accept() or send() answers it. Several pipelined commands
# may sit in the buffer (RFC 2920), but they are parsed one at a time, so the replies
# always leave in command order without any bookkeeping. Everything the engine decides
# alone (syntax, sequence, limits, RSET, NOOP, ...) is answered at once and, when it is a
# refusal, reported with a CommandRejected notification for the logs.
#
# Session state (RFC 5321 §4.1.4, RFC 3207 §4.2):
#
#     greeting -> [HELO|EHLO|LHLO] -> [STARTTLS -> tls_established() -> back to greeting]
#              -> [AUTH] -> MAIL -> RCPT+ -> DATA | BDAT* BDAT LAST -> (next MAIL)
#
# RSET and a new HELO/EHLO discard the transaction; STARTTLS discards the plaintext buffer
# (CVE-2011-0411) and, once TLS is up, everything learnt before it (helo, auth).
#
# Errors. Client bytes never raise: parsers raise ReplyError subclasses carrying a Reply,
# which the dispatcher turns into that reply. Every 4yz/5yz reply is counted, the
# application's too; at `max_errors` the engine sends 421 4.7.0 and closes. Junk commands
# and non-SMTP lines (HTTP requests) have limits of their own (limits.py). API misuse by
# the driver raises LocalProtocolError.
# ---------------------------------------------------------------------------------------------

from __future__ import annotations

from collections import deque
from functools import lru_cache
from typing import cast

from . import replies
from .address import Path
from .capabilities import ehlo_reply
from .commands import LineReader
from .data import BdatReceiver, DataReceiver
from .errors import LocalProtocolError
from .events import (
    NEED_DATA,
    Auth,
    AuthResponse,
    Data,
    DataChunk,
    DecisionEvent,
    Event,
    Helo,
    MailFrom,
    MessageComplete,
    NeedData,
    RcptTo,
)
from .limits import Limits
from .reply import Reply
from .state import InputMode, SessionState, Transaction
from .verbs import CONNECTION_CLOSED, end_of_message, read_auth_line, read_command

__all__ = ["ServerConnection"]

# Built once per configuration and shared by every connection, like replies.greeting().
_cached_ehlo_reply = lru_cache(maxsize=64)(ehlo_reply)

# Module-level aliases: reading a member through the Enum class costs about ten times more
# than a global, and the engine tests the mode several times per command.
_COMMAND = InputMode.COMMAND
_DATA = InputMode.DATA
_BDAT = InputMode.BDAT
_AUTH = InputMode.AUTH
_TLS_PENDING = InputMode.TLS_PENDING
_CLOSED = InputMode.CLOSED


class ServerConnection:
    """One inbound SMTP or LMTP session, without I/O.

    Args:
        hostname: our name, used in the greeting and the EHLO reply.
        lmtp: speak LMTP (RFC 2033): LHLO instead of HELO/EHLO, and one reply per accepted
            recipient at the end of each message.
        max_message_size: octets after dot-unstuffing; 0 = unlimited. Advertised as SIZE.
        max_recipients: accepted recipients per transaction; past it 452 4.5.3
            (RFC 5321 §4.5.3.1.10). 0 = unlimited.
        max_errors: 4yz/5yz replies (the engine's and the application's) before 421 4.7.0
            and close; counted afresh after each accepted message. 0 = unlimited.
        max_junk_commands: NOOP/RSET/VRFY/EXPN/HELP served before the next gets 421 4.7.0
            and the session closes; counted afresh after each accepted message. 0 = unlimited.
        starttls_available: offer STARTTLS while TLS is not active.
        tls_active: the connection is already encrypted (implicit TLS, port 465).
        auth_mechanisms: SASL mechanisms to offer, e.g. ``("PLAIN", "LOGIN")``.
        auth_requires_tls: offer and accept AUTH only under TLS (else 538 5.7.11).
        banner: text after the hostname in the default 220 greeting.
    """

    def __init__(
        self,
        hostname: str,
        *,
        lmtp: bool = False,
        max_message_size: int = 10_240_000,
        max_recipients: int = 1000,
        max_errors: int = 20,
        max_junk_commands: int = 100,
        starttls_available: bool = False,
        tls_active: bool = False,
        auth_mechanisms: tuple[str, ...] = (),
        auth_requires_tls: bool = True,
        banner: str = "ESMTP mailboat",
    ) -> None:
        self.hostname = hostname
        self.lmtp = lmtp
        self.max_message_size = max_message_size
        self.max_recipients = max_recipients
        self.starttls_available = starttls_available
        self.auth_mechanisms = tuple(m.upper() for m in auth_mechanisms)
        self.auth_requires_tls = auth_requires_tls
        self.banner = banner
        # I/O state
        self._buf = b""
        self._pos = 0
        self._eof = False
        self._out: list[bytes] = []  # rendered replies, joined by data_to_send()
        self._pending: deque[Event] = deque()
        self._awaiting: DecisionEvent | None = None
        self._mode = _COMMAND
        self._receiver: DataReceiver | BdatReceiver | None = None
        self._lines = LineReader()
        self._started = False
        # what the engine remembers, one object per concept (state.py, limits.py)
        self._session = SessionState(tls_active=tls_active)
        self._txn = Transaction()
        self._limits = Limits(max_errors, max_junk_commands)

    # -- public read-only state ------------------------------------------------------------

    @property
    def tls_active(self) -> bool:
        """The connection is encrypted (implicit TLS, or STARTTLS completed)."""
        return self._session.tls_active

    @property
    def helo_name(self) -> str | None:
        """The HELO/EHLO/LHLO name the application accepted; None before, and after STARTTLS."""
        return self._session.helo_name

    @property
    def esmtp(self) -> bool:
        """The accepted greeting was EHLO or LHLO."""
        return self._session.esmtp

    @property
    def authenticated(self) -> bool:
        """An AUTH exchange succeeded (235)."""
        return self._session.authenticated

    @property
    def auth_identity(self) -> str | None:
        """The identity given to set_authenticated() for the successful AUTH, else None."""
        return self._session.auth_identity

    @property
    def errors(self) -> int:
        """Errors counted so far (since the last accepted message): the driver's soft limit."""
        return self._limits.errors

    @property
    def max_errors(self) -> int:
        return self._limits.max_errors

    @property
    def max_junk_commands(self) -> int:
        return self._limits.max_junk_commands

    @property
    def closed(self) -> bool:
        """True once 221/421 was queued or EOF was reached: flush data_to_send(), then close."""
        return self._mode is _CLOSED

    @property
    def awaiting_reply(self) -> bool:
        """A decision event was returned and still needs accept() or send()."""
        return self._awaiting is not None

    @property
    def accepted_recipients(self) -> tuple[Path, ...]:
        """Recipients accepted in the current transaction, in RCPT order (LMTP reply order)."""
        return tuple(self._txn.rcpts)

    @property
    def mail_from(self) -> MailFrom | None:
        """The accepted MAIL FROM of the current transaction, if any."""
        return self._txn.mail

    @property
    def smtputf8(self) -> bool:
        """The current transaction's MAIL FROM carried SMTPUTF8 (RFC 6531)."""
        mail = self._txn.mail
        return mail is not None and mail.params.smtputf8

    @property
    def body_type(self) -> str | None:
        """BODY= of the current transaction ("7BIT", "8BITMIME") or None if not given."""
        mail = self._txn.mail
        return None if mail is None else mail.params.body

    # -- driver API ------------------------------------------------------------------------

    def start(self, greeting: Reply | None = None) -> None:
        """Queue the greeting: ``220 <hostname> <banner>`` or ``greeting``.

        A 421 greeting closes the session after it. A 554 greeting keeps it open but every
        command except QUIT gets 503 5.5.1, as RFC 5321 §3.1 requires.
        """
        if self._started:
            raise LocalProtocolError("start() called twice")
        if greeting is None:
            greeting = replies.greeting(self.hostname, self.banner)
        elif greeting.code not in (220, 421, 554):
            raise LocalProtocolError(f"a greeting must be 220, 421 or 554, not {greeting.code}")
        self._started = True
        self._out.append(greeting.to_bytes())
        if greeting.code == 421:
            self._close()
        elif greeting.code == 554:
            self._session.refused = True

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the client; ``b""`` signals EOF. Ignored once closed."""
        mode = self._mode
        if mode is _CLOSED:
            return
        if self._eof:
            if data:
                raise LocalProtocolError("receive_data() after EOF")
            return
        if not data:
            self._eof = True
            return
        if mode is _TLS_PENDING:
            raise LocalProtocolError("plaintext received after STARTTLS; call tls_established() first")
        if self._pos >= len(self._buf):  # the usual case: everything before was consumed, no copy
            self._buf = bytes(data)
        else:
            self._buf = self._buf[self._pos :] + bytes(data)
        self._pos = 0

    def data_to_send(self) -> bytes:
        """Bytes to write to the client (replies), ``b""`` if none."""
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)

    def next_event(self) -> Event | NeedData:
        """Return the next event, NEED_DATA, or ConnectionClosed once the session is over.

        Parsing input may queue replies that no decision event announces (NOOP, RSET,
        refusals): flush :meth:`data_to_send` after every call, and in particular before
        blocking on a read when this returns NEED_DATA.
        """
        if not self._started:
            raise LocalProtocolError("call start() first")
        pending = self._pending
        while True:
            if pending:
                event = pending.popleft()
                if isinstance(event, DecisionEvent):
                    self._awaiting = event
                return event
            if self._awaiting is not None:
                raise LocalProtocolError(f"answer {type(self._awaiting).__name__} with accept() or send() first")
            # Consume input for one command or one content slice, with the reader of the mode.
            mode = self._mode
            if mode is _COMMAND:
                progressed = read_command(self)
            elif mode is _DATA or mode is _BDAT:
                progressed = self._read_content()
            elif mode is _AUTH:
                progressed = read_auth_line(self)
            elif mode is _CLOSED:
                return CONNECTION_CLOSED
            else:
                raise LocalProtocolError("call tls_established() after the TLS handshake")
            if not progressed:
                if not self._eof:
                    return NEED_DATA
                self._close()

    def tls_established(self) -> None:
        """The TLS handshake after a StartTls event succeeded: reset to the initial state.

        RFC 3207 §4.2: the server MUST discard any knowledge obtained from the client
        before TLS (HELO/EHLO argument, authentication, transaction).
        """
        if self._mode is not _TLS_PENDING:
            raise LocalProtocolError("tls_established() without a preceding StartTls")
        self._session.tls_active = True
        self._session.forget_client()
        self._txn.reset()
        self._buf, self._pos = b"", 0
        self._mode = _COMMAND

    def set_authenticated(self, identity: str) -> None:
        """Record the identity the pending AUTH exchange proved; then ``send()`` a 235."""
        if not isinstance(self._awaiting, Auth | AuthResponse):
            raise LocalProtocolError("set_authenticated() outside an AUTH exchange")
        self._session.pending_identity = identity

    def accept(self) -> None:
        """Answer the pending decision with its default positive reply."""
        event = self._awaiting
        kind = type(event)  # decision events are the engine's own, never subclassed
        if kind is MailFrom:
            self.send(replies.MAIL_OK)
        elif kind is RcptTo:
            self.send(replies.RCPT_OK)
        elif kind is Data:
            self.send(replies.START_DATA)
        elif kind is Helo:
            self.send(replies.helo(self.hostname) if cast(Helo, event).kind == "HELO" else self._capabilities())
        elif event is None:
            raise LocalProtocolError("accept() with no decision pending")
        else:
            raise LocalProtocolError(f"{kind.__name__} has no default reply; use send()")

    def send(self, reply: Reply) -> None:
        """Answer the pending decision with ``reply`` (a refusal or a custom positive reply).

        Raises LocalProtocolError if nothing is pending or the code makes no sense here
        (e.g. 354 to RCPT, or 235 without set_authenticated()).
        """
        event = self._awaiting
        if event is None:
            raise LocalProtocolError("send() with no decision pending")
        code = reply.code
        positive = code < 400
        kind = type(event)
        # Which positive codes fit which decision; any 4yz/5yz refusal fits all of them.
        if kind is Data:
            ok = code == 354 or not positive
        elif kind is Auth or kind is AuthResponse:
            ok = code in (334, 235) or not positive
            if code == 235 and self._session.pending_identity is None:
                raise LocalProtocolError("call set_authenticated(identity) before sending 235")
        else:  # Helo, MailFrom, RcptTo, MessageComplete
            ok = 200 <= code < 300 or not positive
        if not ok:
            raise LocalProtocolError(f"reply code {code} is not valid for {kind.__name__}")
        self._out.append(reply.to_bytes())
        self._awaiting = None
        # What an answer changes in the session state.
        if kind is MailFrom:
            if positive:
                txn = self._txn
                txn.reset()
                txn.mail = cast(MailFrom, event)
        elif kind is RcptTo:
            if positive:
                self._txn.rcpts.append(cast(RcptTo, event).path)
        elif kind is Data:
            if positive:
                self._txn.body_kind = "DATA"
                self._receiver = DataReceiver(self.max_message_size)
                self._mode = _DATA
        elif kind is MessageComplete:
            txn = self._txn
            txn.replies_owed -= 1
            if txn.replies_owed > 0 and code != 421:
                self._awaiting = event  # LMTP: one reply per accepted recipient
            else:
                txn.reset()
                if positive:
                    self._limits.message_accepted()
        elif kind is Helo:
            if positive:
                session, helo = self._session, cast(Helo, event)
                session.helo_name, session.esmtp = helo.domain, helo.kind != "HELO"
        elif kind is Auth or kind is AuthResponse:
            session = self._session
            if code == 334:
                self._mode = _AUTH
            elif code == 235:
                session.authenticated, session.auth_identity = True, session.pending_identity
            if code != 334:
                session.pending_identity = None
        if code == 421:  # RFC 5321 §3.8: the server closes after 421
            self._close()
        elif not positive and self._awaiting is None:  # (LMTP: once per message)
            self._count_error()

    # -- internals: reading ------------------------------------------------------------------

    def _read_content(self) -> bool:
        receiver = self._receiver
        assert receiver is not None
        start = self._pos
        self._pos, content, done = receiver.feed(self._buf, start)
        if content:
            self._pending.append(DataChunk(content))
        if done:
            self._mode = _COMMAND
            self._receiver = None
            if type(receiver) is DataReceiver:
                end_of_message(self, receiver.check)
            elif receiver.check is None:
                pass  # the octets of a refused BDAT: already answered
            elif cast(BdatReceiver, receiver).last:
                end_of_message(self, receiver.check)
            else:
                self._out.append(replies.bdat_received(cast(BdatReceiver, receiver).chunk_size).to_bytes())
            return True
        return self._pos > start or bool(content)

    # -- internals (also used by verbs.py) ---------------------------------------------------

    def _capabilities(self) -> Reply:
        return _cached_ehlo_reply(
            self.hostname,
            max_message_size=self.max_message_size,
            starttls=self.starttls_available and not self._session.tls_active,
            auth_mechanisms=self.auth_mechanisms if self._auth_allowed() else (),
        )

    def _auth_allowed(self) -> bool:
        return bool(self.auth_mechanisms) and (self._session.tls_active or not self.auth_requires_tls)

    def _count_error(self) -> None:
        """One more 4yz/5yz reply: at max_errors, 421 4.7.0 and close (limits.py)."""
        if self._limits.error():
            self._out.append(replies.TOO_MANY_ERRORS.to_bytes())
            self._close()

    def _close(self) -> None:
        self._mode = _CLOSED
        self._buf, self._pos = b"", 0
        self._receiver = None
        self._awaiting = None
