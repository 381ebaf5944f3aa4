"""What filters see: typed facts about the session and the transaction (no notes bag)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field


@dataclass(slots=True)
class SessionInfo:
    """One client connection. Filled in by the session driver as the dialogue goes on."""

    listener: str  # "smtp" | "submission" | "submissions" | "lmtp"
    peer_ip: str
    peer_port: int
    auth_required: bool = False  # listener auth = "required": MAIL needs AUTH first
    tls_required: bool = False  # listener tls = "required": MAIL needs STARTTLS first
    helo: str = ""
    esmtp: bool = False
    rdns: str | None = None  # forward-confirmed reverse DNS, None = unknown
    tls_version: str | None = None
    tls_cipher: str | None = None
    auth_user: str | None = None
    # This machine's own software (loopback or unix socket, unless [auth].check_local_clients):
    # sender authentication is not checked for it, as policyd-spf's skip_addresses and
    # OpenDMARC's IgnoreHosts do by default; there is no sending host to judge.
    is_local: bool = False

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        try:
            return ipaddress.ip_address(self.peer_ip)
        except ValueError:
            return None  # a unix socket peer


@dataclass(slots=True)
class TransactionInfo:
    """One MAIL transaction: the sender, the recipients accepted so far, and ESMTP parameters."""

    sender: str
    smtputf8: bool = False
    body: str | None = None
    ret: str | None = None
    envid: str | None = None
    recipients: list = field(default_factory=list)  # mailboat.mail.envelope.Recipient
