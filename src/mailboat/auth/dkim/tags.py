"""DKIM tag=value lists (RFC 6376 §3.2), used by DKIM-Signature fields and key records (§3.6.1).

Parsing is strict where the RFC is: a duplicate tag is an error (§3.2 "MUST be ... permerror"),
names are ALPHA *ALNUMPUNC, and whitespace around names, "=" and values is folding to ignore.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping

_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_FWS = re.compile(r"[ \t\r\n]+")
MAX_TAG_LIST = 16_384  # bytes; far above any real signature, bounds work on hostile input


class TagError(ValueError):
    """The tag list breaks RFC 6376 §3.2 syntax."""


def parse_tags(text: str) -> dict[str, str]:
    """``"v=1; a=rsa-sha256; ..."`` -> ``{"v": "1", "a": "rsa-sha256", ...}`` (values stripped)."""
    if len(text) > MAX_TAG_LIST:
        raise TagError(f"tag list longer than {MAX_TAG_LIST} bytes")
    tags: dict[str, str] = {}
    for spec in text.split(";"):
        if not spec.strip(" \t\r\n"):
            continue  # a trailing ";" (or an empty spec) is allowed
        name, eq, value = spec.partition("=")
        name = name.strip(" \t\r\n")
        if not eq or not _TAG_NAME.fullmatch(name):
            raise TagError(f"malformed tag {spec.strip()[:40]!r}")
        if name in tags:
            raise TagError(f"duplicate tag {name}=")
        tags[name] = value.strip(" \t\r\n")
    return tags


def b64decode(value: str) -> bytes:
    """Base64 with folding whitespace removed (§3.5 b=, bh=; §3.6.1 p=)."""
    try:
        return base64.b64decode(_FWS.sub("", value), validate=True)
    except (binascii.Error, ValueError):
        raise TagError("invalid base64") from None


def format_tags(tags: Mapping[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in tags.items())
