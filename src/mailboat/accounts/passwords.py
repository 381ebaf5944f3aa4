"""Password hashing with scrypt (memory-hard, RFC 7914) from the standard library.

Stored form, self-describing so the cost can be raised later without breaking old hashes:
``$scrypt$ln=15,r=8,p=1$<salt b64>$<hash b64>``. Verification is constant-time, and so is a
refusal of an account that does not exist: `verify_unknown()` spends the same scrypt work on a
dummy hash, so the time a wrong AUTH takes does not tell who has an account here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

LOG_N, R, P = 15, 8, 1  # 32 MiB per hash: about 0.1 s on one core of our machines
_MAXMEM = 128 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=1 << LOG_N, r=R, p=P, maxmem=_MAXMEM, dklen=32)
    return f"$scrypt$ln={LOG_N},r={R},p={P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _, scheme, params, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        values = dict(item.split("=") for item in params.split(","))
        expected = _unb64(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=_unb64(salt), n=1 << int(values["ln"]), r=int(values["r"]),
            p=int(values["p"]), maxmem=_MAXMEM, dklen=len(expected),
        )
    except (ValueError, KeyError):
        return False
    return hmac.compare_digest(actual, expected)


# Stands in for the hash of an account that does not exist: today's parameters, a random salt
# and a random digest that no password yields (made once per process, costing no scrypt).
_DUMMY = f"$scrypt$ln={LOG_N},r={R},p={P}${_b64(os.urandom(16))}${_b64(os.urandom(32))}"


def verify_unknown(password: str) -> bool:
    """Refuse `password` for an account that does not exist, after the work of a real check."""
    verify_password(password, _DUMMY)
    return False
