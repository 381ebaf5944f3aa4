"""DKIM canonicalisation (RFC 6376 §3.4): "simple" and "relaxed" for header fields and body.

Everything works on bytes. Lone LF line endings are first turned into CRLF (§5.3: a signer
"MUST" sign the message in its wire form, and SMTP's wire form is CRLF), which is also what
OpenDKIM and dkimpy do with local files, so a message read from a Unix file verifies the same.
"""

from __future__ import annotations

import re

_LONE_LF = re.compile(rb"(?<!\r)\n")
_WSP_RUN = re.compile(rb"[ \t]+")
_WSP_TO_FIX = re.compile(rb"[ \t]{2,}|\t")  # single spaces are already canonical: skip them (speed)
_FOLD = re.compile(rb"\r\n(?=[ \t])")


def crlf(data: bytes) -> bytes:
    # Counting is a C loop; the regex runs only when some LF really lacks its CR.
    return _LONE_LF.sub(b"\r\n", data) if data.count(b"\n") != data.count(b"\r\n") else data


def header_field(raw: bytes, method: str) -> bytes:
    """One field (name, colon, value, final CRLF) canonicalised, final CRLF included."""
    raw = crlf(raw)
    if method == "simple":
        return raw if raw.endswith(b"\r\n") else raw + b"\r\n"
    name, _, value = raw.partition(b":")
    # §3.4.2: lower-case the name, unfold, collapse WSP runs, drop WSP at both ends of the value.
    value = _WSP_RUN.sub(b" ", _FOLD.sub(b"", value).replace(b"\r\n", b"")).strip(b" ")
    return name.strip(b" \t").lower() + b":" + value + b"\r\n"


def body(data: bytes, method: str, length: int | None = None) -> bytes:
    """The canonical body, truncated to `length` bytes when the signature has l= (§3.4.5)."""
    data = crlf(data)
    if method == "simple":
        # §3.4.3: drop trailing empty lines; an empty body becomes one CRLF.
        data = _strip_empty_lines(data) + b"\r\n"
    else:
        # §3.4.4: WSP runs become one SP, WSP at line ends goes, trailing empty lines go; an
        # empty body stays empty (RFC 6376 erratum 3192, as implemented by dkimpy and OpenDKIM).
        data = _WSP_TO_FIX.sub(b" ", data).replace(b" \r\n", b"\r\n").rstrip(b" ")
        data = _strip_empty_lines(data)
        if data:
            data += b"\r\n"
    return data if length is None else data[:length]


def _strip_empty_lines(data: bytes) -> bytes:
    # A loop, not a regex anchored at the end: a regex would retry at every CRLF (quadratic).
    end = len(data)
    while data[end - 2 : end] == b"\r\n":
        end -= 2
    return data[:end]


def select_headers(fields: list[tuple[str, bytes]], names: list[str]) -> list[bytes]:
    """§5.4.2: for each name in h=, the next instance of that field counting from the bottom.

    A name listed more often than the field occurs selects nothing the extra times; that is what
    makes "oversigning" work (a field added later would change the hash).
    """
    used: dict[str, int] = {}
    selected = []
    for name in names:
        key = name.strip().lower()
        instances = [raw for n, raw in fields if n.lower() == key]
        n = used.get(key, 0)
        used[key] = n + 1
        if n < len(instances):
            selected.append(instances[len(instances) - 1 - n])
    return selected
