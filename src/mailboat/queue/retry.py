"""The retry schedule: when to try a deferred message again, and when to give up (pure).

SPEC `[queue]`: retry = ["1m", "5m", "15m", "30m", "1h", "2h", "4h"], then every last step,
max_lifetime = "5d" (Postfix maximal_queue_lifetime), after which the open recipients fail
(and bounce). RFC 5321 §4.5.4.1 asks for retries spread over at least 4-5 days.
"""

from __future__ import annotations

import re

DEFAULT_SCHEDULE: tuple[float, ...] = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0)
DEFAULT_MAX_LIFETIME = 5 * 86400.0

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*")


def parse_duration(text: str) -> float:
    """ "90s", "5m", "1.5h", "5d", "2w", or a bare number of seconds -> seconds."""
    match = _DURATION_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"bad duration {text!r} (use e.g. 30s, 5m, 4h, 5d)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def next_attempt(
    attempts: int,
    first_seen: float,
    now: float,
    schedule: list[float] | tuple[float, ...] = DEFAULT_SCHEDULE,
    max_lifetime: float = DEFAULT_MAX_LIFETIME,
) -> float | None:
    """When to try again after `attempts` attempts (the one just made included), or None.

    The n-th attempt is followed by schedule[n-1], the last step repeating. None means give up:
    the message is `max_lifetime` old. The last retry is pulled in to the expiry time itself,
    so a message always gets one final attempt at the end of its life rather than expiring
    up to one step early.
    """
    if not schedule:
        raise ValueError("retry schedule is empty")
    expires = first_seen + max_lifetime
    if now >= expires:
        return None
    if attempts <= 0:
        return now
    delay = schedule[min(attempts, len(schedule)) - 1]
    return min(now + delay, expires)
