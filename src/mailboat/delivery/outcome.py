"""What a delivery attempt yields: the per-recipient outcome and the state it moves a recipient to.

The vocabulary of the `Transport` contract, shared with the queue, which stores outcomes and
states but defines neither: `delivery` never imports `queue` (chasquid's courier does not import
its queue either). Plain frozen values with plain types (an int reply code and a str reply text),
so nothing here needs `smtp`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["RecipientOutcome", "RecipientState", "outcome"]


class RecipientState(StrEnum):
    """Where one recipient stands.

    PENDING and DEFERRED are "still to deliver" (the runner claims them); DELIVERED and FAILED are
    final; EXPANDED marks an envelope recipient whose alias expansion has been recorded as its own
    recipients (each with `original` set), so the alias is not expanded and delivered twice.
    """

    PENDING = "pending"  # never attempted
    DEFERRED = "deferred"  # attempted, temporary failure (4xx); retried on schedule
    DELIVERED = "delivered"
    FAILED = "failed"  # permanent failure (5xx) or given up after max_lifetime
    EXPANDED = "expanded"

    @property
    def is_open(self) -> bool:
        return self in (RecipientState.PENDING, RecipientState.DEFERRED)


_STATUS_RE = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")


@dataclass(frozen=True, slots=True)
class RecipientOutcome:
    """The result of one delivery attempt for one final recipient address.

    Attributes:
        recipient: the final address delivered to (after alias expansion).
        state: DELIVERED, DEFERRED or FAILED.
        reply_code: SMTP basic code (250, 451, 550, ...), also for local transports.
        reply_text: reply text, starting with the RFC 3463 enhanced status when there is one
            ("2.0.0 delivered to maildir"); for remote hosts, their text as received.
        host: who answered: "local" for local transports, else the remote host name/address.
        at: when (Unix time).
        original: the envelope recipient this address was expanded from, or None when the
            address is the envelope recipient itself. (Alias expansion happens in the runner,
            and the queue must remember which expansions are done.)
        remote: the code and text are a reply the peer (SMTP or LMTP server) sent, as received;
            False for every text we made ourselves (a refused connection, a time-out, a local
            delivery), so a bounce never presents our words as a remote server's (RFC 3464
            Diagnostic-Code type "smtp" only for a real reply). Not stored with the attempt.
    """

    recipient: str
    state: RecipientState
    reply_code: int
    reply_text: str
    host: str
    at: float
    original: str | None = None
    remote: bool = False

    @property
    def enhanced_status(self) -> str:
        """"2.0.0"-style status from the reply text, else derived from the basic code."""
        match = _STATUS_RE.match(self.reply_text)
        if match and match.group(1) == str(self.reply_code)[0]:
            return ".".join(match.groups())
        return f"{str(self.reply_code)[0]}.0.0"


def outcome(recipient: str, code: int, text: str, host: str, at: float, *, remote: bool = False) -> RecipientOutcome:
    """Build an outcome whose state follows the reply code (2xx, 4xx, 5xx).

    `remote`: the code and text are the peer's reply as received (see RecipientOutcome.remote);
    `host` is "none" when no server answered (Postfix relay=none), "local" for local delivery.
    """
    if 200 <= code < 300:
        state = RecipientState.DELIVERED
    elif 400 <= code < 500:
        state = RecipientState.DEFERRED
    else:
        state = RecipientState.FAILED
    return RecipientOutcome(recipient, state, code, text, host, at, remote=remote)
