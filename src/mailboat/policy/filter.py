"""The Filter base class: one optional async hook per SMTP phase.

A filter overrides the hooks it needs; the others continue. Each hook receives typed context
(SessionInfo, TransactionInfo) and returns a Verdict; the Pipeline stops at the first verdict
with a reply and turns it into the SMTP answer. To add a filter, see docs/hacking.md.
"""

from __future__ import annotations

from mailboat.policy.context import SessionInfo, TransactionInfo
from mailboat.policy.verdict import CONTINUE, Verdict


class Filter:
    name = "filter"

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
