"""The account database: `{data_dir}/users.db`, one row per mailbox address.

Shared by the server (RCPT existence checks, later AUTH) and `mailboat user`; SQLite in WAL mode
so the CLI can add an account while the server runs and the next RCPT sees it.
"""

from __future__ import annotations

import os
import sqlite3
import time
import unicodedata

import idna

from mailboat.accounts.passwords import hash_password, verify_password, verify_unknown
from mailboat.smtp.address import parse_path
from mailboat.smtp.errors import AddressError


class UserError(Exception):
    """A mistake in a user command: no such account, duplicate, bad address."""


def normalize_address(address: str) -> str:
    """Accounts are case-insensitive, as Postfix's lookups are: "Alice@Example.COM." -> "alice@example.com".

    A UTF-8 local part is compared in NFC; an internationalised domain in its ASCII form, as the
    configuration stores it ("josé@Bücher.example" -> "josé@xn--bcher-kva.example").
    """
    local, _, domain = address.strip().rpartition("@")
    domain = domain.rstrip(".").lower()
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            pass  # no such account can exist: the lookup simply finds nothing
    if not local.isascii():
        local = unicodedata.normalize("NFC", local)
    return f"{local.lower()}@{domain}"


def is_mailbox(address: str) -> bool:
    """True when our SMTP server's RCPT parser takes `address` (with SMTPUTF8: RFC 6531 local parts
    such as "josé" or "用户"), so that an account is one a client can name in RCPT TO and AUTH."""
    try:
        path = parse_path(f"<{address.strip()}>", allow_null=False, smtputf8=True, allow_postmaster=False)
    except AddressError:
        return False
    return bool(path.domain) and not path.source_route


class UserStore:
    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        # Made 0600 before SQLite opens it: SQLite gives the -wal and -shm files it creates the
        # database's mode, so the hashes never sit in a file others can read, not even briefly.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS users (address TEXT PRIMARY KEY, password TEXT NOT NULL,"
            " created REAL NOT NULL)"
        )
        for name in (path, path + "-wal", path + "-shm"):  # (files an older version left 0644)
            try:
                if os.stat(name).st_mode & 0o777 != 0o600:
                    os.chmod(name, 0o600)
            except FileNotFoundError:
                pass

    def close(self) -> None:
        self._db.close()

    def exists(self, address: str) -> bool:
        row = self._db.execute("SELECT 1 FROM users WHERE address = ?", (normalize_address(address),)).fetchone()
        return row is not None

    def list(self) -> list[tuple[str, float]]:
        return [tuple(row) for row in self._db.execute("SELECT address, created FROM users ORDER BY address")]

    def add(self, address: str, password: str) -> str:
        if not is_mailbox(address):
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
