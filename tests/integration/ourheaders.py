"""Reading back the Received header mailboat wrote, strictly in the SPEC layout."""

from __future__ import annotations

import re

RECEIVED = re.compile(
    rb"Received: from (?P<helo>\S+) \((?P<rdns>\S+) \[(?P<ip>[^\]]+)\]\)\r\n"
    rb"\tby (?P<by>\S+) \(mailboat\) with (?P<proto>[A-Z0-9]+) id (?P<id>[0-9A-Za-z]+)(?P<semi>;?)\r\n"
    rb"(?:\t\(using (?P<tlsver>TLSv[0-9.]+) with cipher (?P<cipher>[A-Z0-9_-]+)\)\r\n)?"
    rb"\t(?:for <(?P<for>[^>]+)>; )?(?P<date>(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} [A-Z][a-z]{2} \d{4} "
    rb"\d\d:\d\d:\d\d [+-]\d{4})\r\n"
)


def header_block(message: bytes) -> bytes:
    end = message.find(b"\r\n\r\n")
    return message if end < 0 else message[: end + 2]


def received_headers(message: bytes) -> list[bytes]:
    return re.findall(rb"(?im)^received:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*", header_block(message))


def our_received(message: bytes) -> dict[str, str | None]:
    """The one Received header we wrote (it must be the first one in the message)."""
    block = header_block(message)
    start = block.find(b"Received: ")
    assert start >= 0, block
    match = RECEIVED.match(block, start)
    assert match, block[start:start + 400]
    return {k: (v.decode() if v is not None else None) for k, v in match.groupdict().items()}
