"""Per-session abuse limits of ServerConnection: errors, junk commands, non-SMTP input.

The engine's share of what Postfix's smtpd does with smtpd_hard_error_limit,
smtpd_junk_command_limit and smtpd_forbidden_commands. It counts; the driver, which has the
clock, does the slowing down past a soft limit (smtpd_soft_error_limit) by reading
:attr:`ServerConnection.errors` before it writes a reply.

* **Errors**: every 4yz/5yz reply to a command, whether the engine refused it (syntax,
  sequence) or the application did (an unknown recipient, a relay refusal, a policy verdict).
  At ``max_errors`` the engine adds ``421 4.7.0`` and closes: recipient harvesting and
  dictionary probes cost one connection per ``max_errors`` guesses. Two replies do not count:
  ``452 4.5.3`` past the recipient limit (a client sending a long list in one go is not at
  fault; Postfix's smtpd_recipient_overshoot_limit) and a cancelled AUTH (``*``).
* **Junk commands**: NOOP, RSET, VRFY, EXPN and HELP change nothing; past
  ``max_junk_commands`` of them the next gets ``421 4.7.0`` and the session closes, so a
  client cannot hold a connection slot by chattering.
* Both counts start again after a message was accepted: a client that delivers mail is not
  the one these limits are for (Postfix: "errors ... without delivering mail").
* **Non-SMTP input**: an HTTP request line (``GET /``, ``POST /``, ``CONNECT host:port``,
  ``HEAD``, ``PUT``, ``OPTIONS``, ...) or a message-header-looking line (``Host:``,
  ``User-Agent:``: a field name and a colon in command position) gets ``521 5.7.0`` and the
  session ends before anything buffered after it runs. A browser made to POST to port 25 (a
  cross-protocol attack) thus delivers nothing, whatever SMTP its body carries.
"""

from __future__ import annotations

import re
from collections import deque
from typing import TYPE_CHECKING

from . import replies
from .events import CommandRejected, Event, NonSmtpCommand
from .reply import Reply

__all__ = ["SessionLimits", "is_non_smtp"]

# HTTP/1.x methods (RFC 9110 §9, RFC 5789) and WebDAV's commonest, then an RFC 5322 field
# name (printable, no colon) followed by a colon and a space, a tab or the end of the line.
_NON_SMTP = re.compile(
    r"(?:GET|POST|HEAD|PUT|DELETE|OPTIONS|PATCH|TRACE|CONNECT|PROPFIND)(?: |$)|[!-9;-~]+:(?:[ \t]|$)",
    re.IGNORECASE,
)


def is_non_smtp(line: str) -> bool:
    """True for an HTTP request line or a header line sent where a command belongs."""
    return _NON_SMTP.match(line) is not None


class SessionLimits:
    """Mixin of :class:`~mailboat.smtp.server.ServerConnection`: refusals and the counters."""

    # Provided by ServerConnection (declared for type checkers).
    if TYPE_CHECKING:
        max_errors: int
        max_junk_commands: int
        _errors: int
        _junk: int
        _out: list[bytes]
        _pending: deque[Event]

        def _close(self) -> None: ...

    @property
    def errors(self) -> int:
        """Errors counted so far (since the last accepted message): the driver's soft limit."""
        return self._errors

    def _reject(self, command: bytes | str, reply: Reply, *, count: bool = True) -> None:
        """Send an engine refusal, report it, and enforce max_errors."""
        if isinstance(command, bytes):
            command = command.decode("utf-8", "backslashreplace")
        if command[:4].upper() == "AUTH":
            command = " ".join(command.split()[:2])  # never log SASL initial responses
        self._out.append(reply.to_bytes())
        self._pending.append(CommandRejected(command[:200], reply))
        if count:
            self._count_error()

    def _count_error(self) -> None:
        """One more 4yz/5yz reply: at max_errors, 421 4.7.0 and close."""
        self._errors += 1
        if self.max_errors and self._errors >= self.max_errors:
            self._out.append(replies.TOO_MANY_ERRORS.to_bytes())
            self._close()

    def _junk_command(self, line: str) -> bool:
        """Count NOOP/RSET/VRFY/EXPN/HELP; True if this one is over the limit (421 sent, closed)."""
        self._junk += 1
        if self.max_junk_commands and self._junk > self.max_junk_commands:
            self._reject(line, replies.TOO_MANY_JUNK, count=False)
            self._close()
            return True
        return False

    def _non_smtp(self, line: bytes | str) -> None:
        """521 5.7.0 and close: nothing after this line is read (see the module docstring)."""
        if isinstance(line, bytes):
            line = line.decode("utf-8", "backslashreplace")
        self._out.append(replies.NON_SMTP_COMMAND.to_bytes())
        self._pending.append(NonSmtpCommand(line[:200], replies.NON_SMTP_COMMAND))
        self._close()

    def _message_accepted(self) -> None:
        """A message was taken in: the error and junk counts start again."""
        self._errors = 0
        self._junk = 0
