"""The Filter base class: one optional async hook per SMTP phase, a time limit and a failure mode.

A filter overrides the hooks it needs; the others continue. Each hook receives typed context
(SessionInfo, TransactionInfo) and returns a Verdict; the Pipeline combines them and the session
carries out the result. To add a filter, see docs/hacking.md.

`timeout` (seconds, None: no limit) bounds each call of a hook; `on_error` says what a hook that
raises or runs out of time means for the mail:
- "accept": as if the filter had not been there (CONTINUE); logged, never shown to the client.
  For checks that only add evidence (a DNS list, a score): their failure must not cost mail.
- "tempfail": 451 (4.7.1 for a timeout, 4.3.0 for an error; 421 at connect): the client retries
  later. For checks that enforce something: better late than wrongly accepted.
A filter that does no I/O keeps `timeout = None`, so the pipeline sets no timer for it.
Before the failure mode applies, `failed()` lets the filter record what the failure means for
the filters after it (SPF records temperror, as for a DNS failure it caught itself).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from mailboat.policy.context import SessionInfo, TransactionInfo
from mailboat.policy.verdict import CONTINUE, Verdict

OnError = Literal["accept", "tempfail"]
ON_ERROR_MODES = ("accept", "tempfail")


class Filter:
    name = "filter"
    timeout: float | None = None
    on_error: OnError = "tempfail"
    HOOKS: ClassVar[tuple[str, ...]] = ("on_connect", "on_helo", "on_mail", "on_rcpt", "on_data")

    def failed(self, session: SessionInfo, txn: TransactionInfo | None, error: Exception) -> None:
        """A hook raised `error` or timed out (TimeoutError); `txn` is None at connect and HELO."""

    async def on_connect(self, session: SessionInfo) -> Verdict:
        return CONTINUE

    async def on_helo(self, session: SessionInfo) -> Verdict:
        return CONTINUE

    async def on_mail(self, session: SessionInfo, txn: TransactionInfo) -> Verdict:
        return CONTINUE

    async def on_rcpt(self, session: SessionInfo, txn: TransactionInfo, recipient: str) -> Verdict:
        return CONTINUE

    async def on_data(self, session: SessionInfo, txn: TransactionInfo, message: bytes) -> Verdict:
        """`message` is the complete message as received (before our Received header)."""
        return CONTINUE
