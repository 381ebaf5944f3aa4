"""The statements of the SQLite queue's writes, on the writer's connection (sqlite.py).

Each function runs inside one group-commit turn (groupcommit.py): no commit, no fsync, no
thread of its own. sqlite.py keeps what is around them (the store's API, the group commit, read
connections, prefetch and spooled bodies); these say what one write does to the rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from mailboat.delivery.outcome import RecipientOutcome
from mailboat.queue import codec
from mailboat.queue.model import QueueItem, apply_outcomes

# The columns a QueueItem is decoded from (SqliteQueueStore._decode_row), in that order.
COLUMNS = "queue_id, envelope, recipients, size, arrival, next_attempt, attempts, status, delay_warned"
INSERT_EVENT = "INSERT INTO event (queue_id, at, kind, detail) VALUES (?, ?, ?, ?)"


def insert_event(conn: sqlite3.Connection, queue_id: str, at: float, kind: str, detail: dict[str, Any]) -> None:
    conn.execute(INSERT_EVENT, (queue_id, at, kind, codec.dumps_text(detail)))


def delete_body(conn: sqlite3.Connection, queue_id: str) -> bool:
    """Delete the body row; True when its bytes are a spooled file (to remove once durable)."""
    row = conn.execute("DELETE FROM body WHERE queue_id = ? RETURNING spooled", (queue_id,)).fetchone()
    return bool(row and row[0])


def finish_row(conn: sqlite3.Connection, item: QueueItem, at: float, check: str = "", params: tuple[Any, ...] = ()
               ) -> bool | None:
    """The message leaves the queue; True when its body file is to be removed (`_drop_spooled`).
    Nothing happens (None) to a message that is gone, was set aside as corrupt (it waits for an
    operator, who deletes it with `queue delete`), or fails `check` (the caller's lease)."""
    if not conn.execute(f"DELETE FROM message WHERE queue_id = ? AND status != 'corrupt'{check}",
                        (item.queue_id, *params)).rowcount:
        return None
    spooled = delete_body(conn, item.queue_id)
    insert_event(conn, item.queue_id, at, "finished", codec.finished_detail(item))
    return spooled


def record(conn: sqlite3.Connection, queue_id: str, claimed: QueueItem | None,
           decode: Callable[[tuple[Any, ...]], QueueItem | None], outcomes: list[RecipientOutcome], at: float,
           next_attempt: float | None, check: str, params: tuple[Any, ...]) -> bool | None:
    """One delivery run's outcomes: the recipients updated, or the message finished when none
    is left open. True: it left the queue with a spooled body (to remove once durable); False:
    written, or the message is gone; None: `check` (the lease) failed, nothing written.

    A claimed item is current, by the lease: the statements only need its row to be there still
    (their WHERE), not read back; the lease is checked in that WHERE too, with no read first.
    """
    item: QueueItem | None = claimed
    if item is None:
        row = conn.execute(f"SELECT {COLUMNS} FROM message WHERE queue_id = ? AND status != 'corrupt'",
                           (queue_id,)).fetchone()
        item = decode(row) if row is not None else None
        if item is None:
            return False  # deleted (or set aside) while it was being delivered
    recipients = apply_outcomes(item.recipients, outcomes)
    if not any(r.state.is_open for r in recipients):
        done = QueueItem(queue_id, item.envelope, item.size, item.arrival, at,
                         item.attempts + 1, item.held, recipients)
        spooled = finish_row(conn, done, at, check, params)
        if spooled is not None:
            return spooled
    elif conn.execute("UPDATE message SET recipients = ?, attempts = attempts + 1, next_attempt = ?, "
                      "lease_until = 0, lease_token = NULL, lease_node = NULL "
                      f"WHERE queue_id = ? AND status != 'corrupt'{check}",
                      (codec.encode_recipients(recipients), at if next_attempt is None else next_attempt,
                       queue_id, *params)).rowcount:
        return False
    if check and conn.execute("SELECT 1 FROM message WHERE queue_id = ? AND status != 'corrupt'",
                              (queue_id,)).fetchone():
        return None  # no row matched, yet there it is: claimed again since, the lease was lost
    return False  # deleted (or set aside) while it was being delivered
