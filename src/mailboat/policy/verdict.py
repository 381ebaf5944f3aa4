"""Verdict: what a filter decides at one phase (maddy CheckResult, rspamd's action and symbols).

A verdict carries an `Action`, the reply for a refusal or deferral, a score contribution as
named `Symbol`s, header fields to prepend and to remove, and a reason for the log. The pipeline
combines the verdicts of one message into one (`pipeline.py`); the session carries it out.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mailboat.smtp import Reply


class Action(enum.Enum):
    """What happens to the message (or, before DATA, to the command).

    CONTINUE: this filter lets it through; the next filter decides. REJECT and TEMPFAIL answer
    the command with the verdict's reply (5xx: refused; 4xx: the client keeps it and retries).
    QUARANTINE: accepted and delivered into the recipient's Junk folder. DISCARD: accepted with a
    250 and dropped (Postfix's DISCARD), for mail nobody should see and nobody must be told about.
    """

    CONTINUE = "continue"
    REJECT = "reject"
    TEMPFAIL = "tempfail"
    QUARANTINE = "quarantine"
    DISCARD = "discard"


ACCEPT = Action.CONTINUE  # the same action under the name rspamd and Haraka use

# Actions that end the pipeline at once: no later filter runs for that command.
FINAL = frozenset({Action.REJECT, Action.TEMPFAIL, Action.DISCARD})


@dataclass(frozen=True, slots=True)
class Symbol:
    """One named finding and what it adds to the message's score (negative: ham evidence).

    `detail` says what matched (a list zone, a URL's domain); like `reason`, it goes to the log
    and the journey, and appears in a header only through a filter that renders it.
    """

    name: str
    score: float = 0.0
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A filter's decision.

    `reply` is set exactly for REJECT and TEMPFAIL (a verdict built with a reply and no action
    takes REJECT or TEMPFAIL from the reply's code). `headers` are complete header fields
    (CRLF-terminated bytes) to prepend, such as Authentication-Results, and `remove_headers` the
    exact raw fields to delete (an Authentication-Results forged with our authserv-id); filters
    never edit the message itself. `reason` is for the log only and is never sent to the client.
    """

    reply: Reply | None = None
    headers: tuple[bytes, ...] = ()
    remove_headers: tuple[bytes, ...] = ()
    reason: str = ""
    action: Action = Action.CONTINUE
    symbols: tuple[Symbol, ...] = ()

    def __post_init__(self) -> None:
        reply, action = self.reply, self.action
        if reply is not None:
            if reply.code < 400:
                raise ValueError(f"a verdict's reply refuses or defers, not {reply.code}")
            if action is Action.CONTINUE:
                object.__setattr__(self, "action", Action.TEMPFAIL if reply.code < 500 else Action.REJECT)
            elif action not in (Action.REJECT, Action.TEMPFAIL):
                raise ValueError(f"{action.name} carries no reply")
        elif action is Action.REJECT or action is Action.TEMPFAIL:
            raise ValueError(f"{action.name} needs a reply")

    @property
    def is_final(self) -> bool:
        """REJECT, TEMPFAIL or DISCARD: the pipeline stops here."""
        return self.action in FINAL

    @property
    def score(self) -> float:
        return sum(s.score for s in self.symbols)

    def summary(self) -> str:
        """For the log: `action=quarantine score=7.3 symbols=BAYES_SPAM(5.1),... reason=...`."""
        symbols = ",".join(f"{s.name}({s.score:g})" for s in self.symbols) or "-"
        return f"action={self.action.value} score={self.score:g} symbols={symbols} reason={self.reason or '-'}"


CONTINUE = Verdict()


def refuse(code: int, status: str, text: str, reason: str = "") -> Verdict:
    """REJECT (5xx) or TEMPFAIL (4xx) with this reply; `reason` (default: the text) is logged."""
    return Verdict(reply=Reply.make(code, status, text), reason=reason or text)


def tempfail(text: str = "Try again later", status: str = "4.7.1", reason: str = "") -> Verdict:
    """TEMPFAIL with 451: the client keeps the message and retries."""
    return refuse(451, status, text, reason)


def quarantine(reason: str, symbols: tuple[Symbol, ...] = ()) -> Verdict:
    """Accept, and deliver into the recipients' Junk folder."""
    return Verdict(action=Action.QUARANTINE, reason=reason, symbols=symbols)


def discard(reason: str) -> Verdict:
    """Answer 250 and drop the message."""
    return Verdict(action=Action.DISCARD, reason=reason)


def scored(*symbols: Symbol, headers: tuple[bytes, ...] = ()) -> Verdict:
    """CONTINUE with a score contribution."""
    return Verdict(symbols=symbols, headers=headers)
