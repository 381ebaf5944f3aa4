"""Relay control at RCPT: who may send where (no open relay).

Local-domain recipients must exist (550 5.1.1, to avoid backscatter). Any other destination is
relaying, allowed only to authenticated clients and to `[relay].trusted_networks`; loopback is not
trusted unless listed. Local parts with routing syntax (% ! @) are refused for every client,
and so are general address literals (`[tag:...]`, RFC 5321 §4.1.3), which nothing can route.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from mailboat.policy.context import SessionInfo, TransactionInfo
from mailboat.policy.filter import Filter
from mailboat.policy.verdict import CONTINUE, Verdict, refuse
from mailboat.routing.router import Router, has_routing_syntax, split_address


class RelayFilter(Filter):
    name = "relay"

    def __init__(self, router: Router, trusted_networks: Sequence[str] = ()) -> None:
        self._router = router
        self._trusted = tuple(ipaddress.ip_network(n, strict=False) for n in trusted_networks)

    def may_relay(self, session: SessionInfo) -> bool:
        if session.auth_user:
            return True
        ip = session.ip
        return ip is not None and any(ip in net for net in self._trusted if net.version == ip.version)

    async def on_rcpt(self, session: SessionInfo, txn: TransactionInfo, recipient: str) -> Verdict:
        address = self._router.qualify(recipient)
        local, domain = split_address(address)
        if has_routing_syntax(local):
            return refuse(550, "5.7.1", f"<{recipient}>: Relay access denied (routing syntax in local part)",
                          reason="routing syntax in local part")
        if domain.startswith("[") and not _ip_literal(domain):
            return refuse(550, "5.1.2", f"<{recipient}>: Recipient address rejected: unsupported address literal",
                          reason="general address literal")
        if self._router.is_local_domain(domain):
            if self._router.recipient_exists(address):
                return CONTINUE
            return refuse(550, "5.1.1", f"<{recipient}>: Recipient address rejected: User unknown",
                          reason="unknown local recipient")
        if self.may_relay(session):
            return CONTINUE
        return refuse(554, "5.7.1", f"<{recipient}>: Relay access denied", reason="relay denied")


def _ip_literal(domain: str) -> bool:
    """`[192.0.2.1]` or `[IPv6:2001:db8::1]`; the parser has already checked the syntax."""
    body = domain[1:-1]
    if body[:5].upper() == "IPV6:":
        body = body[5:]
    try:
        ipaddress.ip_address(body)
    except ValueError:
        return False
    return True
