"""DKIM sign and verify: round trips, dkimpy as an independent verifier and signer, clear reasons
for every failure, and hostile input (malformed records, DNS timeouts, a 20,000-byte header)."""

from __future__ import annotations

import asyncio
import base64
import time

import dkim  # noqa: E402  (dkimpy, from the test extra)
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from mailboat.auth.dkim.canonical import body, header_field
from mailboat.auth.dkim.sign import sign_message
from mailboat.auth.dkim.tags import TagError, parse_tags
from mailboat.auth.dkim.verify import verify_message
from mailboat.auth.results import DkimResult
from mailboat.resolver.static import TIMEOUT, StaticResolver

from authdata import MESSAGE, ed_key, key, key_zone, rsa_key  # noqa: F401 (fixtures)


def verify(message: bytes, zone: dict) -> list:
    return asyncio.run(verify_message(message, StaticResolver(zone)))


def dkimpy_dns(zone: dict):
    def dnsfunc(name, timeout=5):
        records = zone.get(name.decode().rstrip("."), [])
        return records[0][1].encode() if records else None
    return dnsfunc


def dkimpy_private(key) -> bytes:
    if isinstance(key.private_key, ed25519.Ed25519PrivateKey):  # dkimpy wants the raw seed, base64
        raw = key.private_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                            serialization.NoEncryption())
        return base64.b64encode(raw)
    return key.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                         serialization.NoEncryption())


def test_round_trip(key):
    signed = sign_message(MESSAGE, key) + MESSAGE
    [result] = verify(signed, key_zone(key))
    assert result.result is DkimResult.PASS, result.reason
    assert (result.domain, result.selector, result.algorithm) == ("example.com", key.selector, key.algorithm)


def test_header_set_oversigns_from(rsa_key):
    tags = parse_tags(sign_message(MESSAGE, rsa_key).decode().split(":", 1)[1])
    names = tags["h"].replace("\r\n", "").replace("\t", "").replace(" ", "").split(":")
    assert names.count("from") == 2  # one more than present: a second From breaks the signature
    assert "received" not in names and "authentication-results" not in names
    assert tags["c"] == "relaxed/relaxed"


def test_dkimpy_verifies_our_signature(key):
    if key.algorithm.startswith("ed"):
        pytest.importorskip("nacl")  # dkimpy's Ed25519 needs pynacl
    signed = sign_message(MESSAGE, key) + MESSAGE
    assert dkim.verify(signed, dnsfunc=dkimpy_dns(key_zone(key)))


@pytest.mark.parametrize("canon", ["relaxed/relaxed", "simple/simple", "relaxed/simple", "simple/relaxed"])
def test_we_verify_dkimpy_signatures(key, canon):
    if key.algorithm.startswith("ed"):
        pytest.importorskip("nacl")
    header_c, body_c = canon.encode().split(b"/")
    signature = dkim.sign(MESSAGE, key.selector.encode(), b"example.com", dkimpy_private(key),
                          canonicalize=(header_c, body_c), signature_algorithm=key.algorithm.encode())
    [result] = verify(signature + MESSAGE, key_zone(key))
    assert result.result is DkimResult.PASS, result.reason


def test_modified_body_fails_with_reason(key):
    signed = sign_message(MESSAGE, key) + MESSAGE.replace(b"attached", b"ATTACHED")
    [result] = verify(signed, key_zone(key))
    assert result.result is DkimResult.FAIL
    assert "body hash mismatch" in result.reason


def test_modified_header_fails_with_reason(key):
    signed = sign_message(MESSAGE, key) + MESSAGE.replace(b"Quarterly", b"Urgent")
    [result] = verify(signed, key_zone(key))
    assert result.result is DkimResult.FAIL
    assert "signature did not verify" in result.reason


def test_added_from_breaks_oversigned_signature(rsa_key):
    signed = sign_message(MESSAGE, rsa_key) + b"From: mallory@evil.example\r\n" + MESSAGE
    assert verify(signed, key_zone(rsa_key))[0].result is DkimResult.FAIL


def test_whitespace_changes_survive_relaxed(rsa_key):
    altered = MESSAGE.replace(b"Subject: Quarterly   report", b"Subject:Quarterly report ")
    signed = sign_message(MESSAGE, rsa_key) + altered
    assert verify(signed, key_zone(rsa_key))[0].result is DkimResult.PASS


def test_lf_only_message_verifies(rsa_key):
    signed = (sign_message(MESSAGE, rsa_key) + MESSAGE).replace(b"\r\n", b"\n")
    assert verify(signed, key_zone(rsa_key))[0].result is DkimResult.PASS


def test_missing_key_is_permerror(rsa_key):
    [result] = verify(sign_message(MESSAGE, rsa_key) + MESSAGE, {})
    assert result.result is DkimResult.PERMERROR
    assert f"no key published at {rsa_key.selector}._domainkey.example.com" in result.reason


def test_dns_timeout_is_temperror(rsa_key):
    zone = {f"{rsa_key.selector}._domainkey.example.com": [(TIMEOUT, "")]}
    [result] = verify(sign_message(MESSAGE, rsa_key) + MESSAGE, zone)
    assert result.result is DkimResult.TEMPERROR
    assert "temporarily" in result.reason


@pytest.mark.parametrize("record,reason", [
    ("v=DKIM1; k=rsa; p=", "revoked"),
    ("v=DKIM1; k=rsa; p=!!notbase64!!", "not base64"),
    ("v=DKIM1; k=rsa; p=AAAA", "not a valid public key"),
    ("v=DKIM1; k=ed25519; p=AAAA", "does not match"),
    ("v=DKIM1; p=abc; p=def", "duplicate tag"),
    ("k=rsa; garbage", "malformed key record"),
    ("v=DKIM2; k=rsa; p=AAAA", "v=DKIM2"),
    ("v=DKIM1; h=sha1; p=AAAA", "does not allow sha256"),
])
def test_malformed_key_records(rsa_key, record, reason):
    zone = {f"{rsa_key.selector}._domainkey.example.com": [("TXT", record)]}
    [result] = verify(sign_message(MESSAGE, rsa_key) + MESSAGE, zone)
    assert result.result is DkimResult.PERMERROR
    assert reason in result.reason


@pytest.mark.parametrize("signature,result,reason", [
    (b"DKIM-Signature: v=1; a=rsa-sha256; d=example.com\r\n", DkimResult.PERMERROR, "lacks the required"),
    (b"DKIM-Signature: v=1; v=1; a=rsa-sha256\r\n", DkimResult.PERMERROR, "duplicate tag"),
    (b"DKIM-Signature: garbage without tags\r\n", DkimResult.PERMERROR, "malformed"),
    (b"DKIM-Signature: v=1; a=rsa-sha1; b=AA; bh=AA; d=example.com; h=from; s=x\r\n",
     DkimResult.PERMERROR, "rsa-sha1 is not accepted"),
    (b"DKIM-Signature: v=1; a=rsa-md5; b=AA; bh=AA; d=example.com; h=from; s=x\r\n",
     DkimResult.NEUTRAL, "unknown algorithm"),
    (b"DKIM-Signature: v=1; a=rsa-sha256; b=AA; bh=AA; d=example.com; h=to; s=x\r\n",
     DkimResult.PERMERROR, "does not include From"),
    (b"DKIM-Signature: v=1; a=rsa-sha256; b=AA; bh=AA; d=example.com; i=a@evil.example; h=from; s=x\r\n",
     DkimResult.PERMERROR, "not within d="),
    (b"DKIM-Signature: v=1; a=rsa-sha256; b=AA; bh=AA; d=example.com; h=from; s=x; x=1000\r\n",
     DkimResult.FAIL, "expired"),
])
def test_malformed_signatures(signature, result, reason):
    [found] = verify(signature + MESSAGE, {})
    assert found.result is result
    assert reason in found.reason


def test_unsigned_message_has_no_results():
    assert verify(MESSAGE, {}) == []


def test_several_signatures_each_judged(rsa_key, ed_key):
    signed = sign_message(MESSAGE, rsa_key) + MESSAGE
    signed = sign_message(signed, ed_key) + signed
    results = verify(signed, key_zone(rsa_key))  # the Ed25519 key is not published
    assert [r.result for r in results] == [DkimResult.PERMERROR, DkimResult.PASS]


def test_20000_byte_header(rsa_key):
    """A huge (but legal, folded) header is signed and verified quickly; a huge signature field is
    refused as malformed without crypto work."""
    words = b" ".join(b"word%d" % i for i in range(2500))
    folded = words.replace(b" word1", b"\r\n word1")
    assert len(folded) > 20_000
    message = b"X-Big: " + folded + b"\r\n" + MESSAGE.replace(b"From:", b"From:", 1)
    start = time.perf_counter()
    signed = sign_message(message, rsa_key) + message
    assert verify(signed, key_zone(rsa_key))[0].result is DkimResult.PASS
    hostile = b"DKIM-Signature: v=1; " + b"a" * 20_000 + b"=1\r\n" + MESSAGE
    [result] = verify(hostile, {})
    assert result.result is DkimResult.PERMERROR
    assert time.perf_counter() - start < 2


def test_tags_parser():
    assert parse_tags(" v = 1 ;\r\n\ta=rsa-sha256; ") == {"v": "1", "a": "rsa-sha256"}
    with pytest.raises(TagError):
        parse_tags("1v=2")


def test_canonicalisation_rules():
    assert header_field(b"SUBJECT :  a \t b\r\n  c  \r\n", "relaxed") == b"subject:a b c\r\n"
    assert body(b"", "simple") == b"\r\n"
    assert body(b"", "relaxed") == b""
    assert body(b"a  b \t\r\n\r\n\r\n", "relaxed") == b"a b\r\n"
    assert body(b"a  b \r\n\r\n", "simple") == b"a  b \r\n"
