"""Queue inspection and operator actions: list, show, retry, hold, release, delete.

Stable JSON (`item_json`) is what `mailboat queue list --json` prints and what the HTTP API will
serve: keys are never renamed, only added. Times are UTC RFC 3339 (`2026-11-24T01:17:00Z`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mailboat.mail.headers import parse_fields, split_message
from mailboat.mail.ids import is_queue_id
from mailboat.queue.model import QueuedRecipient, QueueItem
from mailboat.queue.store import QueueStore

ACTIONS = ("retry", "hold", "release", "delete")


class UnknownMessage(LookupError):
    """No queued message has this id (never queued, already delivered, or deleted)."""

    def __init__(self, queue_id: str) -> None:
        super().__init__(queue_id)
        self.queue_id = queue_id


@dataclass(frozen=True, slots=True)
class MessageDetail:
    """`queue show`: the queued item plus its header fields (name, unfolded value), in order."""

    item: QueueItem
    headers: tuple[tuple[str, str], ...]


def iso(at: float | None) -> str | None:
    """Unix time -> "2026-11-24T01:17:00Z" (None stays None)."""
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_id(queue_id: str) -> None:
    # Ids reach SQL only as parameters, but a malformed one can never name a message: answer
    # "unknown" without touching the store.
    if not is_queue_id(queue_id):
        raise UnknownMessage(queue_id)


async def list_queue(store: QueueStore) -> list[QueueItem]:
    """Every queued message (held ones included), oldest first."""
    return await store.list()


async def get_message(store: QueueStore, queue_id: str) -> MessageDetail:
    """The item and its headers. Raises UnknownMessage."""
    _check_id(queue_id)
    item = await store.get(queue_id)
    if item is None:
        raise UnknownMessage(queue_id)
    try:
        data = await store.load_message(queue_id)
    except KeyError:
        raise UnknownMessage(queue_id) from None
    fields = parse_fields(split_message(data)[0])
    return MessageDetail(item, tuple((f.name, f.value) for f in fields))


async def act(store: QueueStore, action: str, queue_id: str, at: float) -> None:
    """Apply one operator action to one message. Raises UnknownMessage, or ValueError when a
    retry is asked for a held message (release it instead)."""
    _check_id(queue_id)
    match action:
        case "hold":
            found = await store.hold(queue_id, at)
        case "release":
            found = await store.release(queue_id, at)
        case "delete":
            found = await store.delete(queue_id, at)
        case "retry":
            found = await store.retry_now(queue_id, at)
            if not found and (item := await store.get(queue_id)) is not None and item.held:
                raise ValueError(f"{queue_id} is on hold: release it to deliver it")
        case _:
            raise ValueError(f"unknown queue action {action!r}")
    if not found:
        raise UnknownMessage(queue_id)


async def retry_all(store: QueueStore, at: float) -> int:
    """Make every queued, not held message due now (`queue retry --all`). Returns how many."""
    count = 0
    for item in await store.list():
        if not item.held and await store.retry_now(item.queue_id, at):
            count += 1
    return count


def recipient_json(row: QueuedRecipient) -> dict[str, Any]:
    last = row.last_attempt
    return {
        "address": row.address,
        "state": row.state.value,
        "original": row.original,
        "orcpt": row.recipient.orcpt,
        "notify": list(row.recipient.notify) if row.recipient.notify is not None else None,
        "attempts": len(row.attempts),
        "last_attempt": iso(last.at) if last else None,
        "last_host": last.host if last else None,
        "last_reply": f"{last.reply_code} {last.reply_text}" if last else None,
    }


def item_json(item: QueueItem) -> dict[str, Any]:
    """One queued message as stable JSON (`queue list --json` prints a list of these)."""
    return {
        "queue_id": item.queue_id,
        "size": item.size,
        "arrival": iso(item.arrival),
        "sender": item.envelope.sender,
        "held": item.held,
        "attempts": item.attempts,
        "next_attempt": iso(item.next_attempt),
        "delay_warned": item.delay_warned,
        "envid": item.envelope.envid,
        "ret": item.envelope.ret,
        "protocol": item.envelope.protocol,
        "client_ip": item.envelope.client_ip,
        "client_helo": item.envelope.client_helo,
        "recipients": [recipient_json(r) for r in item.recipients],
    }


def detail_json(detail: MessageDetail) -> dict[str, Any]:
    """`queue show --json`: item_json plus the header fields as [name, value] pairs."""
    return {**item_json(detail.item), "headers": [list(h) for h in detail.headers]}
