"""SPF, DKIM and DMARC against the real DNS server of the routing tests (nsd), through our
dnspython Resolver; and our signatures checked by dkimpy's own `dkimverify` command."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from mailboat.auth.dkim.sign import sign_message
from mailboat.auth.dkim.verify import verify_message
from mailboat.auth.dmarc import evaluate
from mailboat.auth.results import Disposition, DkimResult, DmarcResult, SpfResult
from mailboat.auth.spf import check_mail_from
from mailboat.resolver.dnspython import DnspythonResolver

from authdata import MESSAGE, ed_key, key, rsa_key  # noqa: F401 (fixtures)


def zone_txt(value: str) -> str:
    return " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))


@pytest.fixture
def dns(nsd, rsa_key, ed_key):
    zones = {"example.com": "\n".join([
        "@ A 192.0.2.10",
        '@ TXT "v=spf1 ip4:192.0.2.0/28 include:_spf.example.net -all"',
        f"{rsa_key.selector}._domainkey TXT {zone_txt(rsa_key.dns_record())}",
        f"{ed_key.selector}._domainkey TXT {zone_txt(ed_key.dns_record())}",
        '_dmarc TXT "v=DMARC1; p=reject; adkim=s"',
        "mail A 192.0.2.11",
    ]), "example.net": '_spf TXT "v=spf1 ip6:2001:db8::/32 -all"\n'}
    return nsd(zones)


def test_spf_over_real_dns(dns):
    resolver = DnspythonResolver([dns.nameserver], timeout=3)

    async def main():
        assert (await check_mail_from(resolver, "192.0.2.5", "a@example.com", "x")).result is SpfResult.PASS
        assert (await check_mail_from(resolver, "2001:db8::9", "a@example.com", "x")).result is SpfResult.PASS
        assert (await check_mail_from(resolver, "198.51.100.1", "a@example.com", "x")).result is SpfResult.FAIL
        assert (await check_mail_from(resolver, "192.0.2.5", "a@nowhere.example.com", "x")).result is SpfResult.NONE
    asyncio.run(main())


def test_dkim_and_dmarc_over_real_dns(dns, key):
    resolver = DnspythonResolver([dns.nameserver], timeout=3)
    signed = sign_message(MESSAGE, key) + MESSAGE

    async def main():
        [result] = await verify_message(signed, resolver)
        assert result.result is DkimResult.PASS, result.reason
        out = await evaluate(resolver, signed, ("fail", "example.com"), [("pass", result.domain)])
        assert out.result is DmarcResult.PASS
        # adkim=s: a signature by mail.example.com does not align with example.com
        out = await evaluate(resolver, signed, None, [("pass", "mail.example.com")])
        assert (out.result, out.disposition) == (DmarcResult.FAIL, Disposition.REJECT)
    asyncio.run(main())


def test_dns_server_down_is_temperror(dns, rsa_key):
    dns.stop()
    resolver = DnspythonResolver([dns.nameserver], timeout=0.5)

    async def main():
        [result] = await verify_message(sign_message(MESSAGE, rsa_key) + MESSAGE, resolver)
        assert result.result is DkimResult.TEMPERROR
        assert (await check_mail_from(resolver, "192.0.2.5", "a@example.com", "x")).result is SpfResult.TEMPERROR
        assert (await evaluate(resolver, MESSAGE, None, [])).result is DmarcResult.TEMPERROR
    asyncio.run(main())


DKIMVERIFY = """
import sys, dns.resolver
resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = ["127.0.0.1"]
resolver.nameserver_ports = {{"127.0.0.1": {port}}}
dns.resolver.default_resolver = resolver   # dkimverify looks keys up through the default resolver
sys.argv = ["dkimverify"]
from dkim.dkimverify import main
main()
"""


def dkimverify(message: bytes, port: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", DKIMVERIFY.format(port=port)], input=message,
                          capture_output=True, timeout=30)


def test_dkimverify_command_accepts_our_signatures(dns, key):
    pytest.importorskip("dkim")
    if key.algorithm.startswith("ed"):
        pytest.importorskip("nacl")
    signed = sign_message(MESSAGE, key) + MESSAGE
    done = dkimverify(signed, dns.port)
    assert done.returncode == 0 and b"signature ok" in done.stdout, done.stdout + done.stderr
    tampered = dkimverify(signed.replace(b"attached", b"removed"), dns.port)
    # dkimverify reports a changed body by raising dkim.ValidationError (exit 1, reason on stderr).
    assert tampered.returncode == 1 and b"body hash mismatch" in tampered.stderr
