"""The Resolver protocol every DNS-using part of mailboat takes as a constructor argument.

Answers are typed and errors are three: the name does not exist (NoSuchDomain, permanent), the
name exists without records of that type (an empty list, not an error), and a temporary failure
(TempDnsError: timeout, SERVFAIL), which callers turn into a deferral, never a bounce.
"""

from __future__ import annotations

import ipaddress
from typing import Protocol


class DnsError(Exception):
    """Base of resolver errors."""


class NoSuchDomain(DnsError):
    """NXDOMAIN: the name does not exist."""


class TempDnsError(DnsError):
    """Timeout, SERVFAIL or no usable server: try again later."""


class Resolver(Protocol):
    """Asynchronous DNS look-ups.

    Every method returns an empty list when the name exists but has no record of the type,
    raises NoSuchDomain for NXDOMAIN and TempDnsError for anything temporary.
    """

    async def mx(self, domain: str) -> list[tuple[int, str]]:
        """(preference, exchange) pairs, exchange without the trailing dot ("." for null MX)."""
        ...

    async def a(self, name: str) -> list[str]: ...

    async def aaaa(self, name: str) -> list[str]: ...

    async def txt(self, name: str) -> list[str]:
        """Each TXT record's strings joined (RFC 7208 §3.3)."""
        ...

    async def ptr(self, ip: str) -> list[str]:
        """Reverse names of an address, without trailing dots."""
        ...


async def forward_confirmed_rdns(resolver: Resolver | None, ip: str) -> str | None:
    """The verified reverse name of `ip` (FCrDNS), or None.

    A PTR name counts only when one of its A/AAAA records gives back the same address, so a
    client cannot claim any name it likes by controlling its reverse zone. Loopback addresses
    are "localhost" without asking DNS.
    """
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if addr.is_loopback:
        return "localhost"
    if resolver is None:
        return None
    try:
        names = await resolver.ptr(ip)
    except DnsError:
        return None
    for name in names[:5]:
        try:
            found = await (resolver.aaaa(name) if addr.version == 6 else resolver.a(name))
        except DnsError:
            continue
        if any(ipaddress.ip_address(f) == addr for f in found):
            return name
    return None
