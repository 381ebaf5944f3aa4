"""Delivery status notifications: RFC 3464 reports built from per-recipient outcomes.

A DSN is a ``multipart/report; report-type=delivery-status`` message (RFC 6522) with three parts:
a plain-language explanation, a ``message/delivery-status`` block (one per-message group, then one
group per recipient), and the original message (``message/rfc822``, RET=FULL, the default) or its
header section (``text/rfc822-headers``, RET=HDRS), as RFC 3461 §4.3 asks.

Who gets one (RFC 3461 §4.1, RFC 5321 §4.5.5 and §6.1, security.md §6):
- never about a message whose envelope sender is null, and never about a message that is itself
  a delivery report (a bounce of a bounce would loop between two MTAs);
- a recipient appears only when its NOTIFY asks for that action: FAILURE and DELAY by default,
  SUCCESS only on request, nothing for NEVER.

The stdlib `email` package builds our own parts (header folding, RFC 2047 for a non-ASCII
subject, the text part's transfer encoding) with policy SMTP, so every line ends in CRLF. The
original message is attached as the bytes we queued, never parsed and re-serialised: a bounce must
show what was sent, and a re-serialised copy could change the very bytes a DKIM check covers.
Every value that came from outside (reply texts, ENVID, ORCPT) is stripped of control characters
and bounded, so no peer can forge fields inside the report (Exim CVE-2020-28026 class).

Whose words (RFC 3464 §2.3.5 and §2.3.6): `Remote-MTA: dns; HOST` only when a server answered;
`Diagnostic-Code: smtp; ...` only for a reply a server really sent; what mailboat found itself
(a refused connection, a time-out, no MX or address, a local refusal) is `Diagnostic-Code:
X-mailboat; ...`, as Postfix writes `X-Postfix;`, and the text part says "mailboat could not
connect to ..." or "mailboat could not deliver it ...", never that a server said it.

A report that cannot reach its sender (a double bounce) is addressed to the postmaster
(`DeliveryReport.to`); its text part says so and why.
"""

from __future__ import annotations

import re
import secrets
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP
from email.utils import format_datetime

from mailboat.mail.envelope import Envelope, Recipient
from mailboat.mail.headers import get_first, split_message

ACTIONS = ("failed", "delayed", "delivered", "relayed", "expanded")
NOTIFY_FOR_ACTION = {"failed": "FAILURE", "delayed": "DELAY", "delivered": "SUCCESS",
                     "relayed": "SUCCESS", "expanded": "SUCCESS"}
DEFAULT_NOTIFY = ("FAILURE", "DELAY")  # RFC 3461 §4.1: the MTA's choice when NOTIFY is absent
MAX_RETURNED = 10 * 1024 * 1024  # above this a FULL return is cut to the headers (Postfix: bounce_size_limit)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_SUBJECTS = {"failed": "Undelivered Mail Returned to Sender",
             "delayed": "Delayed Mail (still being retried)",
             "delivered": "Successful Mail Delivery Report",
             "relayed": "Successful Mail Delivery Report",
             "expanded": "Successful Mail Delivery Report"}


@dataclass(frozen=True, slots=True)
class RecipientReport:
    """One per-recipient group of the delivery-status part (RFC 3464 §2.3).

    Attributes:
        final_recipient: the address we tried to deliver to (after alias expansion).
        action: one of ACTIONS.
        status: RFC 3463 enhanced status, e.g. "5.1.1"; "4.4.7" for an expired message.
        original_recipient: RFC 3461 ORCPT as "type;address"; RFC 3464 §2.3.1 allows the
            Original-Recipient field only when the client gave ORCPT.
        alias: the envelope recipient this address was expanded from (text part only).
        remote_mta: the host name of the server that answered, when one did ("mx.example.net").
        diagnostic: a server's reply as received, "550 5.1.1 User unknown" (Diagnostic-Code: smtp;).
        local_diagnostic: what mailboat itself found, when no server replied: "connect to
            mx.example.net[192.0.2.1]:25: Connection refused" (Diagnostic-Code: X-mailboat;).
        last_attempt: Unix time of the last attempt; will_retry_until: for "delayed" only.
    """

    final_recipient: str
    action: str
    status: str
    original_recipient: str | None = None
    alias: str | None = None
    remote_mta: str | None = None
    diagnostic: str | None = None
    last_attempt: float | None = None
    local_diagnostic: str | None = None
    will_retry_until: float | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"bad DSN action {self.action!r}")


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """Everything one DSN says about one message (the per-message group and its recipients)."""

    reporting_mta: str  # our host name: Reporting-MTA: dns; HOST
    queue_id: str  # of the original message, for the operator reading the bounce
    sender: str  # the original envelope sender: the DSN's recipient
    arrival: float  # Arrival-Date (Unix time)
    recipients: tuple[RecipientReport, ...]
    envid: str | None = None  # RFC 3461 ENVID -> Original-Envelope-Id
    ret: str | None = None  # "FULL" (default) or "HDRS"
    # The report's recipient when it is not `sender`: the postmaster, for a message whose sender
    # cannot get a report (a null sender, or the message is itself a report); `why` says which.
    to: str | None = None
    why: str | None = None

    @property
    def recipient(self) -> str:
        return self.to or self.sender

    @property
    def action(self) -> str:
        """The report's kind: failed outranks delayed outranks success (one DSN, one subject)."""
        actions = {r.action for r in self.recipients}
        return next((a for a in ("failed", "delayed") if a in actions), "delivered")


def wants(recipient: Recipient, action: str) -> bool:
    """Does this recipient's NOTIFY ask for a DSN with `action`? (RFC 3461 §4.1)"""
    notify = recipient.notify if recipient.notify is not None else DEFAULT_NOTIFY
    return NOTIFY_FOR_ACTION[action] in notify


def is_delivery_report(message: bytes) -> bool:
    """True when the message is itself a DSN (multipart/report; report-type=delivery-status)."""
    header, _ = split_message(message)
    field = get_first(header, "Content-Type")
    if field is None:
        return False
    value = field.value.lower().replace(" ", "")
    return value.startswith("multipart/report") and "report-type=delivery-status" in value.replace('"', "")


def may_report(envelope: Envelope, message: bytes) -> bool:
    """Never a DSN about a message with a null sender, nor about a DSN (no bounce loops)."""
    return not envelope.is_bounce and not is_delivery_report(message)


def _clean(value: str, limit: int = 900) -> str:
    """One line of printable text: control characters (CR, LF, NUL...) become one space."""
    return _CONTROL.sub(" ", value).strip()[:limit]


def _date(at: float) -> str:
    return format_datetime(datetime.fromtimestamp(at, UTC))


def _fold_field(name: str, value: str) -> str:
    """A delivery-status field folded at whitespace near 78 columns (RFC 3464 §2.1.1 allows it)."""
    line, out = f"{name}: ", []
    for word in value.split(" "):
        if len(line) + len(word) > 78 and line.strip() and not line.endswith(": "):
            out.append(line.rstrip())
            line = " "  # unfolds (RFC 5322 §2.2.3) to exactly one space
        line += word + " "
    out.append(line.rstrip())
    return "\r\n".join(out) + "\r\n"


def delivery_status(report: DeliveryReport) -> str:
    """The message/delivery-status body: per-message fields, then one group per recipient."""
    text = _fold_field("Reporting-MTA", f"dns; {_clean(report.reporting_mta, 255)}")
    text += _fold_field("X-Mailboat-Queue-ID", _clean(report.queue_id, 64))
    if report.envid:
        text += _fold_field("Original-Envelope-Id", _clean(report.envid, 100))
    text += _fold_field("Arrival-Date", _date(report.arrival))
    for r in report.recipients:
        text += "\r\n"
        if r.original_recipient:
            text += _fold_field("Original-Recipient", _clean(r.original_recipient, 500))
        text += _fold_field("Final-Recipient", f"rfc822; {_clean(r.final_recipient, 500)}")
        text += _fold_field("Action", r.action)
        text += _fold_field("Status", r.status)
        if r.remote_mta:
            text += _fold_field("Remote-MTA", f"dns; {_clean(r.remote_mta, 255)}")
        if r.diagnostic:
            text += _fold_field("Diagnostic-Code", f"smtp; {_clean(r.diagnostic)}")
        elif r.local_diagnostic:
            text += _fold_field("Diagnostic-Code", f"X-mailboat; {_clean(r.local_diagnostic)}")
        if r.last_attempt is not None:
            text += _fold_field("Last-Attempt-Date", _date(r.last_attempt))
        if r.action == "delayed" and r.will_retry_until is not None:
            text += _fold_field("Will-Retry-Until", _date(r.will_retry_until))
    return text


def _advice(r: RecipientReport) -> str:
    """What the sender can do, by RFC 3463 status class and subject."""
    if r.action == "delayed":
        return "Nothing yet: we keep trying and will tell you if we give up."
    if r.action != "failed":
        return ""
    if r.status == "4.4.7" or r.status.startswith("4."):
        return ("The receiving system could not be reached in time. Check that the address is "
                "right, then send the message again later.")
    if r.status.startswith("5.1."):
        return "Check the address for typing mistakes, or ask the recipient for the right one."
    if r.status.startswith("5.2."):
        return "The mailbox cannot take mail now (for example it is full); try again later."
    if r.status.startswith("5.7."):
        return ("The receiving system refused the message by policy; the text above says why. "
                "Contact the recipient another way or their postmaster.")
    return "The reason is given above. Contact the recipient's postmaster if it is unclear."


def _what_happened(r: RecipientReport) -> str | None:
    """One sentence in our voice: a server's reply is quoted as its own, our findings as ours."""
    if r.diagnostic:
        who = f"The remote server {_clean(r.remote_mta, 255)}" if r.remote_mta else "The remote server"
        return f"{who} said: {_clean(r.diagnostic)}"
    if not r.local_diagnostic:
        return None
    found = _clean(r.local_diagnostic).rstrip(".")
    if r.action not in ("failed", "delayed"):
        return f"mailboat: {found}."
    if not r.remote_mta and found.startswith("connect to "):
        return f"mailboat could not connect to {found[len('connect to '):]}."
    where = f" to {_clean(r.remote_mta, 255)}" if r.remote_mta else ""
    return f"mailboat could not deliver it{where}: {found}."


def explanation(report: DeliveryReport) -> str:
    """The first part: what happened, to whom, who said what (see `_what_happened`), what to do."""
    until = next((r.will_retry_until for r in report.recipients if r.will_retry_until), None)
    opening = {
        "failed": "Your message could not be delivered to one or more recipients. It is attached "
                  "below{what}.",
        "delayed": "Your message has not been delivered yet to one or more recipients. This is "
                   "only a warning: you do not need to send it again.{until}",
        "delivered": "Your message was delivered to the recipients listed below, as you asked.",
    }[report.action]
    what = " (its headers only, as you asked)" if report.ret == "HDRS" else ""
    more = f" We will keep trying until {_date(until)}." if until else ""
    paragraphs = [f"This is the mail system at host {_clean(report.reporting_mta, 255)}.",
                  opening.format(what=what, until=more),
                  f"The message arrived on {_date(report.arrival)} with queue id {_clean(report.queue_id, 64)}."]
    if report.to and report.to != report.sender:
        sender = f"<{_clean(report.sender, 500)}>" if report.sender else "the null sender <>"
        paragraphs.insert(1, f"Postmaster copy: this report is for {sender}, who cannot receive it "
                             f"({_clean(report.why or 'its delivery failed', 200)}). It comes to you so that "
                             "no report is lost; nothing will be sent about this one if it fails.")
    lines = [textwrap.fill(p, 76) + "\n" for p in paragraphs]
    for r in report.recipients:
        via = f" (sent to <{_clean(r.alias, 500)}>)" if r.alias and r.alias != r.final_recipient else ""
        entry = [f"<{_clean(r.final_recipient, 500)}>{via}: {r.action}, status {r.status}"]
        if said := _what_happened(r):
            entry.append(textwrap.fill(said, 76, initial_indent="    ", subsequent_indent="      ",
                                       break_on_hyphens=False))
        if advice := _advice(r):
            entry.append(textwrap.fill(f"What you can do: {advice}", 76, initial_indent="    ",
                                       subsequent_indent="      "))
        lines.append("\n".join(entry) + "\n")
    lines.append(textwrap.fill("For further help, send this report to your postmaster; the technical "
                               "details follow in the next part.", 76))
    return "\n".join(lines) + "\n"


def build_dsn(report: DeliveryReport, original: bytes, *, message_id: str, at: float | None = None) -> bytes:
    """The complete DSN message (CRLF line ends) to send from <> to `report.recipient`.

    `original` is the queued message; it is attached byte for byte (RET=FULL, unless larger than
    MAX_RETURNED) or cut to its header section (RET=HDRS). `message_id` is "<...@host>".
    """
    headers = EmailMessage(policy=SMTP)
    headers["From"] = f"Mail Delivery System <MAILER-DAEMON@{_clean(report.reporting_mta, 255)}>"
    headers["To"] = f"<{_clean(report.recipient, 500)}>"
    headers["Subject"] = _SUBJECTS[report.action]
    headers["Date"] = format_datetime(datetime.fromtimestamp(at, UTC).astimezone()) if at \
        else format_datetime(datetime.now().astimezone())
    headers["Message-ID"] = message_id
    headers["Auto-Submitted"] = "auto-replied"  # RFC 3834 §5: nobody auto-replies to this
    headers["MIME-Version"] = "1.0"

    text = MIMEPart(policy=SMTP)
    body = explanation(report)
    text.set_content(body, charset="utf-8", cte="7bit" if body.isascii() else "quoted-printable")
    text["Content-Description"] = "Notification"

    status = delivery_status(report)
    status_part = (b"Content-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n"
                   + (b"" if status.isascii() else b"Content-Transfer-Encoding: 8bit\r\n")
                   + b"\r\n" + status.encode("utf-8", "surrogateescape"))

    header_block, _ = split_message(original)
    full = report.ret != "HDRS" and len(original) <= MAX_RETURNED
    returned = original if full else header_block
    kind = b"message/rfc822" if full else b"text/rfc822-headers"
    description = b"Undelivered Message" if report.action == "failed" else b"Message"
    eight_bit = any(b > 0x7F for b in returned)
    returned_part = (b"Content-Description: " + description + (b"" if full else b" Headers")
                     + b"\r\nContent-Type: " + kind + b"\r\n"
                     + (b"Content-Transfer-Encoding: 8bit\r\n" if eight_bit else b"")
                     + b"\r\n" + returned)

    parts = [text.as_bytes(policy=SMTP), status_part, returned_part]
    boundary = _boundary(report, parts)
    headers["Content-Type"] = f'multipart/report; report-type=delivery-status; boundary="{boundary}"'
    head = b"".join(SMTP.fold_binary(name, value) for name, value in headers.items())
    delimiter = b"--" + boundary.encode("ascii")
    out = [head, b"\r\nThis is a MIME-encapsulated message.\r\n"]
    for part in parts:
        # RFC 2046 §5.1.1: the CRLF before a boundary belongs to the boundary, so a part that
        # ends in CRLF needs one more to keep its last line ending.
        out += [b"\r\n", delimiter, b"\r\n", part]
    out += [b"\r\n", delimiter, b"--\r\n"]
    return b"".join(out)


def _boundary(report: DeliveryReport, parts: list[bytes]) -> str:
    """A boundary that occurs in none of the parts (RFC 2046 §5.1.1 requires it)."""
    while True:
        boundary = f"{report.queue_id[:14]}.{secrets.token_hex(8)}/{_clean(report.reporting_mta, 60)}"
        if not any(boundary.encode("ascii", "replace") in part for part in parts):
            return boundary
