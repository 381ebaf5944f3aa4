"""Raw header access: split, unfold and look up header fields without re-serialising anything.

RFC 5322 §2.2 defines a header field as a name, a colon and a body that may be *folded* over
several lines (§2.2.3: a CRLF immediately followed by WSP). DKIM (RFC 6376 §3.4) and the trace
analyser both need the field exactly as it arrived, so `Field.raw` keeps the original bytes
(name, colon, folding, line endings) and `Field.value` gives the unfolded text for reading.

Tolerances (RFC 5321 §3.7.2 asks readers to be "extremely robust"): bare LF line endings, a
missing blank line (the whole input is then headers), whitespace before the colon
(RFC 5322 §4.5 obs-optional), a leading mbox ``From `` line, and non-UTF-8 bytes (decoded with
surrogateescape so nothing is lost).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

_HEADER_END = re.compile(rb"\r?\n\r?\n")
# A field starts at a line whose first byte is not WSP; continuation lines start with WSP.
_FIELD = re.compile(rb"([^\s:][^:\r\n]*?)[ \t]*:(.*(?:\r?\n[ \t].*)*)(?:\r?\n|$)")


@dataclass(frozen=True, slots=True)
class Field:
    """One header field as it arrived."""

    name: str  # as written (compare with .lower())
    raw: bytes  # the whole field including its final line ending, byte for byte

    @property
    def raw_value(self) -> bytes:
        """Everything after the colon, folding and line ending kept."""
        return self.raw.split(b":", 1)[1]

    @property
    def value(self) -> str:
        """The field body unfolded (RFC 5322 §2.2.3) and stripped, as text."""
        return unfold(self.raw_value)


def unfold(value: bytes | str) -> str:
    """Remove folding: CRLF (or bare LF) followed by WSP becomes the WSP alone.

    Any other stray CR or LF becomes a space, so the result is always one line.
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")
    if "\n" in value or "\r" in value:  # str.replace: several times faster than re.sub here
        value = value.replace("\r\n", "\n").replace("\n ", " ").replace("\n\t", "\t")
        value = value.replace("\n", " ").replace("\r", " ")
    return value.strip()


def _bounds(data: bytes) -> tuple[int, int, int | None]:
    """Where the header section starts and ends in `data`, and where the body starts (None: no
    blank line, headers only). Offsets, so callers copy only what they take."""
    start = 0
    if data.startswith(b"From "):  # mbox separator line, not a header
        newline = data.find(b"\n")
        start = newline + 1 if newline >= 0 else len(data)
    if data.startswith(b"\r\n", start):  # empty header section
        return start, start, start + 2
    if data.startswith(b"\n", start):
        return start, start, start + 1
    match = _HEADER_END.search(data, start)
    if match is None:
        return start, len(data), None
    # Keep the line ending of the last header line; the body starts after the blank line.
    return start, data.index(b"\n", match.start()) + 1, match.end()


def split_message(data: bytes) -> tuple[bytes, bytes | None]:
    """(header section, body). The body is None when there is no blank line (headers only)."""
    start, end, body = _bounds(data)
    return data[start:end], (data[body:] if body is not None else None)


def header_section(data: bytes) -> bytes:
    """The header section of a message: split_message(data)[0] without copying the body."""
    start, end, _ = _bounds(data)
    return data[start:end]


@functools.lru_cache(maxsize=128)
def _mentions(name: str) -> Callable[[bytes], re.Match[bytes] | None]:
    # Case-insensitive search for the bare name, anywhere: a field called `name` cannot exist
    # where the name does not occur at all, so most look-ups end here, in C, without parsing.
    return re.compile(re.escape(name.encode("ascii", "replace")), re.IGNORECASE).search


def parse_fields(header: bytes) -> list[Field]:
    """All fields of a header section, in order. Lines that are not fields are skipped."""
    return [Field(m.group(1).decode("ascii", "replace").strip(), m.group(0)) for m in _FIELD.finditer(header)]


def get_all(source: bytes | Iterable[Field], name: str) -> list[Field]:
    """Every field called `name` (case-insensitive), top to bottom, original bytes kept.

    `source` is a message (bytes: the header section is found first) or parsed fields.
    """
    if isinstance(source, bytes):
        header = header_section(source)
        if _mentions(name)(header) is None:
            return []
        fields: Iterable[Field] = parse_fields(header)
    else:
        fields = source
    wanted = name.lower()
    return [f for f in fields if f.name.lower() == wanted]


def get_first(source: bytes | Iterable[Field], name: str) -> Field | None:
    """The topmost field called `name`, or None."""
    if isinstance(source, bytes):
        header = header_section(source)
        match = _mentions(name)(header)
        if match is None:
            return None
        if match.start() == 0 or header[match.start() - 1] == 0x0A:
            # The first mention starts a line, so nothing above it is a field called `name`
            # (parse_fields finds fields only at line starts or after leading WSP): parse
            # this one field alone.
            field = _FIELD.match(header, match.start())
            if field is not None:
                found = field.group(1).decode("ascii", "replace").strip()
                if found.lower() == name.lower():
                    return Field(found, field.group(0))
    found = get_all(source, name)
    return found[0] if found else None
