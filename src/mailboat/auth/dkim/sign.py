"""DKIM signing (RFC 6376 §5) with rsa-sha256 or ed25519-sha256 (RFC 8463), relaxed/relaxed.

Why our own signer and not dkimpy's: dkimpy signs RSA with pure-Python modular exponentiation
(about 25x slower than OpenSSL and not constant-time), and needs pynacl for Ed25519. Here the
private-key operation is `cryptography`'s, and canonicalisation is shared with our verifier.

Header set: the fields a recipient sees or that change how the body is read (SIGNED_HEADERS).
From is always oversigned (listed once more than it occurs), so a second From cannot be added
after signing (RFC 6376 §8.15); the other OVERSIGNED fields are oversigned when present, and not
listed when absent so that a relay which adds a missing Date or Message-ID does not break us.
Trace and authentication fields (Received, Return-Path, Authentication-Results, DKIM-Signature)
are never signed: they are added in transit by design.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from mailboat.auth.dkim import canonical
from mailboat.mail.headers import parse_fields, split_message

SIGNED_HEADERS = (
    "from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc",
    "mime-version", "content-type", "content-transfer-encoding", "content-disposition",
    "in-reply-to", "references", "list-id", "list-help", "list-unsubscribe", "list-unsubscribe-post",
    "list-subscribe", "list-post", "list-owner", "list-archive", "feedback-id",
)
OVERSIGNED = frozenset({"from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc",
                        "mime-version", "content-type", "content-transfer-encoding"})


class DkimKeyError(ValueError):
    """A private key file that cannot be used for DKIM."""


@dataclass(frozen=True, slots=True)
class DkimKey:
    """One signing identity: `[[dkim.sign]]` domain + selector + private key."""

    domain: str
    selector: str
    private_key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

    @property
    def algorithm(self) -> str:
        return "ed25519-sha256" if isinstance(self.private_key, ed25519.Ed25519PrivateKey) else "rsa-sha256"

    def dns_record(self) -> str:
        """The TXT record value to publish at SELECTOR._domainkey.DOMAIN (RFC 6376 §3.6.1)."""
        kind = "ed25519" if self.algorithm.startswith("ed") else "rsa"
        return f"v=DKIM1; k={kind}; p={public_key_b64(self.private_key)}"


def public_key_b64(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    public = key.public_key()
    if isinstance(public, ed25519.Ed25519PublicKey):
        # RFC 8463 §4.2: the raw 32-byte key, not SubjectPublicKeyInfo.
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        raw = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(raw).decode()


def load_key(domain: str, selector: str, path: str | Path) -> DkimKey:
    """Read a PEM private key (PKCS#8 or PKCS#1, RSA >= 1024 bits or Ed25519)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DkimKeyError(f"cannot read DKIM key {path}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise DkimKeyError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 1024:  # RFC 8301 §3.2: verifiers refuse smaller keys
            raise DkimKeyError(f"{path}: RSA key of {key.key_size} bits; DKIM needs at least 1024 (2048 advised)")
    elif not isinstance(key, ed25519.Ed25519PrivateKey):
        raise DkimKeyError(f"{path}: {type(key).__name__} keys cannot sign DKIM (use RSA or Ed25519)")
    return DkimKey(domain.lower().rstrip("."), selector, key)


def _fold_tags(tags: list[tuple[str, str]], b64: str) -> bytes:
    """The field text, folded at tag boundaries and inside h= / bh= / b= (CRLF TAB)."""
    lines, line = [], "DKIM-Signature:"
    for name, value in tags:
        item = f" {name}={value};"
        if len(line) + len(item) > 76:
            lines.append(line)
            line = "\t" + item.lstrip()
        else:
            line += item
    lines.append(line)
    text = "\r\n".join(lines) + "\r\n\tb="
    # b= last and folded in 72-column chunks; verifiers delete its whole value (§3.5 b=).
    chunks = [b64[i : i + 72] for i in range(0, len(b64), 72)] or [""]
    return (text + "\r\n\t ".join(chunks) + "\r\n").encode()


def _header_names(fields: list[tuple[str, bytes]]) -> list[str]:
    counts: dict[str, int] = {}
    for name, _ in fields:
        counts[name.lower()] = counts.get(name.lower(), 0) + 1
    names: list[str] = []
    for name in SIGNED_HEADERS:
        present = counts.get(name, 0)
        extra = 1 if name == "from" or (present and name in OVERSIGNED) else 0
        names += [name] * (present + extra)
    return names


def sign_message(message: bytes, key: DkimKey, *, timestamp: int | None = None,
                 identity: str | None = None, expire_after: int | None = None) -> bytes:
    """A complete DKIM-Signature header field (CRLF-terminated) to prepend to `message`.

    The message itself is not changed: the caller prepends the field (our filters return it as
    a Verdict header, the session puts it above our Received header, which is not signed).
    """
    header, body = split_message(message)
    fields = [(f.name, f.raw) for f in parse_fields(header)]
    if not any(name.lower() == "from" for name, _ in fields):
        raise ValueError("message has no From header field: nothing to sign for (RFC 6376 §5.4)")
    body_hash = base64.b64encode(hashlib.sha256(canonical.body(body or b"", "relaxed")).digest()).decode()
    names = _header_names(fields)
    now = int(time.time()) if timestamp is None else timestamp
    tags = [("v", "1"), ("a", key.algorithm), ("c", "relaxed/relaxed"), ("d", key.domain), ("s", key.selector)]
    if identity:
        tags.append(("i", identity))
    tags.append(("t", str(now)))
    if expire_after:
        tags.append(("x", str(now + expire_after)))
    tags += [("h", ":".join(names)), ("bh", body_hash)]
    unsigned = _fold_tags(tags, "")
    data = b"".join(canonical.header_field(raw, "relaxed") for raw in canonical.select_headers(fields, names))
    # §3.7: the signature field itself, b= empty, canonicalised, without its final CRLF.
    data += canonical.header_field(unsigned, "relaxed")[:-2]
    signature = _sign(key, data)
    return _fold_tags(tags, base64.b64encode(signature).decode())


def _sign(key: DkimKey, data: bytes) -> bytes:
    if isinstance(key.private_key, ed25519.Ed25519PrivateKey):
        # RFC 8463 §3: PureEdDSA over the SHA-256 digest of the data, not over the data.
        return key.private_key.sign(hashlib.sha256(data).digest())
    return key.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
