"""Pure helpers for the SASL exchanges carried by AUTH (RFC 4954): PLAIN (RFC 4616) and LOGIN.

The engine only moves lines; the application decodes responses with these helpers, checks
credentials, and answers with 334 / 235 / 535 replies.
"""

from __future__ import annotations

import base64
import binascii

from .reply import Reply

__all__ = [
    "decode_response",
    "decode_plain",
    "challenge",
    "LOGIN_USERNAME",
    "LOGIN_PASSWORD",
]


def decode_response(data: str) -> bytes:
    """Decode one base64 client response. Raises :class:`ValueError` if it is not base64."""
    try:
        return base64.b64decode(data.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("response is not valid base64") from None


def decode_plain(data: str) -> tuple[str, str, str]:
    """Decode a PLAIN response ``authzid NUL authcid NUL passwd`` (RFC 4616 §2).

    Returns ``(authzid, authcid, password)``; authzid may be empty. Raises :class:`ValueError`.
    """
    raw = decode_response(data)
    parts = raw.split(b"\x00")
    if len(parts) != 3 or not parts[1] or not parts[2]:
        raise ValueError("PLAIN response is not authzid NUL authcid NUL passwd")
    try:
        authzid, authcid, password = (p.decode("utf-8") for p in parts)
    except UnicodeDecodeError:
        raise ValueError("PLAIN response is not UTF-8") from None
    return authzid, authcid, password


def challenge(data: bytes) -> Reply:
    """A ``334 <base64>`` continuation reply (no enhanced status: 3yz has none)."""
    return Reply(334, None, (base64.b64encode(data).decode("ascii"),))


LOGIN_USERNAME = challenge(b"Username:")  # the de-facto LOGIN mechanism prompts
LOGIN_PASSWORD = challenge(b"Password:")
