"""Test data shared by the auth tests: a sample message, signing-key fixtures, zone helpers.

Not a conftest.py: tests/conftest.py is imported as the module `conftest` (tests/dnsserver.py
does `from conftest import need_tool`), and a second conftest module would shadow it. Test
modules import the fixtures they use from here.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailboat.auth.dkim.sign import DkimKey

MESSAGE = (
    b"From: Alice Example <alice@example.com>\r\n"
    b"To: Bob <bob@example.net>\r\n"
    b"Subject: Quarterly   report\r\n"
    b"\tcontinued on a folded line\r\n"
    b"Date: Mon, 23 Nov 2026 22:40:22 +0000\r\n"
    b"Message-ID: <report-1@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello Bob,  \r\n"
    b"\r\n"
    b"the figures are attached.\r\n"
    b"\r\n"
    b"\r\n"
)


def key_zone(*keys: DkimKey) -> dict[str, list[tuple[str, str]]]:
    """StaticResolver zone data publishing each key at SELECTOR._domainkey.DOMAIN."""
    return {f"{k.selector}._domainkey.{k.domain}": [("TXT", k.dns_record())] for k in keys}


@pytest.fixture(scope="session")
def rsa_key() -> DkimKey:
    return DkimKey("example.com", "rsa2026", rsa.generate_private_key(65537, 2048))


@pytest.fixture(scope="session")
def ed_key() -> DkimKey:
    return DkimKey("example.com", "ed2026", ed25519.Ed25519PrivateKey.generate())


@pytest.fixture(params=["rsa", "ed25519"])
def key(request, rsa_key, ed_key) -> DkimKey:
    return rsa_key if request.param == "rsa" else ed_key
