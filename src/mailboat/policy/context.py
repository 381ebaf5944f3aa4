"""What filters see: typed facts about the session and the transaction, and the state they share.

Filters that need each other's findings (DMARC needs SPF's and DKIM's outcomes) share them in
`State`, a small mapping keyed by the finding's type: `txn.state[AuthState]`. It lives on the
transaction (or, for findings about the client, on the session) and goes with it: RSET, a new
MAIL or the end of the connection drop it, and nothing is keyed by an object's id.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar, cast

if TYPE_CHECKING:
    from mailboat.mail.envelope import Recipient

T = TypeVar("T")


class State:
    """Per-message (or per-connection) findings, one value per type: `state[SpfOutcome]`.

    The key is the value's class, so a reader gets what it asked for: `set` checks it, and
    `get` is typed. Two filters that share a finding import the same class; there are no string
    names to collide.
    """

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: dict[type, object] = {}

    def get(self, key: type[T], default: T | None = None) -> T | None:
        return cast("T | None", self._values.get(key, default))

    def __getitem__(self, key: type[T]) -> T:
        return cast(T, self._values[key])

    def __setitem__(self, key: type[T], value: T) -> None:
        if not isinstance(value, key):
            raise TypeError(f"state[{key.__name__}] must be a {key.__name__}, not {type(value).__name__}")
        self._values[key] = value

    def pop(self, key: type[T], default: T | None = None) -> T | None:
        return cast("T | None", self._values.pop(key, default))

    def __contains__(self, key: type) -> bool:
        return key in self._values

    def __len__(self) -> int:
        return len(self._values)

    def clear(self) -> None:
        self._values.clear()


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
    state: State = field(default_factory=State)  # findings about the client, for every message

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
    recipients: list[Recipient] = field(default_factory=list)
    state: State = field(default_factory=State)  # what filters found out about this message
