"""SMTP AUTH for submission (RFC 4954): the PLAIN (RFC 4616) and LOGIN exchanges, and failure limits.

The engine moves the lines; this module decodes them, checks the credentials against the
account store (scrypt, so off the event loop), and limits guessing without handing anyone a
way to lock a user out (the limits count per client, never per account alone):

- a session is closed (421 4.7.0) after `PER_SESSION` failures;
- a client address with `IP_FAILURES` failures within `WINDOW` seconds, whatever the accounts,
  gets 454 4.7.0 for every AUTH until the window passes (Postfix anvil's
  smtpd_client_auth_rate_limit);
- one client address with `PAIR_FAILURES` failures for one account within `WINDOW` gets 454
  4.7.0 for that account until the window passes. The same account from any other address is
  not affected, so a stranger guessing alice's password never keeps alice out.

IPv6 clients are counted per /84 network (Postfix's smtpd_client_ipv6_prefix_length), so one
host cannot sidestep the limit by walking its own addresses. The state is bounded: at most
`MAX_KEYS` addresses and pairs, the least recently failing forgotten first, and a key keeps
only the times of its last failures up to its limit.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from mailboat.smtp import Reply, sasl

PER_SESSION = 3
WINDOW = 600.0
IP_FAILURES = 20  # failures from one client address (any accounts) within WINDOW: 454 for it
PAIR_FAILURES = 5  # failures from one client address for one account within WINDOW: 454 for the pair
IPV6_PREFIX = 84
MAX_KEYS = 10_000

AUTH_OK = Reply.make(235, "2.7.0", "Authentication successful")
AUTH_FAILED = Reply.make(535, "5.7.8", "Authentication credentials invalid")
AUTH_SYNTAX = Reply.make(501, "5.5.2", "Cannot decode the AUTH response")
AUTH_THROTTLED = Reply.make(454, "4.7.0", "Too many failed authentications, try again later")
TOO_MANY_FAILURES = Reply.make(421, "4.7.0", "Too many failed authentications, closing connection")


def client_key(ip: str) -> str:
    """The unit a client is counted by: its IPv4 address, or its IPv6 /84 network."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip  # "" for a unix socket
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, IPV6_PREFIX), strict=False))
    return str(addr)


@dataclass
class AuthLimiter:
    """Recent failures per client address and per (client address, account), over a sliding
    window; bounded to `max_keys` keys (least recently failing dropped first)."""

    clock: Callable[[], float] = time.monotonic
    ip_failures: int = IP_FAILURES
    pair_failures: int = PAIR_FAILURES
    window: float = WINDOW
    max_keys: int = MAX_KEYS
    _failures: OrderedDict[tuple[str, str | None], deque[float]] = field(default_factory=OrderedDict)

    def _full(self, key: tuple[str, str | None], limit: int) -> bool:
        """Whether `key` has `limit` failures within the window (dropping it once it has none)."""
        times = self._failures.get(key)
        if times is None:
            return False
        horizon = self.clock() - self.window
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[key]
            return False
        return len(times) >= limit

    def blocked(self, ip: str, account: str | None = None) -> bool:
        """Whether AUTH from `ip` (for `account`, when known yet) is refused for now."""
        client = client_key(ip)
        if self._full((client, None), self.ip_failures):
            return True
        return bool(account) and self._full((client, account), self.pair_failures)

    def failed(self, ip: str, account: str | None) -> None:
        now = self.clock()
        client = client_key(ip)
        self._note((client, None), now, self.ip_failures)
        if account:
            self._note((client, account), now, self.pair_failures)

    def _note(self, key: tuple[str, str | None], now: float, limit: int) -> None:
        # Keys are kept in the order of their last failure: the first ones are the first to expire.
        horizon = now - self.window
        while self._failures:
            first = next(iter(self._failures.values()))
            if first and first[-1] > horizon:
                break
            self._failures.popitem(last=False)
        times = self._failures.get(key)
        if times is None:
            times = self._failures[key] = deque(maxlen=limit)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(key)
        times.append(now)

    def __len__(self) -> int:
        return len(self._failures)


@dataclass
class SaslExchange:
    """One AUTH exchange. `step()` takes the next client response (None = none yet).

    It returns a Reply to send to continue (334), or the (identity, password) pair to check,
    or raises ValueError when the response cannot be decoded.
    """

    mechanism: str
    username: str | None = None

    def step(self, response: str | None) -> Reply | tuple[str, str]:
        match self.mechanism:
            case "PLAIN":
                if response is None:
                    return sasl.challenge(b"")
                authzid, authcid, password = sasl.decode_plain(response)
                if authzid and authzid.lower() != authcid.lower():
                    # We do not let one account act for another (no proxy authorization).
                    raise PermissionError("authorization identity differs from authentication identity")
                return authcid, password
            case "LOGIN":
                if response is None:
                    return sasl.LOGIN_USERNAME
                decoded = sasl.decode_response(response).decode("utf-8")
                if self.username is None:
                    self.username = decoded
                    return sasl.LOGIN_PASSWORD
                return self.username, decoded
        raise ValueError(f"unsupported mechanism {self.mechanism}")
