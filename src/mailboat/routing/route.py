"""Route values: the answer to "where does this final recipient address go?".

A Route is a plain frozen value. The Router (`routing/router.py`) produces one per final address;
the queue runner groups recipients by equal Route values and hands each group to the Transport
registered under the route's `kind` (see `delivery/transport.py`). Discard and Refuse need no
transport: the runner turns them into outcomes itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, TypeAlias


@dataclass(frozen=True, slots=True)
class Maildir:
    """Final delivery into the Maildir rooted at `path` (the directory holding tmp/ new/ cur/)."""

    path: str
    kind: ClassVar[str] = "maildir"


@dataclass(frozen=True, slots=True)
class Lmtp:
    """Final delivery over LMTP to `target` ("host:port" or "unix:/path"), e.g. Dovecot."""

    target: str
    kind: ClassVar[str] = "lmtp"


@dataclass(frozen=True, slots=True)
class Relay:
    """Relay through a fixed smarthost ("host:port"), bypassing MX lookup."""

    smarthost: str
    kind: ClassVar[str] = "relay"


@dataclass(frozen=True, slots=True)
class Mx:
    """Relay to the MX hosts of `domain` (lookup happens in the transport, at delivery time)."""

    domain: str
    kind: ClassVar[str] = "mx"


@dataclass(frozen=True, slots=True)
class Discard:
    """Accept and drop (Postfix discard(8)); recorded as delivered."""

    kind: ClassVar[str] = "discard"


@dataclass(frozen=True, slots=True)
class Refuse:
    """Do not deliver: fail (5xx) or defer (4xx) the recipient with this reply."""

    code: int  # e.g. 550
    status: str  # RFC 3463 enhanced status, e.g. "5.1.1"
    text: str
    kind: ClassVar[str] = "refuse"


Route: TypeAlias = Maildir | Lmtp | Relay | Mx | Discard | Refuse
