"""The Transport protocol: one small interface for every way a message leaves the queue.

Maildir, LMTP, smarthost relay and MX delivery. The queue runner picks the
transport registered under a route's `kind` ("maildir", "lmtp", "relay", "mx") and hands it a
group of recipients that share one Route. `delivery` never imports `queue`: transports get plain
values and return plain outcomes (`delivery.outcome`; STYLE "Dependency direction").
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from mailboat.delivery.outcome import RecipientOutcome, RecipientState, outcome
from mailboat.mail.envelope import Envelope, Recipient
from mailboat.routing.route import Route

__all__ = ["Transport", "outcome", "RecipientOutcome", "RecipientState"]


@runtime_checkable
class Transport(Protocol):
    """Delivers one message to a group of recipients that share one Route.

    Contract:
    - Return exactly one RecipientOutcome per recipient, in any order, with state DELIVERED,
      DEFERRED (4xx: try again later) or FAILED (5xx: never try again), the reply code and text
      (the remote reply as received, with `remote` True, or a text of ours such as "2.0.0 ..."
      or "4.4.1 connect to mx.example.net[192.0.2.1]:25: Connection refused"), the host that
      answered ("none" when no connection was made) and the time.
    - Report DELIVERED only once the message is on the destination's stable storage (or the
      next hop said 250): the queue forgets a delivered recipient, so an early "delivered" is
      a lost message.
    - Never raise for a delivery problem; express it as outcomes. An exception that escapes
      anyway is a bug: the runner logs it and defers every recipient of the group (451 4.3.0).
    - Blocking work (file I/O, fsync) must not run on the event loop thread.
    - The message bytes are the queued bytes; a transport may prepend trace headers
      (Return-Path, Delivered-To) but never re-serialises the message.

    Args of deliver():
        envelope: the message's envelope (sender, DSN parameters, SMTPUTF8/BODY).
        message: the message bytes.
        recipients: final recipients (after alias expansion), all routed to `route`.
        route: the Route value shared by the group (e.g. Maildir(path), Mx(domain)).
    """

    async def deliver(
        self, envelope: Envelope, message: bytes, recipients: list[Recipient], route: Route
    ) -> list[RecipientOutcome]: ...

