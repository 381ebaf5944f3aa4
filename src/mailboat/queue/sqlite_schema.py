"""The SQLite queue's schema (sqlite.py), versioned with PRAGMA user_version, and its upgrades.

A queue written by an older mailboat is upgraded in place when it is opened; an unknown newer
version refuses to open (QueueError) rather than be misread.
"""

from __future__ import annotations

import sqlite3

from mailboat.queue.store import QueueError

SCHEMA_VERSION = 5
_SCHEMA = (
    """CREATE TABLE message (
        queue_id     TEXT PRIMARY KEY,
        envelope     BLOB NOT NULL,              -- codec.encode_envelope
        recipients   BLOB,                       -- codec.encode_recipients, NULL: all pending, no attempt
        size         INTEGER NOT NULL,
        arrival      REAL NOT NULL,
        next_attempt REAL NOT NULL,
        lease_until  REAL NOT NULL DEFAULT 0,
        lease_token  TEXT,                       -- the claim's token (store.LeaseTokens); NULL: never claimed
        lease_node   TEXT,                       -- the node that claimed; NULL: never, or before schema 5
        attempts     INTEGER NOT NULL DEFAULT 0,
        status       TEXT NOT NULL DEFAULT 'active', -- active, held or corrupt
        delay_warned INTEGER NOT NULL DEFAULT 0      -- 1: the delay-warning DSN was sent
    )""",
    "CREATE INDEX message_due ON message (status, next_attempt)",
    # Bytes apart from the rows the runner scans, so claim queries never page through BLOBs.
    # spooled = 1: the bytes are in the file <queue file>-bodies/<queue_id> (bodies.py), data is empty.
    # checksum: bodies.checksum() of the bytes, checked before delivery; NULL (a row queued by
    # schema 3 or older): unchecked.
    "CREATE TABLE body (queue_id TEXT PRIMARY KEY, data BLOB NOT NULL, spooled INTEGER NOT NULL DEFAULT 0,"
    " checksum BLOB)",
    """CREATE TABLE event (
        id       INTEGER PRIMARY KEY,
        queue_id TEXT NOT NULL,
        at       REAL NOT NULL,
        kind     TEXT NOT NULL,
        detail   TEXT NOT NULL
    )""",
    "CREATE INDEX event_queue_id ON event (queue_id, id)",
)
# Upgrades: _MIGRATIONS[n] takes a queue of schema version n to n + 1, in place.
_MIGRATIONS = {
    1: ("ALTER TABLE message ADD COLUMN delay_warned INTEGER NOT NULL DEFAULT 0",),
    2: ("ALTER TABLE body ADD COLUMN spooled INTEGER NOT NULL DEFAULT 0",),
    3: ("ALTER TABLE body ADD COLUMN checksum BLOB",),
    # Leases of a queue written before schema 5 have no token and no node: start-up releases
    # them as its own, and their late outcomes (there are none: that runner is gone) are refused.
    4: ("ALTER TABLE message ADD COLUMN lease_token TEXT",
        "ALTER TABLE message ADD COLUMN lease_node TEXT"),
}


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Create the schema in a new file, or upgrade an older one in place."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise QueueError(f"{path}: queue schema version {version} is newer than this "
                         f"mailboat supports ({SCHEMA_VERSION}); upgrade mailboat")
    # Version 0: a new file; older versions: the "N -> N+1" steps of _MIGRATIONS. Under BEGIN
    # IMMEDIATE and re-checked, so two processes opening the queue at once cannot both do it
    # (the running server and a `mailboat sendmail` upgrading the same file, for example).
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            for statement in _SCHEMA:
                conn.execute(statement)
        elif version < SCHEMA_VERSION:
            for step in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[step]:
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
