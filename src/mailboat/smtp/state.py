"""What a ServerConnection remembers: the input mode, the session, the mail transaction.

Three plain holders, each for one concept, owned by :class:`~mailboat.smtp.server.ServerConnection`
and changed by it and by the verb handlers (`verbs.py`), never by a driver:

* :class:`InputMode`: which reader consumes the next octets (the theory block in server.py);
* :class:`SessionState`: what the client established for the whole session (RFC 5321 §4.1.4:
  HELO/EHLO, RFC 3207 TLS, RFC 4954 AUTH), forgotten at STARTTLS (RFC 3207 §4.2);
* :class:`Transaction`: one mail transaction (RFC 5321 §3.3: MAIL, RCPT+, DATA or BDAT),
  forgotten at RSET, a new HELO, and the end of each message.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .address import Path
from .data import ContentCheck
from .events import MailFrom

__all__ = ["InputMode", "SessionState", "Transaction"]


class InputMode(enum.Enum):
    """Which reader consumes the next input octets (see the theory block in server.py)."""

    COMMAND = "command"
    DATA = "data"
    BDAT = "bdat"
    AUTH = "auth"
    TLS_PENDING = "tls-pending"
    CLOSED = "closed"


@dataclass(slots=True)
class SessionState:
    """What holds for the whole session, whatever the transaction.

    Attributes:
        tls_active: the connection is encrypted (implicit TLS, or STARTTLS completed).
        helo_name: the HELO/EHLO/LHLO argument the application accepted; None before.
        esmtp: that greeting was EHLO or LHLO (extensions such as BDAT and AUTH allowed).
        authenticated: an AUTH exchange ended with 235.
        auth_identity: the identity the application proved with set_authenticated().
        pending_identity: set_authenticated() was called; becomes auth_identity at the 235.
        refused: the greeting was 554: every command but QUIT gets 503 (RFC 5321 §3.1).
    """

    tls_active: bool = False
    helo_name: str | None = None
    esmtp: bool = False
    authenticated: bool = False
    auth_identity: str | None = None
    pending_identity: str | None = None
    refused: bool = False

    def forget_client(self) -> None:
        """RFC 3207 §4.2: after STARTTLS, discard what the client said before TLS."""
        self.helo_name = None
        self.esmtp = False
        self.authenticated = False
        self.auth_identity = None


@dataclass(slots=True)
class Transaction:
    """One mail transaction; `reset()` starts the next.

    Attributes:
        mail: the accepted MAIL FROM; None outside a transaction.
        rcpts: accepted recipients, in RCPT order (the order of LMTP's replies).
        rcpt_attempted: some RCPT was tried, so DATA without recipients gets 554, not 503.
        body_kind: "DATA" or "BDAT" once content started (RFC 3030 §3: never both).
        bdat_check: the content checks running over every chunk of this BDAT message.
        replies_owed: replies still to send for the pending MessageComplete (LMTP: one per
            accepted recipient).
    """

    mail: MailFrom | None = None
    rcpts: list[Path] = field(default_factory=list)
    rcpt_attempted: bool = False
    body_kind: str | None = None
    bdat_check: ContentCheck | None = None
    replies_owed: int = 0

    def reset(self) -> None:
        self.mail = None
        self.rcpts = []
        self.rcpt_attempted = False
        self.body_kind = None
        self.bdat_check = None
        self.replies_owed = 0
