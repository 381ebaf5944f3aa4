"""Limits every session of a server shares: connection counts, time-outs, sizes, error pacing.

Plain values built by mailboat.app from `[limits]` and `[timeouts]`. The protocol engine
counts errors and junk commands itself (smtp/limits.py); what needs a clock, such as the pause
before each error reply past `soft_errors` (Postfix smtpd_soft_error_limit and
smtpd_error_sleep_time), is done here and in the session.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

from mailboat import smtp

__all__ = ["ConnectionCounter", "ErrorPacer", "Limits", "ReadDeadline"]


@dataclass(slots=True)
class Limits:
    message_size: int = 10_240_000
    recipients: int = 1000
    errors: int = 20  # 4xx/5xx replies before 421 4.7.0 and close (the engine's max_errors)
    # Past this many errors each further error reply waits error_sleep first, so guessing
    # recipients or passwords costs time as well as connections. 0 = never.
    soft_errors: int = 10
    error_sleep: float = 1.0
    junk_commands: int = 100  # NOOP/RSET/VRFY/EXPN/HELP before 421 4.7.0; 0 = unlimited
    connections: int = 1000
    connections_per_ip: int = 50
    command_timeout: float = 300.0
    data_timeout: float = 180.0
    tls_handshake_timeout: float = 30.0
    rdns_timeout: float = 5.0
    # Anti-trickle (Postfix smtpd_min_data_rate): during DATA/BDAT the deadline is
    # data_timeout + bytes received / min_data_rate after the data phase began, instead of a
    # timer each read restarts, so one byte a minute cannot hold a session open. 0 = off.
    min_data_rate: int = 500
    # Postscreen-style pregreet test on `smtp` listeners: stay silent this long before the 220;
    # a client that talks first is refused (554 5.5.1) and dropped. 0 = off (greet at once).
    greet_delay: float = 0.0
    # Free-space admission at MAIL (Postfix queue_minfree / smtpd_space_multf): 452 4.3.1 when
    # the spool has less than max(queue_minfree, space_multiplier x SIZE-or-message_size) free.
    queue_minfree: int = 0
    space_multiplier: float = 1.5


@dataclass(slots=True)
class ConnectionCounter:
    """Simultaneous connections, in total and per client address (421 4.7.0 past the limits)."""

    total: int = 0
    per_ip: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def admit(self, ip: str, limits: Limits) -> smtp.Reply | None:
        if self.total >= limits.connections:
            return smtp.Reply.make(421, "4.7.0", "Too many connections, try again later")
        if ip and self.per_ip[ip] >= limits.connections_per_ip:
            return smtp.Reply.make(421, "4.7.0", f"Too many connections from {ip}")
        self.total += 1
        self.per_ip[ip] += 1
        return None

    def release(self, ip: str) -> None:
        self.total -= 1
        self.per_ip[ip] -= 1
        if self.per_ip[ip] <= 0:
            del self.per_ip[ip]


class ErrorPacer:
    """When to pause before writing replies, from the engine's error count (one per session).

    Every error past `soft` (the engine's count, which starts again after an accepted message)
    makes the replies that follow it wait `sleep` seconds, as Postfix's smtpd does past
    smtpd_soft_error_limit. `slowed` says whether that has happened in this session (logged once).
    """

    __slots__ = ("soft", "sleep", "slowed", "_seen")

    def __init__(self, soft: int, sleep: float) -> None:
        self.soft = soft
        self.sleep = sleep
        self.slowed = False
        self._seen = 0

    def delay(self, errors: int) -> float:
        """Seconds to wait before the next write, given the engine's current error count."""
        grew, self._seen = errors > self._seen, errors
        if grew and self.soft and errors > self.soft and self.sleep > 0:
            self.slowed = True
            return self.sleep
        return 0.0


class ReadDeadline:
    """When the session's current read must have delivered, on the monotonic clock.

    Commands: one deadline per request (set when the session starts waiting for a command,
    kept across partial reads; the session clears `command_due` once a whole request arrived),
    so a line sent a byte at a time still times out. DATA/BDAT: data_timeout plus bytes
    received / min_data_rate since the data phase began (anti-trickle; the session adds to
    `data_bytes` and clears `data_started` when the transaction ends).
    """

    __slots__ = ("limits", "command_due", "data_started", "data_bytes")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.command_due: float | None = None
        self.data_started: float | None = None
        self.data_bytes = 0

    def due(self, in_data: bool) -> float:
        limits = self.limits
        now = time.monotonic()
        if in_data:
            if self.data_started is None:
                self.data_started, self.data_bytes = now, 0
            if limits.min_data_rate > 0:
                return self.data_started + limits.data_timeout + self.data_bytes / limits.min_data_rate
            return now + limits.data_timeout
        if self.command_due is None:
            self.command_due = now + limits.command_timeout
        return self.command_due
