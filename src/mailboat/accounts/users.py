"""The account database: `{data_dir}/users.db`, one row per mailbox address.

Shared by the server (RCPT existence checks, later AUTH) and `mailboat user`; SQLite in WAL mode
so the CLI can add an account while the server runs and the next RCPT sees it.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time

from mailboat.accounts.passwords import hash_password, verify_password, verify_unknown

_ADDRESS = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,253})$")


class UserError(Exception):
    """A mistake in a user command: no such account, duplicate, bad address."""


def normalize_address(address: str) -> str:
    """Accounts are case-insensitive, as Postfix's lookups are: "Alice@Example.COM." -> "alice@example.com"."""
    local, _, domain = address.strip().rpartition("@")
    return f"{local.lower()}@{domain.rstrip('.').lower()}"


class UserStore:
    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS users (address TEXT PRIMARY KEY, password TEXT NOT NULL,"
            " created REAL NOT NULL)"
        )
        os.chmod(path, 0o600)

    def close(self) -> None:
        self._db.close()

    def exists(self, address: str) -> bool:
        row = self._db.execute("SELECT 1 FROM users WHERE address = ?", (normalize_address(address),)).fetchone()
        return row is not None

    def list(self) -> list[tuple[str, float]]:
        return [tuple(row) for row in self._db.execute("SELECT address, created FROM users ORDER BY address")]

    def add(self, address: str, password: str) -> str:
        if not _ADDRESS.match(address.strip()):
            raise UserError(f"{address!r} is not a mailbox address such as alice@example.com")
        _check_password(password)
        key = normalize_address(address)
        try:
            self._db.execute("INSERT INTO users VALUES (?, ?, ?)", (key, hash_password(password), time.time()))
        except sqlite3.IntegrityError:
            raise UserError(f"{key} already exists: use 'mailboat user passwd {key}'") from None
        return key

    def passwd(self, address: str, password: str) -> None:
        _check_password(password)
        key = normalize_address(address)
        cursor = self._db.execute("UPDATE users SET password = ? WHERE address = ?", (hash_password(password), key))
        if cursor.rowcount == 0:
            raise UserError(f"no account {key}: add it with 'mailboat user add {key}'")

    def delete(self, address: str) -> None:
        key = normalize_address(address)
        if self._db.execute("DELETE FROM users WHERE address = ?", (key,)).rowcount == 0:
            raise UserError(f"no account {key}")

    def check(self, address: str, password: str) -> bool:
        """Whether `password` is the account's. An unknown account costs the same scrypt work as
        a wrong password, so the time of an answer does not reveal which accounts exist."""
        row = self._db.execute("SELECT password FROM users WHERE address = ?", (normalize_address(address),)).fetchone()
        if row is None:
            return verify_unknown(password)
        return verify_password(password, row[0])


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise UserError("the password needs at least 8 characters")
    if any(ord(c) < 32 for c in password):
        raise UserError("the password cannot contain control characters")
