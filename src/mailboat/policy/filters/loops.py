"""Loop protection (RFC 5321 §6.3): too many Received headers means a routing loop."""

from __future__ import annotations

from mailboat.mail.message import count_received
from mailboat.policy.context import SessionInfo, TransactionInfo
from mailboat.policy.filter import Filter
from mailboat.policy.verdict import CONTINUE, Verdict, refuse


class HopLimitFilter(Filter):
    name = "hop-limit"

    def __init__(self, max_hops: int) -> None:
        self._max_hops = max_hops

    async def on_data(self, session: SessionInfo, txn: TransactionInfo, message: bytes) -> Verdict:
        hops = count_received(message)
        if hops > self._max_hops:
            return refuse(554, "5.4.6", f"Too many hops ({hops} Received headers): routing loop",
                          reason=f"hop count {hops} > {self._max_hops}")
        return CONTINUE
