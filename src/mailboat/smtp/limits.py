"""Per-session abuse limits of ServerConnection: errors, junk commands, non-SMTP input.

The engine's share of what Postfix's smtpd does with smtpd_hard_error_limit,
smtpd_junk_command_limit and smtpd_forbidden_commands. :class:`Limits` counts; the connection
sends the refusals (`verbs.reject`, `verbs.refuse_non_smtp`); the driver, which has the clock,
does the slowing down past a soft limit (smtpd_soft_error_limit) by reading
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

__all__ = ["Limits", "is_non_smtp"]

# HTTP/1.x methods (RFC 9110 §9, RFC 5789) and WebDAV's commonest, then an RFC 5322 field
# name (printable, no colon) followed by a colon and a space, a tab or the end of the line.
_NON_SMTP = re.compile(
    r"(?:GET|POST|HEAD|PUT|DELETE|OPTIONS|PATCH|TRACE|CONNECT|PROPFIND)(?: |$)|[!-9;-~]+:(?:[ \t]|$)",
    re.IGNORECASE,
)


def is_non_smtp(line: str) -> bool:
    """True for an HTTP request line or a header line sent where a command belongs."""
    return _NON_SMTP.match(line) is not None


class Limits:
    """The error and junk-command counters of one session, with their limits (0 = unlimited).

    It only counts: the connection sends the 421 and closes when a method says a limit is
    reached, and the driver reads :attr:`errors` for its soft limit.
    """

    __slots__ = ("max_errors", "max_junk_commands", "errors", "junk")

    def __init__(self, max_errors: int, max_junk_commands: int) -> None:
        self.max_errors = max_errors
        self.max_junk_commands = max_junk_commands
        self.errors = 0  # 4yz/5yz replies since the last accepted message
        self.junk = 0  # NOOP, RSET, VRFY, EXPN, HELP since the last accepted message

    def error(self) -> bool:
        """Count one 4yz/5yz reply; True when that reaches max_errors (421 4.7.0, close)."""
        self.errors += 1
        return bool(self.max_errors) and self.errors >= self.max_errors

    def junk_command(self) -> bool:
        """Count one junk command; True when it is past max_junk_commands (421 4.7.0, close)."""
        self.junk += 1
        return bool(self.max_junk_commands) and self.junk > self.max_junk_commands

    def message_accepted(self) -> None:
        """A message was taken in: both counts start again."""
        self.errors = 0
        self.junk = 0
