"""DKIM verification (RFC 6376 §6) of every signature, each with its own result and reason.

Why our own verifier rather than dkimpy's: dkimpy reports one signature at a time as a boolean
(reasons only in exceptions and logs), needs pynacl for Ed25519, and fetches keys through its own
DNS layer; here keys come through our Resolver (cache, timeouts, test zones), Ed25519 and RSA go
through `cryptography`, and canonicalisation is the same code the signer uses. dkimpy and
OpenDKIM remain the independent checks in tests/auth and tests/interop.

Policy (RFC 8301): rsa-sha1 and RSA keys under 1024 bits are not accepted.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from mailboat.auth.dkim import canonical
from mailboat.auth.dkim.tags import TagError, b64decode, parse_tags
from mailboat.auth.results import DkimResult
from mailboat.mail.headers import parse_fields, split_message
from mailboat.resolver.base import NoSuchDomain, Resolver, TempDnsError

MAX_SIGNATURES = 8  # more is an attack on our CPU, not a real message
CLOCK_SKEW = 300  # seconds of tolerance for t= in the future
_ALGORITHMS = {"rsa-sha256": "rsa", "ed25519-sha256": "ed25519"}


@dataclass(frozen=True, slots=True)
class SignatureResult:
    """The outcome for one DKIM-Signature field (RFC 8601 §2.7.1 names)."""

    result: DkimResult
    reason: str = ""
    domain: str = ""  # d=
    selector: str = ""  # s=
    algorithm: str = ""  # a=
    identity: str = ""  # i= (default "@" + d=)
    b_prefix: str = ""  # first characters of b=, identifies the signature in A-R (RFC 6008)


class _Fail(Exception):
    def __init__(self, result: DkimResult, reason: str) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason


async def verify_message(message: bytes, resolver: Resolver, now: float | None = None) -> list[SignatureResult]:
    """Verify each DKIM-Signature (top to bottom). An unsigned message gives an empty list."""
    header, body = split_message(message)
    fields = [(f.name, f.raw) for f in parse_fields(header)]
    signatures = [raw for name, raw in fields if name.lower() == "dkim-signature"]
    body_hashes: dict[tuple[str, int | None], bytes] = {}  # same c= and l= -> hash once
    results = []
    for raw in signatures[:MAX_SIGNATURES]:
        results.append(await _verify_one(raw, fields, body or b"", resolver, body_hashes,
                                         time.time() if now is None else now))
    for _ in signatures[MAX_SIGNATURES:]:
        results.append(SignatureResult(DkimResult.NEUTRAL, f"more than {MAX_SIGNATURES} signatures: not checked"))
    return results


async def _verify_one(raw: bytes, fields: list[tuple[str, bytes]], body: bytes, resolver: Resolver,
                      body_hashes: dict, now: float) -> SignatureResult:
    info: dict[str, str] = {}
    try:
        value = raw.split(b":", 1)[1].decode("utf-8", "surrogateescape")
        try:
            tags = parse_tags(value)
        except TagError as exc:
            raise _Fail(DkimResult.PERMERROR, f"malformed signature: {exc}") from None
        info = {"domain": tags.get("d", "").lower(), "selector": tags.get("s", ""), "algorithm": tags.get("a", ""),
                "identity": tags.get("i", "@" + tags.get("d", "").lower()), "b_prefix": _b_prefix(tags.get("b", ""))}
        header_c, body_c, length = _check_tags(tags, now)
        key, key_tags = await _fetch_key(resolver, tags["s"], info["domain"], tags["a"])
        if "s" in key_tags.get("t", "").split(":") and info["identity"].rpartition("@")[2] != info["domain"]:
            raise _Fail(DkimResult.PERMERROR, "key flag t=s: i= must be exactly d=")
        cache_key = (body_c, length)
        if cache_key not in body_hashes:
            body_hashes[cache_key] = hashlib.sha256(canonical.body(body, body_c, length)).digest()
        if not hmac.compare_digest(body_hashes[cache_key], b64decode(tags["bh"])):
            raise _Fail(DkimResult.FAIL, "body hash mismatch: the body was changed after signing")
        names = [n.strip() for n in tags["h"].split(":")]
        data = b"".join(canonical.header_field(r, header_c) for r in canonical.select_headers(fields, names))
        data += canonical.header_field(_without_b(raw), header_c)[:-2]
        _check_signature(key, data, b64decode(tags["b"]))
    except _Fail as exc:
        return SignatureResult(exc.result, exc.reason, **info)
    except TagError as exc:
        return SignatureResult(DkimResult.PERMERROR, f"malformed signature: {exc}", **info)
    testing = " (key in testing mode, t=y)" if "y" in key_tags.get("t", "").split(":") else ""
    return SignatureResult(DkimResult.PASS, "good signature" + testing, **info)


def _b_prefix(b: str) -> str:
    return "".join(b.split())[:8]


def _check_tags(tags: dict[str, str], now: float) -> tuple[str, str, int | None]:
    """§6.1.1: required tags, version, algorithm, c=, i= inside d=, h= with From, t= and x=."""
    for name in ("v", "a", "b", "bh", "d", "h", "s"):
        if name not in tags:
            raise _Fail(DkimResult.PERMERROR, f"signature lacks the required {name}= tag")
    if tags["v"] != "1":
        raise _Fail(DkimResult.PERMERROR, f"unknown signature version v={tags['v']}")
    if tags["a"] == "rsa-sha1":
        raise _Fail(DkimResult.PERMERROR, "rsa-sha1 is not accepted (RFC 8301)")
    if tags["a"] not in _ALGORITHMS:
        raise _Fail(DkimResult.NEUTRAL, f"unknown algorithm a={tags['a']}")
    header_c, _, body_c = tags.get("c", "simple/simple").lower().partition("/")
    body_c = body_c or "simple"
    if header_c not in ("simple", "relaxed") or body_c not in ("simple", "relaxed"):
        raise _Fail(DkimResult.PERMERROR, f"unknown canonicalisation c={tags['c']}")
    domain = tags["d"].lower().rstrip(".")
    identity = tags.get("i", "@" + domain).rpartition("@")[2].lower().rstrip(".")
    if identity != domain and not identity.endswith("." + domain):
        raise _Fail(DkimResult.PERMERROR, f"i= domain {identity} is not within d={domain}")
    if "from" not in [n.strip().lower() for n in tags["h"].split(":")]:
        raise _Fail(DkimResult.PERMERROR, "h= does not include From (RFC 6376 §5.4)")
    try:
        signed_at = int(tags["t"]) if "t" in tags else None
        expires = int(tags["x"]) if "x" in tags else None
        length = int(tags["l"]) if "l" in tags else None
    except ValueError:
        raise _Fail(DkimResult.PERMERROR, "t=, x= or l= is not a number") from None
    if signed_at is not None and signed_at > now + CLOCK_SKEW:
        raise _Fail(DkimResult.PERMERROR, "signature timestamp t= is in the future")
    if expires is not None and expires < now:
        raise _Fail(DkimResult.FAIL, "signature expired (x=)")
    return header_c, body_c, length


async def _fetch_key(resolver: Resolver, selector: str, domain: str, algorithm: str):
    """§6.1.2: the key record at SELECTOR._domainkey.DOMAIN, parsed and checked."""
    name = f"{selector}._domainkey.{domain}"
    try:
        records = await resolver.txt(name)
    except NoSuchDomain:
        raise _Fail(DkimResult.PERMERROR, f"no key published at {name} (NXDOMAIN)") from None
    except TempDnsError as exc:
        raise _Fail(DkimResult.TEMPERROR, f"key lookup for {name} failed temporarily: {exc}") from None
    if not records:
        raise _Fail(DkimResult.PERMERROR, f"no key published at {name}")
    if len(records) > 1:
        raise _Fail(DkimResult.PERMERROR, f"{len(records)} key records at {name}: ambiguous")
    try:
        key_tags = parse_tags(records[0])
    except TagError as exc:
        raise _Fail(DkimResult.PERMERROR, f"malformed key record at {name}: {exc}") from None
    if key_tags.get("v", "DKIM1") != "DKIM1":
        raise _Fail(DkimResult.PERMERROR, f"key record at {name} has v={key_tags['v']}")
    if key_tags.get("k", "rsa") != _ALGORITHMS[algorithm]:
        raise _Fail(DkimResult.PERMERROR, f"key type k={key_tags.get('k', 'rsa')} does not match a={algorithm}")
    if "h" in key_tags and "sha256" not in [h.strip() for h in key_tags["h"].split(":")]:
        raise _Fail(DkimResult.PERMERROR, f"key at {name} does not allow sha256 (h={key_tags['h']})")
    if "s" in key_tags and not {"*", "email"} & {s.strip() for s in key_tags["s"].split(":")}:
        raise _Fail(DkimResult.PERMERROR, f"key at {name} is not for email (s={key_tags['s']})")
    if not key_tags.get("p", "").strip():
        raise _Fail(DkimResult.PERMERROR, f"key at {name} has been revoked (empty p=)")
    try:
        raw = b64decode(key_tags["p"])
    except TagError:
        raise _Fail(DkimResult.PERMERROR, f"key at {name}: p= is not base64") from None
    return _load_public(raw, algorithm, name), key_tags


def _load_public(raw: bytes, algorithm: str, name: str):
    try:
        if algorithm == "ed25519-sha256":
            return ed25519.Ed25519PublicKey.from_public_bytes(raw)
        try:
            key = serialization.load_der_public_key(raw)
        except ValueError:
            # Some publishers put a bare PKCS#1 RSAPublicKey in p=; OpenDKIM accepts it too.
            key = serialization.load_der_public_key(_pkcs1_to_spki(raw))
    except (ValueError, UnsupportedAlgorithm):
        raise _Fail(DkimResult.PERMERROR, f"key at {name}: p= is not a valid public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise _Fail(DkimResult.PERMERROR, f"key at {name} is not an RSA key")
    if key.key_size < 1024:
        raise _Fail(DkimResult.POLICY, f"RSA key of {key.key_size} bits at {name} is too short (RFC 8301)")
    return key


def _pkcs1_to_spki(raw: bytes) -> bytes:
    """Wrap a DER RSAPublicKey in a SubjectPublicKeyInfo (rsaEncryption, NULL parameters)."""
    def der(tag: int, content: bytes) -> bytes:
        n = len(content)
        width = (n.bit_length() + 7) // 8
        size = bytes([n]) if n < 128 else bytes([0x80 | width]) + n.to_bytes(width, "big")
        return bytes([tag]) + size + content
    algorithm = der(0x30, bytes.fromhex("06092a864886f70d0101010500"))
    return der(0x30, algorithm + der(0x03, b"\x00" + raw))


def _without_b(raw: bytes) -> bytes:
    """The signature field with the value of its b= tag emptied (§3.5: "b=" stays, value goes)."""
    name, colon, value = raw.partition(b":")
    parts = value.split(b";")
    for i, part in enumerate(parts):
        tag, eq, _ = part.partition(b"=")
        if eq and tag.strip(b" \t\r\n") == b"b":
            parts[i] = tag + b"="
            if i == len(parts) - 1 and value.endswith(b"\n"):
                parts[i] += b"\r\n"  # keep the field's line ending
    return name + colon + b";".join(parts)


def _check_signature(key, data: bytes, signature: bytes) -> None:
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, hashlib.sha256(data).digest())
        else:
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise _Fail(DkimResult.FAIL, "signature did not verify: signed header fields were changed "
                                     "or the key does not match") from None
