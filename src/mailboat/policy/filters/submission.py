"""What a listener demands before MAIL: STARTTLS (`tls = "required"`) and AUTH (`auth = "required"`).

Submission (RFC 6409) takes mail only from authenticated users, and never over plaintext
(RFC 8314): the TLS check comes first so credentials are never invited in the clear.
"""

from __future__ import annotations

from mailboat.policy.context import SessionInfo, TransactionInfo
from mailboat.policy.filter import Filter
from mailboat.policy.verdict import CONTINUE, Verdict, refuse


class ListenerRequirementsFilter(Filter):
    name = "listener-requirements"

    async def on_mail(self, session: SessionInfo, txn: TransactionInfo) -> Verdict:
        if session.tls_required and session.tls_version is None:
            return refuse(530, "5.7.0", "Must issue a STARTTLS command first")
        if session.auth_required and not session.auth_user:
            return refuse(530, "5.7.0", "Authentication required")
        return CONTINUE
