"""Accounts: hashed passwords, case-insensitive addresses, clear errors."""

import hashlib
import os
import stat

import pytest

from mailboat.accounts import UserError, UserStore
from mailboat.accounts.passwords import hash_password, verify_password


def test_hash_is_scrypt_and_salted():
    a, b = hash_password("correct horse"), hash_password("correct horse")
    assert a.startswith("$scrypt$ln=15,r=8,p=1$") and a != b
    assert verify_password("correct horse", a) and not verify_password("wrong horse", a)
    assert not verify_password("x", "garbage")


def test_store_lifecycle(tmp_path):
    path = str(tmp_path / "users.db")
    store = UserStore(path)
    assert store.add("Alice@Example.COM", "s3cret-pass") == "alice@example.com"
    assert store.exists("ALICE@example.com.")
    assert store.check("alice@example.com", "s3cret-pass")
    assert not store.check("alice@example.com", "nope-nope")
    with pytest.raises(UserError, match="already exists"):
        store.add("alice@example.com", "another-pass")
    store.passwd("alice@example.com", "new-password")
    assert store.check("alice@example.com", "new-password")
    raw = open(path, "rb").read()
    assert b"new-password" not in raw and b"s3cret-pass" not in raw
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    store.delete("alice@example.com")
    assert not store.exists("alice@example.com")
    with pytest.raises(UserError, match="no account"):
        store.delete("alice@example.com")


@pytest.mark.parametrize("address", ["alice", "@example.com", "a b@example.com", "x@"])
def test_bad_addresses(tmp_path, address):
    with pytest.raises(UserError, match="not a mailbox address"):
        UserStore(str(tmp_path / "u.db")).add(address, "password1")


def test_short_password(tmp_path):
    with pytest.raises(UserError, match="at least 8"):
        UserStore(str(tmp_path / "u.db")).add("bob@example.com", "short")


def test_database_and_its_wal_and_shm_are_private(tmp_path):
    # The -wal holds fresh password hashes until a checkpoint: it must be as private as users.db.
    path = str(tmp_path / "users.db")
    umask = os.umask(0o022)  # the usual one, which lets new files be read by everyone
    try:
        store = UserStore(path)
    finally:
        os.umask(umask)
    try:
        store.add("alice@example.com", "s3cret-pass")
        modes = {suffix: stat.S_IMODE(os.stat(path + suffix).st_mode) for suffix in ("", "-wal", "-shm")}
    finally:
        store.close()
    assert modes == {"": 0o600, "-wal": 0o600, "-shm": 0o600}


def test_files_an_older_version_left_readable_are_closed(tmp_path):
    path = str(tmp_path / "users.db")
    UserStore(path).close()
    os.chmod(path, 0o644)
    other = UserStore(path)  # a second connection keeps the -wal and -shm of the first alive
    try:
        for suffix in ("-wal", "-shm"):
            os.chmod(path + suffix, 0o644)
        UserStore(path).close()
        modes = {suffix: stat.S_IMODE(os.stat(path + suffix).st_mode) for suffix in ("", "-wal", "-shm")}
    finally:
        other.close()
    assert modes == {"": 0o600, "-wal": 0o600, "-shm": 0o600}


def test_unknown_account_costs_the_same_scrypt_as_a_wrong_password(tmp_path, monkeypatch):
    """No timing oracle for account existence: a refusal of an unknown account runs scrypt with
    the same parameters as the check of a real account's wrong password (counted, not timed)."""
    store = UserStore(str(tmp_path / "u.db"))
    store.add("alice@example.com", "s3cret-pass")
    calls: list[tuple[int, int, int]] = []
    real = hashlib.scrypt

    def counting(password, *, salt, n, r, p, maxmem=0, dklen=64):
        calls.append((n, r, p, dklen))
        return real(password, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=dklen)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    assert not store.check("alice@example.com", "wrong-pass")
    known = list(calls)
    calls.clear()
    assert not store.check("nobody@example.com", "wrong-pass")
    assert not store.check("nobody@example.com", "wrong-pass")
    assert known == [(1 << 15, 8, 1, 32)]
    assert calls == known * 2
