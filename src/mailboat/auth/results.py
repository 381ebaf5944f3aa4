"""Authentication results as values, and the Authentication-Results header field (RFC 8601).

Result names are spelt as their RFCs spell them (RFC 7208 §2.6, RFC 8601 §2.7.1, RFC 7489 §11.2)
because they appear verbatim in the header. `render` writes one header field for our authserv-id;
`forged_fields` finds fields that claim our authserv-id and did not come from us (RFC 8601 §5:
an MTA "MUST" remove those, or a sender could vouch for itself to our own users' clients).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from mailboat.mail.headers import Field, get_all, split_message


class SpfResult(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SOFTFAIL = "softfail"
    NEUTRAL = "neutral"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


class DkimResult(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NEUTRAL = "neutral"  # a signature we could not judge (RFC 8601 §2.7.1), e.g. unknown algorithm
    NONE = "none"  # no signature at all
    POLICY = "policy"  # valid, but refused by local policy (e.g. l= or a weak key)
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


class DmarcResult(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


class Disposition(StrEnum):
    """What the receiver does with the message (RFC 7489 §6.3 p=, RFC 9989 §4.7)."""

    NONE = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class MethodResult:
    """One resinfo of an Authentication-Results field: ``dkim=pass reason="..." header.d=example.com``."""

    method: str  # "spf" | "dkim" | "dmarc" | "arc" | "auth"
    result: str
    reason: str = ""
    properties: tuple[tuple[str, str], ...] = ()  # ("smtp.mailfrom", "a@b"), ("header.d", "b")

    def render(self) -> str:
        text = f"{self.method}={self.result}"
        if self.reason:
            text += f" reason={_quote(self.reason)}"
        for name, value in self.properties:
            text += f" {name}={_value(value)}"
        return text


_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+\-./=?^_`{|}~@]+")  # RFC 2045 token, plus "@" (RFC 8601 §2.3)


def _quote(text: str) -> str:
    text = re.sub(r"[\x00-\x1f\x7f]", " ", text)  # nothing from a peer may break the header
    # Escapes are legal (RFC 5322 quoted-pair) but many A-R readers (authres too) keep the
    # backslash; swapping the two special characters keeps the text readable everywhere.
    return '"' + text.replace("\\", "/").replace('"', "'") + '"'


def _value(text: str) -> str:
    return text if _TOKEN.fullmatch(text) and not text.startswith("@") else _quote(text)


def render(authserv_id: str, results: Sequence[MethodResult], width: int = 78) -> bytes:
    """A complete Authentication-Results field, folded before each resinfo, CRLF-terminated.

    With no results the field says ``none`` (RFC 8601 §2.2: "no-result").
    """
    parts = [f"Authentication-Results: {authserv_id};"]
    if not results:
        return (parts[0] + " none\r\n").encode()
    rendered = [r.render() for r in results]
    for i, item in enumerate(rendered):
        sep = ";" if i < len(rendered) - 1 else ""
        line = f"\t{item}{sep}"
        if len(line) > width:  # fold between properties to respect the 78-column advice
            chunks = item.split(" ")
            line, out = "\t" + chunks[0], []
            for chunk in chunks[1:]:
                if len(line) + 1 + len(chunk) > width:
                    out.append(line)
                    line = "\t" + chunk
                else:
                    line += " " + chunk
            line = "\r\n".join([*out, line]) + sep
        parts.append(line)
    return ("\r\n".join(parts) + "\r\n").encode("utf-8", "surrogateescape")


_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)")


def authserv_id_of(value: str) -> str:
    """The authserv-id of a field value (comments stripped, RFC 8601 §2.2), lower-cased."""
    for _ in range(5):  # nested comments: strip innermost first
        value = _COMMENT.sub(" ", value)
    head = value.split(";", 1)[0].strip().split()
    return head[0].strip('"').lower().rstrip(".") if head else ""


def forged_fields(message: bytes, authserv_id: str) -> list[Field]:
    """Authentication-Results fields already in `message` that use our authserv-id.

    RFC 8601 §5: they cannot be ours (we add ours after this check) so they are forgeries, or
    stale ones from an earlier pass through us; either way they must not reach the user.
    """
    ours = authserv_id.lower().rstrip(".")
    return [f for f in get_all(message, "Authentication-Results") if authserv_id_of(f.value) == ours]


def remove_fields(message: bytes, fields: Iterable[Field | bytes]) -> bytes:
    """`message` without the given header fields (matched by their exact raw bytes, once each).

    Only the header section is touched, and the body is never re-serialised, so DKIM signatures
    over the remaining fields stay valid.
    """
    header, _ = split_message(message)
    start = message.find(header) if header else 0  # not 0 when an mbox "From " line leads
    end = start + len(header)
    section = message[start:end]
    for field in fields:
        raw = field.raw if isinstance(field, Field) else field
        at = _field_start(section, raw)
        if at >= 0:
            section = section[:at] + section[at + len(raw) :]
    return message[:start] + section + message[end:]


def _field_start(header: bytes, raw: bytes) -> int:
    """Offset of `raw` where it starts a line (so a match inside another field is never cut)."""
    at = header.find(raw)
    while at > 0 and header[at - 1 : at] != b"\n":
        at = header.find(raw, at + 1)
    return at
