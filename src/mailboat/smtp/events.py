"""Events produced by :meth:`ServerConnection.next_event` (h11 style), plus the NEED_DATA sentinel.

Two kinds:

* **Decision events** (:class:`Helo`, :class:`MailFrom`, :class:`RcptTo`, :class:`Data`,
  :class:`MessageComplete`, :class:`Auth`, :class:`AuthResponse`): the engine stops reading
  input until the application answers with ``accept()`` or ``send(reply)``.
* **Notifications** (everything else): informational, no answer expected. The engine has
  already queued any reply they imply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, final

from .address import Path
from .params import MailParams, RcptParams
from .reply import Reply

__all__ = [
    "Event",
    "DecisionEvent",
    "Helo",
    "MailFrom",
    "RcptTo",
    "Data",
    "MessageComplete",
    "Auth",
    "AuthResponse",
    "DataChunk",
    "MessageAborted",
    "Reset",
    "StartTls",
    "Quit",
    "CommandRejected",
    "NonSmtpCommand",
    "ConnectionClosed",
    "NeedData",
    "NEED_DATA",
]


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of all events."""


@dataclass(frozen=True, slots=True)
class DecisionEvent(Event):
    """Base class of the events that must be answered with ``accept()`` or ``send()``."""


# -- decisions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Helo(DecisionEvent):
    """HELO / EHLO (RFC 5321 §4.1.1.1) or LHLO (RFC 2033 §4.1). Default: 250 (+ capabilities)."""

    domain: str
    kind: Literal["HELO", "EHLO", "LHLO"]


@dataclass(frozen=True, slots=True)
class MailFrom(DecisionEvent):
    """MAIL FROM (RFC 5321 §4.1.1.2). Default: 250 2.1.0. A 2yz answer opens the transaction."""

    path: Path
    params: MailParams


@dataclass(frozen=True, slots=True)
class RcptTo(DecisionEvent):
    """RCPT TO (RFC 5321 §4.1.1.3). Default: 250 2.1.5. A 2yz answer adds the recipient."""

    path: Path
    params: RcptParams


@dataclass(frozen=True, slots=True)
class Data(DecisionEvent):
    """DATA with at least one accepted recipient. Default: 354; a 4yz/5yz answer refuses it."""


@dataclass(frozen=True, slots=True)
class MessageComplete(DecisionEvent):
    """End of DATA (CRLF.CRLF) or BDAT LAST, content valid. No default reply.

    SMTP: answer once. LMTP (RFC 2033 §4.2): answer once per accepted recipient, in RCPT order
    (see ``ServerConnection.accepted_recipients``).

    Attributes:
        size: message size in octets, after dot-unstuffing.
    """

    size: int


@dataclass(frozen=True, slots=True)
class Auth(DecisionEvent):
    """AUTH (RFC 4954 §4) with an advertised mechanism.

    Answer 334 <base64 challenge> to continue (the next client line becomes an
    :class:`AuthResponse`), 235 after ``set_authenticated()``, or 4yz/5yz to fail.

    Attributes:
        mechanism: upper-cased, one of the configured mechanisms.
        initial_response: base64 text as sent; ``""`` for ``=`` (empty); None if absent.
    """

    mechanism: str
    initial_response: str | None


@dataclass(frozen=True, slots=True)
class AuthResponse(DecisionEvent):
    """One client line of a SASL exchange, base64 text as sent (never ``*``: the engine handles it)."""

    data: str


# -- notifications ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataChunk(Event):
    """Message content: DATA already dot-unstuffed with CRLF kept, or BDAT octets as sent.

    Never contains the terminating ``.\\r\\n``. Stops once the engine knows it will refuse
    the message (size, bare CR/LF, NUL, long line): a :class:`MessageAborted` follows.
    """

    data: bytes


@dataclass(frozen=True, slots=True)
class MessageAborted(Event):
    """The engine refused the message at its end and already sent ``reply``; discard the spool.

    Attributes:
        reply: the reply sent (in LMTP, sent once per accepted recipient).
        reason: internal explanation for logs.
    """

    reply: Reply
    reason: str


@dataclass(frozen=True, slots=True)
class Reset(Event):
    """The mail transaction was discarded (RSET, or HELO/EHLO/LHLO/STARTTLS during one)."""


@dataclass(frozen=True, slots=True)
class StartTls(Event):
    """STARTTLS accepted: flush ``data_to_send()``, handshake, then call ``tls_established()``."""


@dataclass(frozen=True, slots=True)
class Quit(Event):
    """QUIT: 221 was queued and the connection is closed after it."""


@dataclass(frozen=True, slots=True)
class CommandRejected(Event):
    """The engine refused a command on its own (syntax, sequence, limits). For logs.

    Attributes:
        command: the command line, decoded leniently and truncated; AUTH arguments are
            replaced by the mechanism name so credentials never reach logs.
        reply: the reply sent.
    """

    command: str
    reply: Reply


@dataclass(frozen=True, slots=True)
class NonSmtpCommand(Event):
    """A line that is not SMTP at all (an HTTP request line, a header) was sent as a command.

    The engine already queued ``reply`` (521 5.7.0) and closed: the rest of the input,
    e.g. SMTP commands hidden in the body of an HTTP POST, is never run (cross-protocol
    attacks; Postfix smtpd_forbidden_commands). A ConnectionClosed follows.

    Attributes:
        command: the line, decoded leniently and truncated, for the log.
        reply: the reply sent.
    """

    command: str
    reply: Reply


@dataclass(frozen=True, slots=True)
class ConnectionClosed(Event):
    """The session is over (QUIT, 421, EOF). Returned forever once reached."""


@final
class NeedData:
    """Sentinel type: the engine needs more bytes from ``receive_data()``."""

    _instance: NeedData | None = None

    def __new__(cls) -> NeedData:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()
