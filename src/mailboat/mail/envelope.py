"""The SMTP envelope of one message: reverse-path, recipients and the ESMTP parameters we keep.

What the session driver accepted (RFC 5321 MAIL/RCPT, RFC 3461 DSN parameters, RFC 6152
8BITMIME, RFC 6531 SMTPUTF8) plus arrival facts for logs and `mailboat journey`. Pure values:
no I/O, no parsing of wire syntax (that is `smtp.params`); the queue stores them as given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NOTIFY_VALUES = frozenset({"SUCCESS", "FAILURE", "DELAY", "NEVER"})
RET_VALUES = frozenset({"FULL", "HDRS"})
BODY_VALUES = frozenset({"7BIT", "8BITMIME", "BINARYMIME"})


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _has_control(value: str) -> bool:
    # Envelope values end up in headers (Return-Path, Delivered-To) and log lines: a CR or LF in
    # one would forge structure there, so they are refused at construction time.
    return _CONTROL.search(value) is not None


@dataclass(frozen=True, slots=True)
class Recipient:
    """One envelope recipient with its RFC 3461 DSN parameters.

    Attributes:
        address: "local@domain" as accepted at RCPT (the runner may add alias expansions later;
            those are tracked by the queue, never by mutating the envelope).
        orcpt: RFC 3461 ORCPT as received and xtext-decoded, e.g. "rfc822;bob@example.org".
        notify: ("SUCCESS", "FAILURE", "DELAY") in any combination, or ("NEVER",); None when
            the client gave no NOTIFY (then the default of RFC 3461 §4.1 applies: FAILURE, DELAY).
    """

    address: str
    orcpt: str | None = None
    notify: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if _has_control(self.address):
            raise ValueError("recipient address contains a control character")
        if self.notify is not None:
            if not self.notify or not set(self.notify) <= NOTIFY_VALUES:
                raise ValueError(f"bad NOTIFY value {self.notify!r}")
            if "NEVER" in self.notify and len(self.notify) > 1:
                raise ValueError("NOTIFY=NEVER cannot be combined with other values (RFC 3461 §4.1)")


@dataclass(frozen=True, slots=True)
class Envelope:
    """Everything about a message except its bytes.

    Attributes:
        sender: the reverse-path without angle brackets; "" is the null reverse-path (bounces),
            to which nothing is ever bounced (RFC 5321 §4.5.5).
        recipients: in RCPT order; never empty for a queued message.
        ret: RFC 3461 RET ("FULL" or "HDRS") or None.
        envid: RFC 3461 ENVID, xtext-decoded, or None.
        body: "7BIT", "8BITMIME" or "BINARYMIME" from MAIL BODY=, or None when not given.
        smtputf8: the client used the SMTPUTF8 parameter (RFC 6531).
        client_ip, client_helo, auth_user, protocol: arrival facts ("ESMTPS", "LMTP", ...),
            kept for logs and the journey; never used to make delivery decisions.
        quarantine: the filters quarantined it: delivered into each recipient's Junk folder
            (Maildir `.Junk`). None only for a message queued by a mailboat that did not record
            it: then its `X-Mailboat-Folder: Junk` label, which that version wrote, decides.
    """

    sender: str
    recipients: tuple[Recipient, ...]
    ret: str | None = None
    envid: str | None = None
    body: str | None = None
    smtputf8: bool = False
    client_ip: str = ""
    client_helo: str = ""
    auth_user: str | None = None
    protocol: str = ""
    quarantine: bool | None = False

    def __post_init__(self) -> None:
        if _has_control(self.sender):
            raise ValueError("sender address contains a control character")
        if not isinstance(self.recipients, tuple):
            raise TypeError("recipients must be a tuple of Recipient")
        if self.ret is not None and self.ret not in RET_VALUES:
            raise ValueError(f"bad RET value {self.ret!r}")
        if self.body is not None and self.body not in BODY_VALUES:
            raise ValueError(f"bad BODY value {self.body!r}")
        if self.quarantine not in (False, True, None):
            raise ValueError(f"bad quarantine value {self.quarantine!r}")

    @property
    def is_bounce(self) -> bool:
        """True for the null reverse-path: never send a DSN about this message."""
        return self.sender == ""

    def recipient(self, address: str) -> Recipient | None:
        """The envelope recipient with exactly this address, or None."""
        for rcpt in self.recipients:
            if rcpt.address == address:
                return rcpt
        return None
