"""Exceptions of the SMTP engine.

Two families, as in h11: :class:`LocalProtocolError` means *our* caller (the asyncio driver or
the application) misused the API; :class:`ReplyError` and its subclasses mean the *peer* sent
something we refuse, and always carry the :class:`~mailboat.smtp.reply.Reply` to send. The
server engine catches every ``ReplyError`` internally and turns it into a reply: client bytes
never make :class:`~mailboat.smtp.server.ServerConnection` raise.
"""

from __future__ import annotations

from .reply import Reply

__all__ = [
    "ProtocolError",
    "LocalProtocolError",
    "ReplyError",
    "RemoteProtocolError",
    "AddressError",
    "ParameterError",
]


class ProtocolError(Exception):
    """Base class of every exception raised by :mod:`mailboat.smtp`."""


class LocalProtocolError(ProtocolError):
    """The driver or application used the engine wrongly (e.g. ``send()`` with nothing pending)."""


class ReplyError(ProtocolError):
    """The peer sent something we refuse.

    Attributes:
        reply: what to answer (client-facing, generic text).
        reason: why, for logs only; never sent (maddy HACKING.md: keep the two apart).
    """

    def __init__(self, reply: Reply, reason: str = "") -> None:
        super().__init__(reason or reply.text)
        self.reply = reply
        self.reason = reason or reply.text


class RemoteProtocolError(ReplyError):
    """A command line or reply from the peer violates the protocol (syntax, sequence, limits)."""


class AddressError(ReplyError):
    """A reverse-path or forward-path does not follow RFC 5321 §4.1.2 or exceeds §4.5.3.1 limits."""


class ParameterError(ReplyError):
    """A MAIL or RCPT ESMTP parameter is unknown, duplicated or malformed."""
