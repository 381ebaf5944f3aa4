"""SPF at MAIL FROM (RFC 7208): evaluate the sender's (or HELO's) policy and record it.

The result is not enforced here by default: DMARC decides what an SPF fail means for a message
(RFC 7489 §10.1 warns that rejecting on SPF alone breaks forwarding). `reject_fail=True` gives the
classic behaviour, 550 5.7.23 at MAIL FROM (RFC 7372), with the domain's exp= text if any.
Authenticated submissions are not checked: their sender is vouched for by the login.

Time limit: 60 s for the whole check (RFC 7208 §4.6.4 bounds it to 10 DNS-querying terms; each
query has the resolver's own time-out). A check that raises or runs out of time is recorded as
temperror, as a DNS failure is, and the message goes on (`on_error = "accept"`): DMARC and
Authentication-Results then say temperror.
"""

from __future__ import annotations

from mailboat.auth.results import SpfResult
from mailboat.auth.spf import SpfOutcome, check_mail_from
from mailboat.policy.context import SessionInfo, TransactionInfo
from mailboat.policy.filter import Filter
from mailboat.policy.filters.authresults import AuthLedger
from mailboat.policy.verdict import CONTINUE, Verdict, refuse
from mailboat.resolver.base import Resolver


class SpfFilter(Filter):
    name = "spf"
    timeout = 60.0
    on_error = "accept"

    def __init__(self, resolver: Resolver, ledger: AuthLedger, receiver: str, reject_fail: bool = False) -> None:
        self._resolver = resolver
        self._ledger = ledger
        self._receiver = receiver  # %{r} in explanations: our host name
        self._reject_fail = reject_fail

    async def check(self, session: SessionInfo, txn: TransactionInfo) -> SpfOutcome:
        outcome = await check_mail_from(self._resolver, session.peer_ip, txn.sender, session.helo, self._receiver)
        self._ledger.update(txn, spf=outcome, sender=txn.sender, helo=session.helo)
        return outcome

    def failed(self, session: SessionInfo, txn: TransactionInfo | None, error: Exception) -> None:
        if txn is not None:
            domain = txn.sender.rpartition("@")[2] or session.helo
            outcome = SpfOutcome(SpfResult.TEMPERROR, domain, reason=f"check failed: {type(error).__name__}")
            self._ledger.update(txn, spf=outcome, sender=txn.sender, helo=session.helo)

    async def on_mail(self, session: SessionInfo, txn: TransactionInfo) -> Verdict:
        if session.auth_user or session.is_local:
            return CONTINUE
        outcome = await self.check(session, txn)
        if self._reject_fail and outcome.result is SpfResult.FAIL:
            text = outcome.explanation or f"SPF check failed for {outcome.domain}"
            return refuse(550, "5.7.23", text[:200], reason=f"spf fail: {outcome.reason}")
        return CONTINUE
