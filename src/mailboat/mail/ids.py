"""Queue ids: short, unique, time-ordered names for queued messages (like Postfix long ids).

Format (14 characters of [0-9A-Za-z], base 62 in ASCII order so string order is numeric order):

    TTTTTTT CC NNNNN
    |       |  +-- 5 chars: process tag, random per process (and redrawn after fork())
    |       +----- 2 chars: per-process counter within one millisecond
    +------------- 7 chars: milliseconds since the Unix epoch (good until the year 2081)

Why this shape:
- Time first, so ids sort by arrival (log greps, `queue list`, and B-tree inserts that append).
- Within one process, (time, counter) is strictly increasing, so ids never repeat: the clock
  is made monotonic here, and a counter overflow borrows the next millisecond.
- Across processes and nodes sharing one queue (PostgreSQL later), ids differ by the process tag:
  two processes collide only if they draw the same 30-bit tag (about 1 in 900 million per pair of
  processes) and then hit the same millisecond and counter. The store's primary key is the last
  line of defence: a duplicate id makes enqueue() fail rather than overwrite anything.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_TIME_LEN, _COUNTER_LEN, _TAG_LEN = 7, 2, 5
QUEUE_ID_LENGTH = _TIME_LEN + _COUNTER_LEN + _TAG_LEN
_COUNTER_MAX = 62**_COUNTER_LEN
# Accept 10-14 characters so that a future, shorter or longer format still validates while ids of
# this format stay in the queue; anything else (paths, option-looking strings) is refused.
_QUEUE_ID_RE = re.compile(r"[0-9A-Za-z]{10,14}")


def _base62(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, rem = divmod(value, 62)
        chars.append(ALPHABET[rem])
    if value:
        raise OverflowError("value does not fit in the requested width")
    return "".join(reversed(chars))


class _Generator:
    """Per-process state: last millisecond used, counter within it, process tag."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.tag = _base62(secrets.randbelow(62**_TAG_LEN), _TAG_LEN)
        self.last_ms = 0
        self.counter = 0

    def next(self) -> str:
        with self._lock:
            now_ms = time.time_ns() // 1_000_000
            if now_ms > self.last_ms:
                self.last_ms, self.counter = now_ms, 0
            else:
                # Same millisecond, or the wall clock stepped back: keep counting from the last
                # millisecond we used so the sequence stays strictly increasing.
                self.counter += 1
                if self.counter >= _COUNTER_MAX:
                    self.last_ms, self.counter = self.last_ms + 1, 0
            return _base62(self.last_ms, _TIME_LEN) + _base62(self.counter, _COUNTER_LEN) + self.tag


_generator = _Generator()
# A forked child must not reuse its parent's tag and counter: it would mint the parent's ids.
os.register_at_fork(after_in_child=_generator._reset)


def new_queue_id() -> str:
    """A new queue id, unique across processes and time-ordered (see the module docstring)."""
    return _generator.next()


def is_queue_id(value: str) -> bool:
    """True when `value` looks like a queue id (safe to use in paths, SQL and log lines)."""
    return isinstance(value, str) and _QUEUE_ID_RE.fullmatch(value) is not None


def queue_id_time(queue_id: str) -> float | None:
    """The creation time (Unix seconds) encoded in an id of the current format, else None."""
    if len(queue_id) != QUEUE_ID_LENGTH or not is_queue_id(queue_id):
        return None
    ms = 0
    for ch in queue_id[:_TIME_LEN]:
        ms = ms * 62 + ALPHABET.index(ch)
    return ms / 1000.0
