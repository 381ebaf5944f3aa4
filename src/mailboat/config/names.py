"""Domain names and mailbox addresses as the configuration and `mailboat user` accept them.

One rule for every place a name is written by hand (`hostname`, `[domains] local`, `[aliases]`,
`[[route]] domain`, `[[dkim.sign]] domain`, `mailboat user add`):

- a domain name is LDH labels (letters, digits, hyphens; RFC 1035 §2.3.1, RFC 5890), 63 octets a
  label at most, 253 in all. An internationalised name (IDNA 2008 with the UTS #46 mapping) is
  accepted in either form and stored in its ASCII form, lowercase, as DNS knows it:
  ``Bücher.Example.`` becomes ``xn--bcher-kva.example``. One trailing dot is allowed and dropped;
- a mailbox is ``local@domain``: the local part exactly as our SMTP server's RCPT parser accepts
  it with SMTPUTF8 (`mailboat.smtp.address.parse_path`, RFC 5321 §4.1.2 and RFC 6531 §3.3), so an
  account or alias the configuration accepts is one a client can name. Bare local parts are
  refused: Postfix would qualify them with $myorigin, we ask for the full address instead.

Each function raises ValueError with a message that names the bad value and what to write.
"""

from __future__ import annotations

import re
import unicodedata

import idna

from mailboat.smtp.address import parse_path
from mailboat.smtp.errors import AddressError

__all__ = ["domain_name", "mailbox", "is_fqdn"]

_MAX_NAME = 253  # RFC 1035 §3.1: 255 octets on the wire, 253 as text without the root dot


def _reason(exc: idna.IDNAError) -> str:
    message = str(exc)
    codepoint = re.match(r"Codepoint U\+([0-9A-Fa-f]{4,6}) ", message)
    if codepoint:
        return f"{chr(int(codepoint.group(1), 16))!r} is not allowed: letters, digits, hyphens and dots only"
    if message == "Empty Label":
        return "it has an empty label (two dots in a row?)"
    if message == "Label too long":
        return "a label is longer than 63 characters"
    if "hyphen" in message:
        return "a label starts or ends with a hyphen"
    return message[:1].lower() + message[1:]


def domain_name(text: object, *, min_labels: int = 2, example: str = "example.com") -> str:
    """`text` as a lowercase ASCII domain name (A-labels), or ValueError naming what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a domain name such as \"{example}\"")
    name = text[:-1] if text.endswith(".") else text
    if not name:
        raise ValueError(f"{text!r} is not a domain name such as \"{example}\": it is empty")
    try:
        ascii_name = idna.encode(name, uts46=True, std3_rules=True).decode("ascii").lower()
    except idna.IDNAError as exc:
        raise ValueError(f"{text!r} is not a domain name such as \"{example}\": {_reason(exc)}") from None
    except UnicodeError:
        raise ValueError(f"{text!r} is not a domain name such as \"{example}\"") from None
    labels = ascii_name.split(".")
    if len(ascii_name) > _MAX_NAME:
        raise ValueError(f"{text!r} is not a domain name: longer than {_MAX_NAME} characters")
    if labels[-1].isdigit():
        raise ValueError(f"{text!r} is not a domain name such as \"{example}\": "
                         "an IP address or a number is not a host name")
    if len(labels) < min_labels:
        raise ValueError(f"{text!r} is not a fully qualified domain name such as \"{example}\"")
    return ascii_name


def is_fqdn(name: str) -> bool:
    """True for a name an MX record may point at: two labels or more, and not localhost."""
    labels = name.rstrip(".").lower().split(".")
    return len(labels) >= 2 and labels[-1] not in ("localhost", "localdomain") and name.lower() != "localhost"


def mailbox(text: object) -> str:
    """`text` as ``local@domain``: the local part as written (NFC; a remote host's local parts are
    case-sensitive), the domain as `domain_name`; ValueError if no RCPT TO could name it."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not an address such as \"alice@example.com\"")
    address = unicodedata.normalize("NFC", text.strip())
    if "@" not in address:
        raise ValueError(f"{text!r} is not a full address: write local@domain, "
                         f"e.g. \"{address or 'alice'}@example.com\" (bare local parts are not accepted)")
    if address.startswith("@"):
        raise ValueError(f"{text!r} is not an address such as \"alice@example.com\": it has no local part")
    domain_part = address.rpartition("@")[2]
    if domain_part and not domain_part.startswith("["):
        try:
            domain_name(domain_part, min_labels=1)
        except ValueError as exc:
            raise ValueError(f"{text!r}: its domain {exc}") from None
    try:
        path = parse_path(f"<{address}>", allow_null=False, smtputf8=True, allow_postmaster=False)
    except AddressError as exc:
        raise ValueError(f"{text!r} is not an address such as \"alice@example.com\": {exc.reason}") from None
    if path.source_route:
        raise ValueError(f"{text!r} is not an address such as \"alice@example.com\": source route")
    if path.domain.startswith("["):
        return f"{path.local_part}@{path.domain}"
    try:
        domain = domain_name(path.domain, min_labels=1)
    except ValueError as exc:
        raise ValueError(f"{text!r}: its domain {exc}") from None
    return f"{path.local_part}@{domain}"
