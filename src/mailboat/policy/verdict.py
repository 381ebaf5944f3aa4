"""Verdict: what a filter decides at one phase (maddy CheckResult, Haraka next(DENY|OK|CONT))."""

from __future__ import annotations

from dataclasses import dataclass

from mailboat.smtp import Reply


@dataclass(frozen=True, slots=True)
class Verdict:
    """`reply` set: stop and answer with it (refusal or deferral); None: continue.

    `headers` are complete header fields (CRLF-terminated bytes) a filter asks to prepend, such
    as Authentication-Results, and `remove_headers` the exact fields it asks to delete (an
    Authentication-Results forged with our authserv-id); filters never edit the message itself. `reason` is for the log
    only and is never sent to the client.
    """

    reply: Reply | None = None
    headers: tuple[bytes, ...] = ()
    remove_headers: tuple[bytes, ...] = ()  # exact raw header fields to delete (forged A-R)
    reason: str = ""

    @property
    def is_final(self) -> bool:
        return self.reply is not None


CONTINUE = Verdict()


def refuse(code: int, status: str, text: str, reason: str = "") -> Verdict:
    return Verdict(reply=Reply.make(code, status, text), reason=reason or text)
