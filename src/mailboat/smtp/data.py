"""Message content readers: DATA (RFC 5321 §4.1.1.4, §4.5.2) and BDAT chunks (RFC 3030).

Both work on large buffers with ``bytes`` methods (``find``, ``rfind``, ``count``, ``replace``),
never line by line in Python, and return content slices as large as the input allows.

Security rules (security.md §1, the SMTP smuggling family):

* DATA ends **only** at ``<CRLF>.<CRLF>`` (or ``.<CRLF>`` as the very first line). No
  other sequence (``<LF>.<LF>``, ``<CR>.<CR>``, ``<LF>.<CRLF>``, ``<CRLF>.<LF>``,
  ``<CRLF>NUL.<CRLF>``, ``<CRLF>.<CR><CRLF>`` …) ends it.
* A bare CR or LF, or a NUL, anywhere in the content makes the message refused, but the
  reader keeps consuming to the real end of data before the engine answers: answering
  early would make the rest of the message be read as commands.
* The same content checks apply to BDAT chunks (they are relayed later with DATA, where
  bare CR/LF would become smuggling material for the next hop), without dot handling.
"""

from __future__ import annotations

from . import replies
from .reply import Reply

__all__ = ["ContentCheck", "DataReceiver", "BdatReceiver", "MAX_TEXT_LINE"]

MAX_TEXT_LINE = 1000  # RFC 5321 §4.5.3.1.6, octets including CRLF, transparency dot excluded
_TERMINATOR = b"\r\n.\r\n"
# Line-ending check: below one CR per _SHORT_LINE octets, replacing (work per line) is cheaper
# than counting (work per octet). The density is guessed from the first _SAMPLE octets.
_SHORT_LINE = 16
_SAMPLE = 256


# The problems a message can have, most important first. When several occur, the reply
# names the most important one, so it does not depend on how the input was cut into reads.
_PROBLEMS: tuple[tuple[Reply, str], ...] = (
    (replies.BARE_LINE_ENDING, "bare CR or LF in message"),
    (replies.NUL_IN_DATA, "NUL in message"),
    (replies.DATA_LINE_TOO_LONG, f"text line longer than {MAX_TEXT_LINE} octets"),
    (replies.MESSAGE_TOO_BIG, "message exceeds the size limit"),
)
_BARE, _NUL, _LONG, _BIG = range(4)


class ContentCheck:
    """Size, line-ending, NUL and line-length accounting for one message.

    Feed it the content (after dot-unstuffing) in pieces of any size; the outcome does not
    depend on where the pieces were cut. Once a problem is found the content is no longer
    worth passing on, but checking continues to the end so that ``error`` can report the
    most important problem of the whole message.
    """

    __slots__ = ("max_size", "size", "_found", "_line_len", "_pending_cr")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size  # 0: unlimited
        self.size = 0
        self._found = [False] * len(_PROBLEMS)
        self._line_len = 0  # octets since the last LF (the pending line, CR included)
        self._pending_cr = False  # the previous piece ended with CR

    @property
    def error(self) -> tuple[Reply, str] | None:
        """(reply, reason) for the most important problem found so far, or None."""
        for index, found in enumerate(self._found):
            if found:
                return _PROBLEMS[index]
        return None

    def feed(self, piece: bytes) -> bool:
        """Account for ``piece``; return True if it is still worth passing to the application."""
        found = self._found
        self.size += len(piece)
        if piece:
            if not found[_BARE]:
                self._check_line_endings(piece)
            if not found[_NUL] and b"\x00" in piece:
                found[_NUL] = True
            if not found[_LONG]:
                self._check_line_length(piece)
        if self.max_size and self.size > self.max_size:
            found[_BIG] = True
        return not any(found)

    def finish(self) -> None:
        """The message ended: a CR left pending is a bare CR."""
        if self._pending_cr:
            self._found[_BARE] = True

    def _check_line_endings(self, piece: bytes) -> None:
        body = piece
        if self._pending_cr:
            if body[:1] != b"\n":
                self._found[_BARE] = True
                return
            body = body[1:]
        self._pending_cr = body.endswith(b"\r")
        if self._pending_cr:
            body = body[:-1]
        # Two exact tests; the cheaper one depends on the line length, guessed from a sample.
        # 1. Delete every CR, then write CRLF for every LF: the result has a CR before each LF
        #    and nowhere else, so it equals the text iff every CR was followed by LF and every
        #    LF preceded by CR. Each replace jumps from one CR (LF) to the next with memchr: a
        #    few ns per line. It deletes at most ``cap`` CRs, so if the sample misled and the
        #    lines are short after all, it stops early and test 2 decides.
        # 2. Every CR is followed by LF and every LF preceded by CR iff the three counts agree:
        #    about 1.5 ns per octet, whatever the lines.
        if body.count(b"\r", 0, _SAMPLE) * _SHORT_LINE < _SAMPLE:
            cap = len(body) // _SHORT_LINE
            stripped = body.replace(b"\r", b"", cap)
            if len(body) - len(stripped) < cap:  # every CR deleted
                if stripped.replace(b"\n", b"\r\n") != body:
                    self._found[_BARE] = True
                return
        pairs = body.count(b"\r\n")
        if body.count(b"\r") != pairs or body.count(b"\n") != pairs:
            self._found[_BARE] = True

    def _check_line_length(self, piece: bytes) -> None:
        # A line is too long once MAX_TEXT_LINE octets (CR included) have come without a LF,
        # whether a LF follows later or not: each line must have its LF among its first
        # MAX_TEXT_LINE octets. Jump from line start to line start, each time past the *last*
        # LF of that window (every line ending inside the window is shorter than it): about
        # MAX_TEXT_LINE octets per step on ordinary text, instead of looking at every octet.
        end = len(piece)
        start = -self._line_len  # where the current line starts (≤ 0: in an earlier piece)
        while start + MAX_TEXT_LINE <= end:
            # (``max(0, start)`` here would cost half as much again as the rfind itself)
            lf = piece.rfind(b"\n", start if start > 0 else 0, start + MAX_TEXT_LINE)
            if lf < 0:
                self._found[_LONG] = True
                return
            start = lf + 1
        # Fewer than MAX_TEXT_LINE octets left: nothing too long; find where the last line starts.
        lf = piece.rfind(b"\n", start if start > 0 else 0)
        self._line_len = end - (lf + 1 if lf >= 0 else start)


class DataReceiver:
    """Reads DATA content up to ``<CRLF>.<CRLF>``, removing transparency dots (§4.5.2).

    The terminator can be cut anywhere by the reads. Every octet up to and including a
    CRLF is content whatever follows, so a piece ending in CRLF is passed on whole and the
    receiver only remembers that the next octet starts a line (``_line_start``); there,
    ``.<CRLF>`` ends the message and any other ``.`` is a transparency dot. Only a final CR
    (which may be the start of ``<CRLF>.<CRLF>``) and a ``.`` or ``.<CR>`` after a CRLF
    (which may be the end of it) are held back until more input shows what they are.
    A client that sends the body and the final dot in separate writes, as most do, thus
    costs one DataChunk, not two.
    """

    __slots__ = ("check", "_line_start")

    def __init__(self, max_size: int) -> None:
        self.check = ContentCheck(max_size)
        self._line_start = True  # the next octet starts a line (the first, or one after a CRLF)

    def feed(self, buf: bytes, pos: int) -> tuple[int, bytes, bool]:
        """Consume content from ``buf[pos:]``.

        Returns ``(new_pos, content, done)``: ``content`` is unstuffed content for the
        application (``b""`` once the message is known to be refused); ``done`` means the
        terminator was consumed. At most two trailing octets (``\\r``, ``.`` or ``.\\r``)
        are left unconsumed until more input shows what they are.
        """
        end = len(buf)
        if self._line_start:
            if pos >= end:
                return pos, b"", False
            if buf[pos] == 0x2E:  # "." starting a line
                if buf.startswith(b".\r\n", pos):
                    self.check.finish()
                    return pos + 3, b"", True
                if end - pos < 3 and b".\r\n".startswith(buf[pos:end]):
                    return pos, b"", False
                pos += 1  # transparency dot
                self._line_start = False
        # One scan finds both the terminator and dot-stuffed lines: each starts with CRLF ".".
        dot = buf.find(b"\r\n.", pos)
        if dot >= 0 and not buf.startswith(_TERMINATOR, dot):
            found = buf.find(_TERMINATOR, dot)  # stuffed lines first; the terminator may follow
        else:
            found = dot
        if found >= 0:
            seg_end, new_pos, done = found + 2, found + len(_TERMINATOR), True
        else:
            done = False
            if buf.endswith(b"\r\n", pos):
                seg_end, line_start = end, True
            elif buf.endswith(b"\r\n.", pos):
                seg_end, line_start = end - 1, True  # hold "." back: terminator or stuffing?
            elif buf.endswith(b"\r\n.\r", pos):
                seg_end, line_start = end - 2, True  # hold ".\r" back
            elif buf.endswith(b"\r", pos):
                seg_end, line_start = end - 1, False  # hold "\r" back: it may start CRLF.CRLF
            else:
                seg_end, line_start = end, False
            new_pos = seg_end
            if seg_end > pos:
                self._line_start = line_start
        if seg_end == pos:
            return new_pos, b"", done  # only held-back octets
        raw = buf[pos:seg_end]
        # A line starting with "." lost its first dot; "\r\n.." → "\r\n." (non-overlapping).
        # (``dot`` is the first CRLF "." at or after pos: none inside raw unless it fits before seg_end.)
        content = raw.replace(b"\r\n.", b"\r\n") if 0 <= dot and dot + 3 <= seg_end else raw
        keep = self.check.feed(content)
        if done:
            self.check.finish()
        return new_pos, content if keep else b"", done


class BdatReceiver:
    """Reads exactly ``remaining`` octets of one BDAT chunk, raw (RFC 3030 §2: no dot handling).

    ``check`` is None for a refused BDAT whose octets are only skipped.
    """

    __slots__ = ("check", "remaining", "chunk_size", "last")

    def __init__(self, size: int, last: bool, check: ContentCheck | None) -> None:
        self.check = check
        self.remaining = size
        self.chunk_size = size
        self.last = last

    def feed(self, buf: bytes, pos: int) -> tuple[int, bytes, bool]:
        """Same contract as :meth:`DataReceiver.feed`; ``done`` when the chunk is complete."""
        take = min(self.remaining, len(buf) - pos)
        self.remaining -= take
        content = buf[pos : pos + take] if take else b""
        keep = self.check.feed(content) if self.check is not None else False
        done = self.remaining == 0
        if done and self.last and self.check is not None:
            self.check.finish()
        return pos + take, content if keep else b"", done
