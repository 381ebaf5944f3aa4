"""DKIM against OpenDKIM (Debian opendkim / opendkim-tools), a verifier and signer we did not write.

- mailboat signs (rsa-sha256, ed25519-sha256) -> `opendkim -t` verifies, keys from TestPublicKeys;
- `opendkim -t` signs (rsa-sha256, relaxed and simple) -> mailboat verifies;
- `opendkim-testmsg` signs with rsa-sha1 (its only algorithm) -> mailboat refuses, saying why;
- a message changed after signing fails in both, with a clear reason from ours.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailboat.auth.dkim.sign import DkimKey, sign_message
from mailboat.auth.dkim.verify import verify_message
from mailboat.auth.results import DkimResult
from mailboat.resolver.static import StaticResolver

from interop_support import need_tool

pytestmark = pytest.mark.interop

MESSAGE = (b"From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: interop  test\r\n"
           b"Date: Mon, 23 Nov 2026 22:40:22 +0000\r\nMessage-ID: <interop@example.com>\r\n\r\n"
           b"Hello  OpenDKIM.\r\n\r\n")
RSA = DkimKey("example.com", "rsa", rsa.generate_private_key(65537, 2048))
ED = DkimKey("example.com", "ed", ed25519.Ed25519PrivateKey.generate())


def _opendkim(tmp_path: Path, conf: dict[str, str], message: bytes) -> subprocess.CompletedProcess:
    opendkim = need_tool("opendkim")
    conf_path, msg_path = tmp_path / "opendkim.conf", tmp_path / "message.eml"
    # Syslog off, and RequireSafeKeys off because pytest's tmp_path lives under world-writable /tmp.
    lines = {"Syslog": "no", "RequireSafeKeys": "no", **conf}
    conf_path.write_text("".join(f"{k} {v}\n" for k, v in lines.items()))
    msg_path.write_bytes(message)
    return subprocess.run([opendkim, "-x", str(conf_path), "-t", str(msg_path)], capture_output=True,
                          text=True, timeout=30)


def _verify_with_opendkim(tmp_path: Path, message: bytes, *keys: DkimKey) -> str:
    keyfile = tmp_path / "keys.txt"
    keyfile.write_text("".join(f"{k.selector}._domainkey.{k.domain} {k.dns_record()}\n" for k in keys))
    done = _opendkim(tmp_path, {"Mode": "v", "TestPublicKeys": str(keyfile)}, message)
    return done.stdout + done.stderr


@pytest.mark.parametrize("key", [RSA, ED], ids=["rsa", "ed25519"])
def test_opendkim_verifies_mailboat_signature(tmp_path, key):
    signed = sign_message(MESSAGE, key) + MESSAGE
    output = _verify_with_opendkim(tmp_path, signed, key)
    if key is ED and "unknown algorithm" in output.lower():
        pytest.skip(f"this OpenDKIM build has no Ed25519: {output.strip()}")
    assert "verification" in output and "succeeded" in output, output
    tampered = signed.replace(b"Hello", b"Jello")
    assert "failed" in _verify_with_opendkim(tmp_path, tampered, key)


def _opendkim_sign(tmp_path: Path, canon: str) -> bytes:
    keyfile = tmp_path / "rsa.key"
    keyfile.write_bytes(RSA.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    keyfile.chmod(0o600)
    done = _opendkim(tmp_path, {"Mode": "s", "Domain": "example.com", "Selector": RSA.selector,
                                "KeyFile": str(keyfile), "SignatureAlgorithm": "rsa-sha256",
                                "Canonicalization": canon}, MESSAGE)
    # `opendkim -t` prints "opendkim: FILE:" and then the DKIM-Signature field it would add.
    header = done.stdout.split("\n", 1)[1] if done.stdout.startswith("opendkim:") else ""
    assert header.startswith("DKIM-Signature:"), done.stdout + done.stderr
    return header.rstrip("\n").replace("\n", "\r\n").encode() + b"\r\n"


@pytest.mark.parametrize("canon", ["relaxed/relaxed", "simple/simple"])
def test_mailboat_verifies_opendkim_signature(tmp_path, canon):
    resolver = StaticResolver({f"{RSA.selector}._domainkey.example.com": [("TXT", RSA.dns_record())]})
    signed = _opendkim_sign(tmp_path, canon) + MESSAGE
    [result] = asyncio.run(verify_message(signed, resolver))
    assert result.result is DkimResult.PASS, result.reason
    [bad] = asyncio.run(verify_message(signed.replace(b"Hello", b"Jello"), resolver))
    assert bad.result is DkimResult.FAIL and "body hash mismatch" in bad.reason


def test_opendkim_testmsg_rsa_sha1_is_refused_with_reason(tmp_path):
    testmsg = need_tool("opendkim-testmsg")
    keyfile = tmp_path / "rsa.key"
    keyfile.write_bytes(RSA.private_key.private_bytes(serialization.Encoding.PEM,
                                                      serialization.PrivateFormat.TraditionalOpenSSL,
                                                      serialization.NoEncryption()))
    done = subprocess.run([testmsg, "-C", "-d", "example.com", "-s", RSA.selector, "-k", str(keyfile)],
                          input=MESSAGE, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    resolver = StaticResolver({f"{RSA.selector}._domainkey.example.com": [("TXT", RSA.dns_record())]})
    [result] = asyncio.run(verify_message(done.stdout, resolver))
    assert result.result is DkimResult.PERMERROR and "rsa-sha1 is not accepted (RFC 8301)" in result.reason
