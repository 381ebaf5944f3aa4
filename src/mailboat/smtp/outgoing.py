"""What the SMTP client sends: message content (RFC 5321 §2.3.8, §4.5.2) and transaction values.

The client side of :mod:`mailboat.smtp.data`. A stored message may hold bare LF or bare CR
(BDAT and ``mailboat sendmail`` accept any octets); sent as they are, they are exactly the
material of SMTP smuggling for the next hop (security.md §1.4, Postfix
``cleanup_replace_stray_cr_lf``). So every line ending becomes CRLF *before* dot-stuffing,
a leading "." of every line is doubled, the content ends with CRLF, and ``.CRLF`` follows.
The result can contain ``CRLF.CRLF`` only as its last five octets.

Everything works on the whole buffer with ``bytes.count``/``replace`` and one regex (no
Python loop over lines): a message is prepared once and may be sent to many hosts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["OutgoingMessage", "OutgoingRecipient", "Transaction", "prepare_message", "normalize_line_endings",
           "dot_stuff", "xtext_encode", "orcpt_param"]

# CRLF first, so that an existing CRLF is matched whole and kept; then a lone CR or LF.
_LINE_ENDING = re.compile(rb"\r\n|\r|\n")
_XTEXT_UNSAFE = re.compile(r"[^\x21-\x2a\x2c-\x3c\x3e-\x7e]")  # RFC 3461 §4: "+", "=", controls


def xtext_encode(value: str) -> str:
    """RFC 3461 §4 xtext: "+" "=" and octets outside 33..126 become ``+XX`` (UTF-8 octets)."""
    return _XTEXT_UNSAFE.sub(lambda m: "".join(f"+{b:02X}" for b in m[0].encode()), value)


def orcpt_param(orcpt: str) -> str:
    """The ORCPT= value (RFC 3461 §4.2) for a stored, decoded "addr-type;address"."""
    addr_type, _, addr = orcpt.partition(";")
    if addr.isascii():
        return f"{addr_type or 'rfc822'};{xtext_encode(addr)}"
    # RFC 6533 §3 utf-8-addr-xtext: non-ASCII characters (and the xtext specials) as \x{HEX}.
    escaped = "".join(c if 0x21 <= ord(c) <= 0x7E and c not in "+=\\" else f"\\x{{{ord(c):X}}}" for c in addr)
    return f"utf-8;{escaped}"


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message ready for the DATA phase.

    Attributes:
        wire: dot-stuffed content with only CRLF line endings, including the final ``.CRLF``:
            written as is after the 354 reply.
        size: octets of the content before dot-stuffing, CRLF-normalised: the value for the
            SIZE= parameter (RFC 1870 §3: the size "including CRLF", without transparency dots).
        eight_bit: the content has octets above 127 (BODY=8BITMIME, RFC 6152).
        header_ascii: the header section is pure ASCII (if not, it needs SMTPUTF8 or, for
            raw 8-bit headers, at least an 8-bit clean path).
    """

    wire: bytes
    size: int
    eight_bit: bool
    header_ascii: bool


def normalize_line_endings(content: bytes) -> bytes:
    """Turn every bare CR and bare LF into CRLF; content already CRLF-only is returned as is."""
    crlf = content.count(b"\r\n")
    if content.count(b"\r") == crlf and content.count(b"\n") == crlf:
        return content  # the common case: three C-speed counts and no copy
    return _LINE_ENDING.sub(b"\r\n", content)


def dot_stuff(content: bytes) -> bytes:
    """Double the "." that starts any line (§4.5.2); ``content`` must be CRLF-only."""
    if b"\r\n." in content:
        content = content.replace(b"\r\n.", b"\r\n..")
    if content[:1] == b".":
        content = b"." + content
    return content


def prepare_message(message: bytes) -> OutgoingMessage:
    """Everything the DATA phase sends for ``message`` (the queued bytes, any line endings)."""
    content = normalize_line_endings(message)
    if content and not content.endswith(b"\r\n"):
        content += b"\r\n"  # §4.1.1.4: the terminator is CRLF "." CRLF; the CRLF belongs to the text
    size = len(content)
    eight_bit = not content.isascii()
    if eight_bit:
        end = content.find(b"\r\n\r\n")
        header_ascii = (content if end < 0 else content[:end]).isascii()
    else:
        header_ascii = True
    return OutgoingMessage(dot_stuff(content) + b".\r\n", size, eight_bit, header_ascii)


@dataclass(frozen=True, slots=True)
class OutgoingRecipient:
    """One RCPT: the address and its RFC 3461 parameters (sent only when the server offers DSN)."""

    address: str
    notify: tuple[str, ...] | None = None
    orcpt: str | None = None  # "rfc822;bob@example.org", decoded


@dataclass(frozen=True, slots=True)
class Transaction:
    """One message to one server.

    Attributes:
        sender: reverse-path without brackets; "" for the null sender.
        recipients: forward-paths, in RCPT order.
        message: prepared content (:func:`prepare_message`).
        smtputf8: the envelope was received with SMTPUTF8 (RFC 6531).
        ret, envid: RFC 3461 MAIL parameters, decoded; passed on when the server offers DSN.
    """

    sender: str
    recipients: tuple[OutgoingRecipient, ...]
    message: OutgoingMessage
    smtputf8: bool = False
    ret: str | None = None
    envid: str | None = None

    @property
    def needs_smtputf8(self) -> bool:
        """Non-ASCII addresses, or an SMTPUTF8 message whose header section is not ASCII."""
        ascii_envelope = self.sender.isascii() and all(r.address.isascii() for r in self.recipients)
        return not ascii_envelope or (self.smtputf8 and not self.message.header_ascii)
