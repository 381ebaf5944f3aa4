"""The values and events of the sans-I/O SMTP/LMTP client engine (smtp/client.py).

The driver receives these from ``ClientConnection.next_event()``; see client.py's theory of
operation for the order they come in.
"""

from __future__ import annotations

from dataclasses import dataclass

from .reply import Reply

__all__ = ["TransactionResult", "ClientEvent", "Greeting", "HelloDone", "TlsReady", "TransactionDone", "Closed"]


@dataclass(frozen=True, slots=True)
class TransactionResult:
    """Per-recipient replies of one transaction, in RCPT order.

    ``replies[i]`` decided ``recipients[i]``: the MAIL reply if MAIL was refused, else its RCPT
    reply if refused, else the DATA reply if refused, else the (LMTP: its own) final reply.
    Replies made up locally (SIZE, SMTPUTF8, lost connection) have ``remote`` False.
    """

    recipients: tuple[str, ...]
    replies: tuple[Reply, ...]
    remote: tuple[bool, ...]


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """Base class of the client engine's events."""


@dataclass(frozen=True, slots=True)
class Greeting(ClientEvent):
    """The server's opening reply; 220 means go on with :meth:`ClientConnection.hello`."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class HelloDone(ClientEvent):
    """The final EHLO/HELO/LHLO reply; when positive, ``conn.capabilities`` is filled."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class TlsReady(ClientEvent):
    """The STARTTLS reply. 220: handshake now, then ``tls_established()``; else still plaintext."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class TransactionDone(ClientEvent):
    """Every reply of the transaction arrived; the session is ready for the next one."""

    result: TransactionResult


@dataclass(frozen=True, slots=True)
class Closed(ClientEvent):
    """The session is over: the reply to QUIT, a 421, or None for EOF. Returned forever."""

    reply: Reply | None
