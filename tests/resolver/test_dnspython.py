"""The dnspython Resolver against a real nsd: typed answers, NXDOMAIN, temporary failure, FCrDNS."""

import asyncio

import pytest

from mailboat.resolver.base import NoSuchDomain, TempDnsError, forward_confirmed_rdns
from mailboat.resolver.dnspython import DnspythonResolver

ZONES = {
    "example.com": "@ MX 10 mx1\n@ MX 20 mx2\nmx1 A 192.0.2.10\nmx2 AAAA 2001:db8::10\n"
                   'txt TXT "v=spf1 " "-all"\nnullmx MX 0 .\nliar A 192.0.2.99\n',
    "2.0.192.in-addr.arpa": "10 PTR mx1.example.com.\n11 PTR liar.example.com.\n",
}


def test_answers(nsd):
    server = nsd(ZONES)
    resolver = DnspythonResolver([server.nameserver], timeout=3)

    async def main():
        assert sorted(await resolver.mx("example.com")) == [(10, "mx1.example.com"), (20, "mx2.example.com")]
        assert await resolver.mx("nullmx.example.com") == [(0, ".")]
        assert await resolver.a("mx1.example.com") == ["192.0.2.10"]
        assert await resolver.aaaa("mx2.example.com") == ["2001:db8::10"]
        assert await resolver.a("mx2.example.com") == []
        assert await resolver.txt("txt.example.com") == ["v=spf1 -all"]
        assert await resolver.ptr("192.0.2.10") == ["mx1.example.com"]
        with pytest.raises(NoSuchDomain):
            await resolver.a("nowhere.example.com")
        assert await forward_confirmed_rdns(resolver, "192.0.2.10") == "mx1.example.com"
        # The PTR of .11 names liar.example.com, whose A record is another address: not confirmed.
        assert await forward_confirmed_rdns(resolver, "192.0.2.11") is None
        assert await forward_confirmed_rdns(resolver, "127.0.0.1") == "localhost"

    asyncio.run(main())


def test_unreachable_server_is_temporary(nsd):
    server = nsd(ZONES)
    server.stop()
    resolver = DnspythonResolver([server.nameserver], timeout=0.5)
    with pytest.raises(TempDnsError):
        asyncio.run(resolver.a("mx1.example.com"))
