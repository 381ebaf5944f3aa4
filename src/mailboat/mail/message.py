"""Byte-level facts about a message that the SMTP hot path needs, without parsing it.

The message is kept as the bytes the client sent; we only find where the header block ends and
count trace headers (RFC 5321 §6.3 loop detection). Nothing here re-serialises a message.
"""

from __future__ import annotations

import re

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_RECEIVED = re.compile(rb"(?:^|\n)received[ \t]*:", re.IGNORECASE)


def header_block(data: bytes) -> bytes:
    """The header section (without the blank line), or everything when there is no body."""
    match = _HEADER_END.search(data)
    if match is None:
        return data
    return data[: match.start() + 1]


def count_received(data: bytes) -> int:
    """Number of Received: header fields in the header section (for the hop limit)."""
    return len(_RECEIVED.findall(header_block(data)))
