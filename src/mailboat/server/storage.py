"""Free-space admission at MAIL FROM (Postfix queue_minfree / smtpd_space_multf).

A message we cannot store must be refused before the client sends it, not after: at MAIL the
session asks `space_refusal()` whether the spool's file system still has room for a message of
the declared SIZE (or, without SIZE, of the largest size we accept), times a safety factor. If
not, the reply is 452 4.3.1 (RFC 3463 "mail system full"), a transient refusal: the client
retries later and nothing is lost. The end-of-DATA write still maps ENOSPC to 452/451 (the
check is advisory; other writers share the disk).
"""

from __future__ import annotations

import os

from mailboat import smtp

INSUFFICIENT_STORAGE = smtp.Reply.make(452, "4.3.1", "Insufficient system storage")
DEFAULT_MULTIPLIER = 1.5  # Postfix smtpd_space_multf


def free_bytes(path: str) -> int | None:
    """Bytes available to unprivileged writers on the file system holding `path`; None if unknown."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def space_refusal(path: str | None, *, declared_size: int | None, message_size_limit: int,
                  minfree: int, multiplier: float = DEFAULT_MULTIPLIER) -> tuple[smtp.Reply, str] | None:
    """(452 4.3.1 reply, internal reason) when the spool is too full for one more message; else None.

    Needed: `minfree` bytes, and `multiplier` x (SIZE= if the client declared one, else the
    message size limit; 0 = unlimited counts as nothing). Unknown free space never refuses.
    """
    if not path:
        return None
    free = free_bytes(path)
    if free is None:
        return None
    size = declared_size if declared_size is not None else message_size_limit
    needed = max(minfree, int(multiplier * size))
    if free < needed:
        return INSUFFICIENT_STORAGE, f"{free} bytes free in {path}, {needed} needed"
    return None
