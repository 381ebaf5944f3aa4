"""Authenticated senders may send only as themselves (Postfix reject_sender_login_mismatch).

The envelope sender (MAIL FROM) and the From: header must be an address the account owns: the
account itself, the account with a +detail, or an alias that delivers to the account. Anything
else gets 553 5.7.1, so a stolen password cannot be used to forge another user's mail.
"""

from __future__ import annotations

from email.utils import getaddresses

from mailboat.mail.headers import get_all, split_message
from mailboat.policy.context import SessionInfo, TransactionInfo
from mailboat.policy.filter import Filter
from mailboat.policy.verdict import CONTINUE, Verdict, refuse
from mailboat.routing.router import Router, normalize


class SenderOwnershipFilter(Filter):
    name = "sender-ownership"

    def __init__(self, router: Router) -> None:
        self._router = router

    def owns(self, account: str, address: str) -> bool:
        account = normalize(account)
        key = normalize(address)
        if key == account:
            return True
        local, _, domain = key.rpartition("@")
        if f"{local.split('+', 1)[0]}@{domain}" == account:
            return True
        return account in {normalize(a) for a in self._router.expand(address)}

    async def on_mail(self, session: SessionInfo, txn: TransactionInfo) -> Verdict:
        if session.auth_user and txn.sender and not self.owns(session.auth_user, txn.sender):
            return refuse(553, "5.7.1", f"<{txn.sender}>: Sender address rejected: not owned by user "
                          f"{session.auth_user}", reason="sender login mismatch")
        return CONTINUE

    async def on_data(self, session: SessionInfo, txn: TransactionInfo, message: bytes) -> Verdict:
        if not session.auth_user:
            return CONTINUE
        header, _ = split_message(message)
        values = [f.value for f in get_all(header, "From")]
        for _, address in getaddresses(values):
            if address and not self.owns(session.auth_user, address):
                return refuse(553, "5.7.1", f"From: <{address}> is not owned by user {session.auth_user}",
                              reason="From header login mismatch")
        return CONTINUE
