"""SMTP replies as immutable values: basic code (RFC 5321 §4.2) plus RFC 3463 enhanced status.

A :class:`Reply` renders itself to wire bytes (multi-line, with the enhanced status repeated
on every line as RFC 2034 §3 shows) and parses wire bytes back (for the client side).

Replies are values that are sent over and over (the catalogue in :mod:`.replies`, the EHLO
list of a listener), so a reply renders its wire form once, on first use, and keeps it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = ["Reply"]

_STATUS_RE = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})")
_LINE_RE = re.compile(rb"([2-5][0-9][0-9])([ -])?(.*)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply.

    Attributes:
        code: the RFC 5321 §4.2 three-digit basic code, 200-599.
        status: the RFC 3463 enhanced status code, e.g. ``(5, 1, 1)``, or None. When set,
            its class digit must equal the first digit of ``code``; 3yz replies (354, 334)
            never carry one.
        lines: the text of each line, without code or status prefix. May be empty.

    Construction raises :class:`ValueError` for impossible values, including text lines
    containing CR, LF or NUL: a reply can never be used to inject a second reply.
    """

    code: int
    status: tuple[int, int, int] | None
    lines: tuple[str, ...]
    # The rendered wire form, filled by the first to_bytes(). Not part of the value: it takes
    # no part in equality, hashing, repr or construction.
    _wire: bytes = field(default=b"", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if type(self.lines) is not tuple:  # a caller's list must not change the cached bytes
            object.__setattr__(self, "lines", tuple(self.lines))
        if not 200 <= self.code <= 599:
            raise ValueError(f"reply code out of range: {self.code}")
        if self.status is not None:
            if len(self.status) != 3 or self.status[0] != self.code // 100 or self.code // 100 == 3:
                raise ValueError(f"enhanced status {self.status} does not fit code {self.code}")
            if not (0 <= self.status[1] <= 999 and 0 <= self.status[2] <= 999):  # [0] fits the code
                raise ValueError(f"enhanced status out of range: {self.status}")
        for line in self.lines:
            if "\r" in line or "\n" in line or "\x00" in line:
                raise ValueError("reply text must not contain CR, LF or NUL")

    # -- convenience -------------------------------------------------------------------

    @classmethod
    def make(cls, code: int, status: str | None, *lines: str) -> Reply:
        """Build a reply from a dotted status string: ``Reply.make(550, "5.1.1", "No such user")``."""
        return cls(code, None if status is None else _parse_status(status), lines)

    @property
    def is_positive(self) -> bool:
        """2yz (completion) or 3yz (intermediate) reply."""
        return self.code < 400

    @property
    def is_transient(self) -> bool:
        """4yz: the client should try again later."""
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        """5yz: the client must not repeat the same request."""
        return self.code >= 500

    @property
    def status_text(self) -> str | None:
        """The enhanced status as ``"5.1.1"``, or None."""
        return None if self.status is None else "{}.{}.{}".format(*self.status)

    @property
    def text(self) -> str:
        """All lines joined with a newline (for logs)."""
        return "\n".join(self.lines)

    # -- wire format ---------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Render as ``"250-first\\r\\n250 last\\r\\n"``, the status prefixed on every line."""
        wire = self._wire
        if not wire:  # first use; a reply is immutable, so its rendering is too
            wire = self._render()
            object.__setattr__(self, "_wire", wire)
        return wire

    def _render(self) -> bytes:
        prefix = str(self.code)
        status = self.status_text
        lines = self.lines or ("",)
        if len(lines) == 1 and status is not None and lines[0]:  # the common "250 2.1.0 Ok"
            return f"{prefix} {status} {lines[0]}\r\n".encode()
        out = []
        last = len(lines) - 1
        for index, line in enumerate(lines):
            body = " ".join(part for part in (status, line) if part)
            sep = " " if index == last else "-"
            # "334 " rather than "334" for empty text: Go's net/textproto needs the 4th octet.
            out.append(f"{prefix}{sep}{body}\r\n")
        return "".join(out).encode("utf-8")

    @classmethod
    def parse(cls, data: bytes) -> Reply:
        """Parse one complete (possibly multi-line) reply, CRLF-terminated lines.

        The enhanced status is recognised when the first line starts with one whose class
        matches the code; it is then stripped from every line that repeats it.
        Raises :class:`ValueError` on malformed input.
        """
        if not data.endswith(b"\r\n"):
            raise ValueError("reply does not end with CRLF")
        raw_lines = data[:-2].split(b"\r\n")
        code: int | None = None
        texts: list[str] = []
        for index, raw in enumerate(raw_lines):
            match = _LINE_RE.fullmatch(raw)
            if match is None:
                raise ValueError(f"malformed reply line: {raw!r}")
            this_code = int(match[1])
            if code is not None and this_code != code:
                raise ValueError("reply lines disagree on the code")
            code = this_code
            is_last = index == len(raw_lines) - 1
            if (match[2] == b"-") == is_last or (match[2] is None and match[3]):
                raise ValueError("continuation marker misplaced")
            if b"\r" in raw or b"\n" in raw or b"\x00" in raw:
                raise ValueError("reply line contains CR, LF or NUL")
            texts.append(match[3].decode("utf-8", "replace"))
        assert code is not None
        status: tuple[int, int, int] | None = None
        first = _STATUS_RE.match(texts[0])
        if first and int(first[1]) == code // 100 and first.end() in (len(texts[0]), texts[0].find(" ")):
            status = (int(first[1]), int(first[2]), int(first[3]))
            dotted = first[0]
            texts = [_strip_status(text, dotted) for text in texts]
        return cls(code, status, tuple(texts))

    def __str__(self) -> str:
        return self.to_bytes().decode("utf-8", "replace").rstrip("\r\n").replace("\r\n", " / ")


@lru_cache(maxsize=256)
def _parse_status(status: str) -> tuple[int, int, int]:
    """``"5.1.1"`` → ``(5, 1, 1)``; cached, since a program uses only a handful of statuses."""
    match = _STATUS_RE.fullmatch(status)
    if match is None:
        raise ValueError(f"malformed enhanced status: {status!r}")
    return int(match[1]), int(match[2]), int(match[3])


def _strip_status(text: str, dotted: str) -> str:
    if text == dotted:
        return ""
    if text.startswith(dotted + " "):
        return text[len(dotted) + 1 :]
    return text
