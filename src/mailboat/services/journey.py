"""A message's journey through this server: our own records joined with its Received chain.

Sources, in time order: the journey events the store keeps per queue id ("connect" and other
session events written by the SMTP session, "queued" at enqueue, "delivery" per recipient and
attempt, "dsn" when a report was sent or suppressed, operator actions, "finished"/"deleted"), and
the Received chain parsed by `mailboat.trace` from the header section that the "queued" event
keeps (so it is still there after delivery). Hops stamped before our own hop (the one whose `id`
is this queue id) are merged into the timeline as "hop" entries: one list then shows a message
written at 10:00, stuck upstream until 19:00, and delivered here in 0.2 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailboat.mail.ids import is_queue_id
from mailboat.queue.model import QueueEvent
from mailboat.queue.store import QueueStore
from mailboat.services.queue import UnknownMessage, iso
from mailboat.trace.render import to_json
from mailboat.trace.timeline import Trace, analyse_message, duration, host_name

_RANK = {"hop": 0, "connect": 1, "queued": 2, "dsn_for": 3, "delivery": 4, "dsn": 6, "finished": 9, "deleted": 9}


@dataclass(frozen=True, slots=True)
class JourneyEntry:
    """One line of the journey: when, what kind, a sentence, and the raw detail."""

    at: float
    kind: str
    summary: str
    detail: dict


@dataclass(frozen=True, slots=True)
class Journey:
    queue_id: str
    status: str  # queued | held | delivered | failed | partly delivered | deleted | unknown
    entries: tuple[JourneyEntry, ...]
    trace: Trace | None  # the Received chain, None when no header section is known
    our_hop: int | None  # index (in travel order) of the hop we wrote, if found

    @property
    def start(self) -> float | None:
        return self.entries[0].at if self.entries else None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def summarise(event: QueueEvent) -> str:
    """A sentence for one event; unknown kinds fall back to their detail keys."""
    d = event.detail
    match event.kind:
        case "connect":
            who = d.get("client") or f"{d.get('rdns') or 'unknown'}[{d.get('ip') or d.get('client_ip') or 'local'}]"
            text = f"connection from {who}" + (f" on {d['listener']}" if d.get("listener") else "")
            text += f", HELO {d['helo']}" if d.get("helo") else ""
            text += f", {d['tls']}" if d.get("tls") else ", no TLS"
            return text + (f", authenticated as {d['sasl_username']}" if d.get("sasl_username") else "")
        case "queued":
            via = d.get("protocol") or "?"
            src = f" from {d.get('client_helo') or '?'} [{d.get('client_ip')}]" if d.get("client_ip") else ""
            user = f" (authenticated as {d['auth_user']})" if d.get("auth_user") else ""
            return (f"queued from <{d.get('sender', '')}> for {_plural(len(d.get('recipients', [])), 'recipient')}, "
                    f"{d.get('size', 0)} bytes, with {via}{src}{user}")
        case "delivery":
            orig = f" (for <{d['orig_to']}>)" if d.get("orig_to") and d.get("orig_to") != d.get("to") else ""
            text = f"to <{d.get('to')}>{orig} via {d.get('relay')}: {d.get('status')} ({d.get('reply')})"
            if d.get("next_attempt") is not None:
                text += f"; next attempt in {duration(max(0.0, d['next_attempt'] - event.at))}"
            return text
        case "dsn":
            if d.get("dsn_id"):
                return f"{d.get('action')} report {d['dsn_id']} queued to <{d.get('to')}>"
            return f"no {d.get('action')} report: {d.get('reason')}"
        case "dsn_for":
            return f"delivery report ({d.get('action')}) about {d.get('queue_id')}"
        case "finished":
            states = [r.get("state") for r in d.get("recipients", [])]
            parts = [_plural(states.count(s), s) for s in ("delivered", "failed") if states.count(s)]
            return "left the queue: " + (", ".join(parts) or "no recipients")
        case "deleted":
            return "deleted by the operator"
        case "hold" | "release" | "retry":
            return {"hold": "put on hold", "release": "released from hold", "retry": "retry requested"}[event.kind]
        case "corrupt":
            return f"record set aside: {d.get('reason')}"
    return ", ".join(f"{k}={v}" for k, v in d.items() if k != "headers") or event.kind


def _status(events: list[QueueEvent], queued_held: bool | None) -> str:
    if queued_held is not None:
        return "held" if queued_held else "queued"
    for event in reversed(events):
        if event.kind == "deleted":
            return "deleted"
        if event.kind == "finished":
            states = {r.get("state") for r in event.detail.get("recipients", [])}
            if states <= {"delivered"}:
                return "delivered"
            return "failed" if "delivered" not in states else "partly delivered"
    return "unknown"


async def assemble_journey(store: QueueStore, queue_id: str) -> Journey:
    """Everything we know about `queue_id`. Raises UnknownMessage when we know nothing."""
    if not is_queue_id(queue_id):
        raise UnknownMessage(queue_id)
    events = await store.events(queue_id)
    item = await store.get(queue_id)
    if not events and item is None:
        raise UnknownMessage(queue_id)
    headers = next((e.detail.get("headers") for e in events if e.kind == "queued" and e.detail.get("headers")), None)
    raw = headers.encode("utf-8", "surrogateescape") if headers else None
    if raw is None and item is not None:
        try:  # queued by an older mailboat that kept no headers in the event
            raw = await store.load_message(queue_id)
        except KeyError:
            raw = None
    trace = analyse_message(raw) if raw else None
    entries = [JourneyEntry(e.at, e.kind, summarise(e), e.detail) for e in events]
    our_hop = None
    if trace is not None:
        our_hop = next((t.index for t in trace.hops if t.hop.id == queue_id), None)
        for t in trace.hops:
            if t.hop.timestamp is None or (our_hop is not None and t.index >= our_hop):
                continue
            text = f"hop {t.index}: received by {t.hop.by_host or '?'} from {host_name(t.hop)}"
            text += f" with {t.hop.with_protocol}" if t.hop.with_protocol else ""
            entries.append(JourneyEntry(t.hop.timestamp.timestamp(), "hop", text, {"index": t.index}))
    # Events of one instant (a coarse or fake clock) keep their logical order: an attempt
    # before the report about it, the final record last; otherwise the store's order.
    entries.sort(key=lambda e: (e.at, _RANK.get(e.kind, 5)))
    return Journey(queue_id, _status(events, item.held if item is not None else None), tuple(entries),
                   trace, our_hop)


def journey_json(journey: Journey) -> dict[str, Any]:
    """Stable JSON of `mailboat journey --json` (keys are only ever added)."""
    start = journey.start
    return {
        "queue_id": journey.queue_id,
        "status": journey.status,
        "events": [{
            "at": iso(e.at),
            "offset_seconds": round(e.at - start, 3) if start is not None else None,
            "kind": e.kind,
            "summary": e.summary,
            "detail": {k: v for k, v in e.detail.items() if k != "headers"},
        } for e in journey.entries],
        "our_hop": journey.our_hop,
        "received": to_json(journey.trace) if journey.trace is not None else None,
    }
