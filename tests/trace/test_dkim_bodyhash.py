"""DKIM body hash (RFC 6376 §3.4.3-3.4.5, §3.7) and Authentication-Results reading (RFC 8601)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from mailboat.trace.auth import body_hash_failed, canonical_body, check_body_hash, parse_auth_results


def b64sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_rfc6376_canonicalisation_example() -> None:  # RFC 6376 §3.4.5
    body = b" C \r\nD \t E\r\n\r\n\r\n"
    assert canonical_body(body, "relaxed") == b" C\r\nD E\r\n"
    assert canonical_body(body, "simple") == b" C \r\nD \t E\r\n"


@pytest.mark.parametrize(("body", "simple", "relaxed"), [
    (b"", b"\r\n", b""),
    (b"\r\n\r\n", b"\r\n", b""),
    (b"x", b"x\r\n", b"x\r\n"),
    (b"a  b \n\n", b"a  b \r\n", b"a b\r\n"),
])
def test_empty_and_edge_bodies(body: bytes, simple: bytes, relaxed: bytes) -> None:
    assert canonical_body(body, "simple") == simple
    assert canonical_body(body, "relaxed") == relaxed


def test_known_empty_body_hashes() -> None:
    sig = "v=1; a=rsa-sha256; c=relaxed/{c}; d=example.org; s=s; bh={bh}; b=x"
    relaxed = check_body_hash(sig.format(c="relaxed", bh="47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="), b"")
    simple = check_body_hash(sig.format(c="simple", bh="frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY="), b"")
    assert relaxed is not None and relaxed.ok
    assert simple is not None and simple.ok


def test_length_tag_ignores_appended_footer() -> None:
    body = b"Hello Bob,\r\nsee you.\r\n"
    bh = b64sha256(body)
    sig = f"v=1; a=rsa-sha256; c=simple/simple; d=example.org; s=s; l={len(body)}; bh={bh}; b=x"
    footer = body + b"-- \r\nlist footer\r\n"
    check = check_body_hash(sig, footer)
    assert check is not None and check.ok and check.length == len(body)
    without_l = check_body_hash(sig.replace(f"l={len(body)}; ", ""), footer)
    assert without_l is not None and not without_l.ok


def test_folded_bh_and_sha1_and_unusable_signatures() -> None:
    body = b"x\r\n"
    bh = base64.b64encode(hashlib.sha1(body).digest()).decode()
    folded = f"v=1; a=rsa-sha1; c=simple; d=example.org; s=s;\r\n\tbh={bh[:10]}\r\n\t {bh[10:]}; b=x"
    check = check_body_hash(folded, body)
    assert check is not None and check.ok and check.canonicalization == "simple"
    assert check_body_hash("v=1; a=rsa-md5; bh=AAAA", body) is None
    assert check_body_hash("v=1; a=rsa-sha256; l=abc; bh=AAAA", body) is None
    assert check_body_hash("garbage", body) is None


def test_authentication_results() -> None:
    value = ('mx.example.com; spf=softfail (domain does not designate 192.0.2.9) smtp.mailfrom=a@example.org;'
             ' dkim=fail reason="body hash did not verify" header.d=example.org; dmarc=pass header.from=example.org')
    results = parse_auth_results(value)
    assert [(r.method, r.result, r.domain) for r in results] == [
        ("spf", "softfail", "example.org"), ("dkim", "fail", "example.org"), ("dmarc", "pass", None)]
    assert results[0].reason == "domain does not designate 192.0.2.9"
    assert body_hash_failed(results[1]) and not body_hash_failed(results[0])
    arc = parse_auth_results("i=2; lists.example.net; dkim=pass header.d=example.org", "ARC-Authentication-Results")
    assert arc[0].instance == 2 and arc[0].authserv_id == "lists.example.net"
    assert parse_auth_results("") == [] and parse_auth_results("x; none") == []
