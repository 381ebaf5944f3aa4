"""DMARC enforcement at end of data (RFC 7489 §6.6, RFC 9989): reject, quarantine or accept.

Runs after SpfFilter and DkimVerifyFilter (it reads their outcomes from the AuthLedger).
- disposition reject -> `on_reject`: "reject" (550 5.7.1, the message is refused before it is
  ours, so nothing is lost), "quarantine" or "none".
- disposition quarantine -> `on_quarantine`: "junk" answers QUARANTINE, which the queue records
  with the message and the Maildir transport honours by filing into the recipient's ``.Junk``
  folder; "none" delivers.
- result temperror (a DNS failure while checking) -> `temperror`: "accept" (deliver, and say
  temperror in Authentication-Results) or "defer" (451 4.4.3: the client keeps the message and
  retries; RFC 7489 §6.6.2 allows either). An evaluation that raises or runs out of time (30 s)
  counts as temperror too: recorded as such, and the failure mode follows `temperror` (accept,
  or tempfail with 451).
"""

from __future__ import annotations

from mailboat.auth.dmarc import DmarcOutcome, evaluate
from mailboat.auth.results import Disposition, DmarcResult
from mailboat.policy.context import SessionInfo, TransactionInfo
from mailboat.policy.filter import Filter
from mailboat.policy.filters.authresults import AuthLedger
from mailboat.policy.verdict import CONTINUE, Verdict, quarantine, refuse
from mailboat.resolver.base import Resolver

REJECT_ACTIONS = ("reject", "quarantine", "none")
QUARANTINE_ACTIONS = ("junk", "none")
TEMPERROR_ACTIONS = ("accept", "defer")


class DmarcFilter(Filter):
    name = "dmarc"
    timeout = 30.0

    def __init__(self, resolver: Resolver, ledger: AuthLedger, *, on_reject: str = "reject",
                 on_quarantine: str = "junk", temperror: str = "accept") -> None:
        if on_reject not in REJECT_ACTIONS or on_quarantine not in QUARANTINE_ACTIONS \
                or temperror not in TEMPERROR_ACTIONS:
            raise ValueError(f"bad DMARC actions: {on_reject!r}, {on_quarantine!r}, {temperror!r}")
        self._resolver = resolver
        self._ledger = ledger
        self._on_reject = on_reject
        self._on_quarantine = on_quarantine
        self._temperror = temperror
        self.on_error = "tempfail" if temperror == "defer" else "accept"

    def failed(self, session: SessionInfo, txn: TransactionInfo | None, error: Exception) -> None:
        if txn is not None:
            reason = f"evaluation failed: {type(error).__name__}"
            self._ledger.update(txn, dmarc=DmarcOutcome(DmarcResult.TEMPERROR, Disposition.NONE, reason=reason))

    async def on_data(self, session: SessionInfo, txn: TransactionInfo, message: bytes) -> Verdict:
        if session.auth_user or session.is_local:
            return CONTINUE
        state = self._ledger.get(txn)
        spf = (state.spf.result.value, state.spf.domain) if state.spf else None
        dkim = [(s.result.value, s.domain) for s in state.dkim or ()]
        outcome = await evaluate(self._resolver, message, spf, dkim)
        self._ledger.update(txn, dmarc=outcome)
        if outcome.result is DmarcResult.TEMPERROR and self._temperror == "defer":
            self._ledger.pop(txn)
            return refuse(451, "4.4.3", "Temporary DNS failure checking the sender's DMARC policy; try again later",
                          reason=f"dmarc temperror: {outcome.reason}")
        action = outcome.disposition
        if action is Disposition.REJECT:
            action = Disposition(self._on_reject)
        if action is Disposition.REJECT:
            self._ledger.pop(txn)  # no Authentication-Results will be written for it
            return refuse(550, "5.7.1", f"Email rejected per DMARC policy for {outcome.from_domain}",
                          reason=f"dmarc fail p={outcome.policy}: {outcome.reason}")
        if action is Disposition.QUARANTINE and self._on_quarantine == "junk":
            return quarantine(f"dmarc quarantine: {outcome.reason}")
        return CONTINUE
