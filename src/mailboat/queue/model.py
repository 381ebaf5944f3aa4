"""Queue values: a queued message, its per-recipient state and attempt history.

Plain frozen values with plain types (an int reply code and a str reply text), so that the queue
needs nothing from `smtp` and every backend (memory, SQLite, PostgreSQL) shares one meaning.
The delivery outcome and the recipient state are the transports' vocabulary
(`delivery.outcome`): the queue depends on delivery's contract, never the reverse.
`apply_outcomes` is the single place that turns delivery outcomes into new recipient states;
backends call it inside their write transaction so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from mailboat.delivery.outcome import RecipientOutcome, RecipientState
from mailboat.mail.envelope import Envelope, Recipient


@dataclass(frozen=True, slots=True)
class Attempt:
    """One recorded attempt for one recipient (what `queue show` and `journey` display)."""

    at: float
    host: str
    reply_code: int
    reply_text: str
    state: RecipientState


@dataclass(frozen=True, slots=True)
class QueuedRecipient:
    """A recipient of a queued message with its state and history.

    `original` is None for recipients of the envelope; alias expansions carry the envelope
    recipient they came from, and inherit its ORCPT and NOTIFY (RFC 3461 §5.2.1 / §6.1).
    """

    recipient: Recipient
    state: RecipientState = RecipientState.PENDING
    original: str | None = None
    attempts: tuple[Attempt, ...] = ()

    @property
    def address(self) -> str:
        return self.recipient.address

    @property
    def last_attempt(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None


@dataclass(frozen=True, slots=True)
class QueueItem:
    """A queued message as the runner, the CLI and the web UI see it (the bytes are separate).

    Attributes:
        queue_id: see `mail.ids`.
        envelope: as accepted.
        size: length of the stored message bytes.
        arrival: when enqueue() committed (Unix time); the start of max_lifetime.
        next_attempt: when the open recipients are due next.
        attempts: number of delivery runs recorded so far (by record_outcomes).
        held: on hold: never claimed until released.
        recipients: every recipient with its state; open ones are what is left to deliver.
        delay_warned: the delay-warning DSN was sent (RFC 3464 Action: delayed): never twice,
            also across restarts, so it is stored with the message.
        lease: the lease token of the claim that returned this item (claim_due, or enqueue with
            claim=True), to pass to record_outcomes() and renew(); None from reads (get, list).
            Not part of the message's state: two items differing only in it compare equal.
    """

    queue_id: str
    envelope: Envelope
    size: int
    arrival: float
    next_attempt: float
    attempts: int = 0
    held: bool = False
    recipients: tuple[QueuedRecipient, ...] = field(default=())
    delay_warned: bool = False
    lease: str | None = field(default=None, compare=False)

    @property
    def open_recipients(self) -> tuple[QueuedRecipient, ...]:
        return tuple(r for r in self.recipients if r.state.is_open)

    @property
    def is_done(self) -> bool:
        return not any(r.state.is_open for r in self.recipients)


@dataclass(frozen=True, slots=True)
class QueueEvent:
    """One line of a message's journey: "queued", "delivery", "finished", "hold", ..."""

    queue_id: str
    at: float
    kind: str
    detail: dict[str, Any]


def initial_recipients(envelope: Envelope) -> tuple[QueuedRecipient, ...]:
    return tuple(QueuedRecipient(r) for r in envelope.recipients)


def apply_outcomes(
    recipients: tuple[QueuedRecipient, ...], outcomes: list[RecipientOutcome]
) -> tuple[QueuedRecipient, ...]:
    """New recipient states after `outcomes` (pure; shared by every backend).

    An outcome updates the recipient with the same (address, original). An outcome with an
    `original` that has no row yet adds an expansion row inheriting ORCPT/NOTIFY from the
    original, whose own state becomes EXPANDED. Outcomes for unknown addresses without an
    original are ignored: the runner only reports on what it claimed.
    """
    rows = list(recipients)
    index = {(r.address, r.original): i for i, r in enumerate(rows)}
    for outcome in outcomes:
        attempt = Attempt(outcome.at, outcome.host, outcome.reply_code, outcome.reply_text, outcome.state)
        key = (outcome.recipient, outcome.original)
        i = index.get(key)
        if i is None:
            parent_i = index.get((outcome.original, None)) if outcome.original is not None else None
            if parent_i is None:
                continue
            parent = rows[parent_i]
            rcpt = Recipient(outcome.recipient, parent.recipient.orcpt, parent.recipient.notify)
            rows.append(QueuedRecipient(rcpt, outcome.state, outcome.original, (attempt,)))
            index[key] = len(rows) - 1
            rows[parent_i] = replace(parent, state=RecipientState.EXPANDED)
        else:
            row = rows[i]
            rows[i] = replace(row, state=outcome.state, attempts=row.attempts + (attempt,))
    return tuple(rows)
