"""DKIM signing of our users' outgoing mail (RFC 6376 §5), with `[[dkim.sign]]` keys.

A message is signed when the client authenticated (submission) or, optionally, when it comes
from a trusted network, and its From domain has a key: the key of that exact domain, or else of
its closest parent domain (still aligned for relaxed DMARC). The signature is returned as a
header for the session to prepend above our Received header, which is not signed, so the
message as delivered verifies. Signing failures never block mail: the message goes unsigned and
the reason is logged.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence

from mailboat.auth.dkim.sign import DkimKey, sign_message
from mailboat.auth.dmarc import from_domains
from mailboat.policy.context import SessionInfo, TransactionInfo
from mailboat.policy.filter import Filter
from mailboat.policy.verdict import CONTINUE, Verdict

log = logging.getLogger("mailboat.dkim")


class DkimSignFilter(Filter):
    name = "dkim-sign"

    def __init__(self, keys: Sequence[DkimKey], trusted_networks: Sequence[str] = ()) -> None:
        self._keys: dict[str, DkimKey] = {}
        for key in keys:
            self._keys.setdefault(key.domain, key)  # the first [[dkim.sign]] for a domain wins
        self._trusted = tuple(ipaddress.ip_network(n, strict=False) for n in trusted_networks)

    def key_for(self, domain: str) -> DkimKey | None:
        labels = domain.lower().rstrip(".").split(".")
        for i in range(len(labels) - 1):
            key = self._keys.get(".".join(labels[i:]))
            if key is not None:
                return key
        return None

    def should_sign(self, session: SessionInfo) -> bool:
        if session.auth_user:
            return True
        ip = session.ip
        return ip is not None and any(ip in net for net in self._trusted if net.version == ip.version)

    async def on_data(self, session: SessionInfo, txn: TransactionInfo, message: bytes) -> Verdict:
        if not self._keys or not self.should_sign(session):
            return CONTINUE
        domains = from_domains(message)
        key = self.key_for(domains[0]) if domains and len(domains) == 1 else None
        if key is None:
            return CONTINUE
        try:
            signature = sign_message(message, key)
        except Exception as exc:  # never lose or delay mail because of signing
            log.warning("DKIM signing for %s failed: %s", key.domain, exc)
            return CONTINUE
        return Verdict(headers=(signature,), reason=f"dkim signed d={key.domain} s={key.selector}")
