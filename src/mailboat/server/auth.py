"""SMTP AUTH for submission (RFC 4954): the PLAIN (RFC 4616) and LOGIN exchanges, and failure limits.

The engine moves the lines; this module decodes them, checks the credentials against the
account store (scrypt, so off the event loop), and limits guessing: a session is closed after
`PER_SESSION` failures, and an address or an account with `WINDOW_FAILURES` failures within
`WINDOW` seconds gets 454 4.7.0 for AUTH until the window passes (Postfix anvil's
smtpd_client_auth_rate_limit, per IP and per account).
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from mailboat.smtp import Reply, sasl

PER_SESSION = 3
WINDOW = 600.0
WINDOW_FAILURES = 10

AUTH_OK = Reply.make(235, "2.7.0", "Authentication successful")
AUTH_FAILED = Reply.make(535, "5.7.8", "Authentication credentials invalid")
AUTH_SYNTAX = Reply.make(501, "5.5.2", "Cannot decode the AUTH response")
AUTH_THROTTLED = Reply.make(454, "4.7.0", "Too many failed authentications, try again later")
TOO_MANY_FAILURES = Reply.make(421, "4.7.0", "Too many failed authentications, closing connection")


@dataclass
class AuthLimiter:
    """Recent failures per client address and per account name, over a sliding window."""

    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))

    def _recent(self, key: str) -> int:
        window = self._failures.get(key)
        if window is None:
            return 0
        horizon = self.clock() - WINDOW
        while window and window[0] < horizon:
            window.popleft()
        if not window:
            del self._failures[key]
            return 0
        return len(window)

    def blocked(self, ip: str, account: str | None = None) -> bool:
        keys = [f"ip:{ip}"] + ([f"user:{account}"] if account else [])
        return any(self._recent(k) >= WINDOW_FAILURES for k in keys)

    def failed(self, ip: str, account: str | None) -> None:
        now = self.clock()
        self._failures[f"ip:{ip}"].append(now)
        if account:
            self._failures[f"user:{account}"].append(now)


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
