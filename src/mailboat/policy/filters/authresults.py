"""Authentication-Results (RFC 8601) for inbound mail, and the ledger the auth filters share.

The SPF, DKIM-verify and DMARC filters each record their outcome in one `AuthLedger` (a typed
record in the transaction's state, not a notes bag); this filter, placed after them, renders the outcomes as
one Authentication-Results field with our authserv-id (the server hostname) and asks for any
field already claiming that authserv-id to be removed (RFC 8601 §5: forgeries). It also removes
any incoming X-Mailboat-Folder field: that label says what our pipeline did (quarantine),
and a sender must not be able to write it.

Removal: filters never edit the message. The verdict carries the exact raw fields to delete in
`Verdict.remove_headers` (see `removal_verdict`), and the session applies
`mailboat.auth.results.remove_fields` before prepending headers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mailboat.auth.dkim.verify import SignatureResult
from mailboat.auth.dmarc import DmarcOutcome
from mailboat.auth.results import MethodResult, forged_fields, render
from mailboat.auth.spf import SpfOutcome
from mailboat.mail.headers import get_all
from mailboat.policy.context import SessionInfo, TransactionInfo
from mailboat.policy.filter import Filter
from mailboat.policy.verdict import Verdict

FOLDER_HEADER = "X-Mailboat-Folder"


@dataclass(frozen=True, slots=True)
class AuthState:
    """Everything the auth filters found out about one transaction."""

    sender: str = ""
    helo: str = ""
    spf: SpfOutcome | None = None
    dkim: tuple[SignatureResult, ...] | None = None  # None: not checked; (): no signature
    dmarc: DmarcOutcome | None = None


class AuthLedger:
    """The auth filters' record in each transaction's state: `txn.state[AuthState]`.

    Holds nothing itself: the record lives on the TransactionInfo and goes with it (RSET, a new
    MAIL, the end of the connection). One ledger object is handed to the filters that share the
    record so that they read and write it the same way.
    """

    __slots__ = ()

    def get(self, txn: TransactionInfo) -> AuthState:
        return txn.state.get(AuthState) or _EMPTY

    def update(self, txn: TransactionInfo, **changes: Any) -> AuthState:
        state = txn.state[AuthState] = dataclasses.replace(self.get(txn), **changes)
        return state

    def pop(self, txn: TransactionInfo) -> AuthState:
        return txn.state.pop(AuthState) or _EMPTY


_EMPTY = AuthState()


def method_results(state: AuthState, session: SessionInfo) -> list[MethodResult]:
    """The resinfo list for a state, in the conventional order: auth, spf, dkim, dmarc."""
    out: list[MethodResult] = []
    if session.auth_user:
        out.append(MethodResult("auth", "pass", properties=(("smtp.auth", session.auth_user),)))
    if state.spf is not None:
        prop = ("smtp.mailfrom", state.sender) if state.sender else ("smtp.helo", state.helo)
        reason = "" if state.spf.result == "pass" else state.spf.reason
        out.append(MethodResult("spf", state.spf.result.value, reason, (prop,)))
    if state.dkim is not None:
        if not state.dkim:
            out.append(MethodResult("dkim", "none"))
        for sig in state.dkim:
            props = [("header.d", sig.domain), ("header.s", sig.selector), ("header.a", sig.algorithm),
                     ("header.b", sig.b_prefix)]
            reason = "" if sig.result == "pass" else sig.reason
            out.append(MethodResult("dkim", sig.result.value, reason, tuple((k, v) for k, v in props if v)))
    if state.dmarc is not None:
        d = state.dmarc
        props = [("header.from", d.from_domain)] if d.from_domain else []
        if d.policy is not None:
            props.append(("policy.dmarc", d.policy.value))
        reason = f"{d.reason}; disposition={d.disposition.value}" if d.result == "fail" else d.reason
        out.append(MethodResult("dmarc", d.result.value, reason, tuple(props)))
    return out


def removal_verdict(headers: tuple[bytes, ...], remove: tuple[bytes, ...]) -> Verdict:
    """A Verdict asking to prepend `headers` and delete the fields `remove` (exact raw bytes)."""
    return Verdict(headers=headers, remove_headers=remove)


class AuthResultsFilter(Filter):
    """Adds our Authentication-Results; removes forged ones. Place after spf/dkim/dmarc filters."""

    name = "authentication-results"

    def __init__(self, authserv_id: str, ledger: AuthLedger) -> None:
        self._authserv_id = authserv_id
        self._ledger = ledger

    async def on_data(self, session: SessionInfo, txn: TransactionInfo, message: bytes) -> Verdict:
        state = self._ledger.pop(txn)
        header = render(self._authserv_id, method_results(state, session))
        remove = tuple(f.raw for f in forged_fields(message, self._authserv_id))
        remove += tuple(f.raw for f in get_all(message, FOLDER_HEADER))
        return removal_verdict((header,), remove)
