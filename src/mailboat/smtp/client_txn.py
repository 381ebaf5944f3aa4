"""Transaction bookkeeping for the SMTP/LMTP client engine (smtp/client.py): which recipient a
reply decided, the refusals that need no round trip, and command lines made safe to send.
"""

from __future__ import annotations

from collections import deque

from .client_events import TransactionResult
from .errors import LocalProtocolError
from .outgoing import Transaction
from .reply import Reply

__all__ = ["PendingTransaction", "local_refusal", "encode_command"]


class PendingTransaction:
    """Mutable bookkeeping of the transaction in flight: who is decided, by which reply."""

    __slots__ = ("spec", "decided", "remote", "accepted", "mail_ok", "lines", "finals_left")

    def __init__(self, spec: Transaction) -> None:
        self.spec = spec
        self.decided: list[Reply | None] = [None] * len(spec.recipients)
        self.remote = [True] * len(spec.recipients)
        self.accepted: list[int] = []
        self.mail_ok = False
        self.lines: deque[tuple[str, int, bytes]] = deque()  # commands not yet sent (lock-step)
        self.finals_left = 0

    def decide(self, index: int, reply: Reply, remote: bool = True) -> None:
        if self.decided[index] is None:
            self.decided[index], self.remote[index] = reply, remote

    def result(self, fill: Reply, remote: bool) -> TransactionResult:
        for index in range(len(self.decided)):
            self.decide(index, fill, remote)
        return TransactionResult(tuple(r.address for r in self.spec.recipients),
                                 tuple(r for r in self.decided if r is not None), tuple(self.remote))


def local_refusal(txn: Transaction, caps: dict[str, tuple[str, ...]]) -> Reply | None:
    """Refusals that need no round trip: SMTPUTF8 not offered (RFC 6531 §3.2), SIZE (RFC 1870 §6)."""
    if txn.needs_smtputf8 and "SMTPUTF8" not in caps:
        return Reply.make(550, "5.6.7", "SMTPUTF8 is required, but was not offered by the server")
    limit = caps.get("SIZE", ())
    if limit and limit[0].isdigit() and 0 < int(limit[0]) < txn.message.size:
        return Reply.make(552, "5.3.4", f"message size {txn.message.size} exceeds the server's limit of {limit[0]}")
    return None


def encode_command(line: str) -> bytes:
    """A command line with its CRLF; a CR, LF or NUL inside would smuggle a second command."""
    if "\r" in line or "\n" in line or "\x00" in line:
        raise LocalProtocolError(f"control character in command {line[:60]!r}")
    return line.encode("utf-8") + b"\r\n"
