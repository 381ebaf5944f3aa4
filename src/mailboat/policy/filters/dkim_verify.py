"""DKIM verification of every signature at end of data (RFC 6376 §6), results recorded.

Nothing is refused here: a failing signature is reported in Authentication-Results and weighed
by DMARC (RFC 6376 §6.3: a failed signature must be treated like no signature). Verification
that raises or runs out of time (60 s for all signatures, each key query with the resolver's
own time-out) is recorded as one temperror result, as a DNS failure is, and the message goes on.
"""

from __future__ import annotations

from mailboat.auth.dkim.verify import SignatureResult, verify_message
from mailboat.auth.results import DkimResult
from mailboat.policy.context import SessionInfo, TransactionInfo
from mailboat.policy.filter import Filter
from mailboat.policy.filters.authresults import AuthLedger
from mailboat.policy.verdict import CONTINUE, Verdict
from mailboat.resolver.base import Resolver


class DkimVerifyFilter(Filter):
    name = "dkim-verify"
    timeout = 60.0
    on_error = "accept"

    def __init__(self, resolver: Resolver, ledger: AuthLedger) -> None:
        self._resolver = resolver
        self._ledger = ledger

    def failed(self, session: SessionInfo, txn: TransactionInfo | None, error: Exception) -> None:
        if txn is not None:
            reason = f"verification failed: {type(error).__name__}"
            self._ledger.update(txn, dkim=(SignatureResult(DkimResult.TEMPERROR, reason),))

    async def on_data(self, session: SessionInfo, txn: TransactionInfo, message: bytes) -> Verdict:
        if session.auth_user or session.is_local:
            return CONTINUE  # our own users' and this machine's mail is signed, not verified
        results = await verify_message(message, self._resolver)
        self._ledger.update(txn, dkim=tuple(results))
        return CONTINUE
