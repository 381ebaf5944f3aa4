"""Resolver implementation over dnspython's asyncio resolver (`[dns].nameservers` or the system's)."""

from __future__ import annotations

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver
import dns.reversename

from mailboat.resolver.base import NoSuchDomain, TempDnsError


class DnspythonResolver:
    """The production Resolver. `nameservers` are "ip" or "ip:port" strings; empty = /etc/resolv.conf."""

    def __init__(self, nameservers: list[str] | None = None, timeout: float = 5.0) -> None:
        if nameservers:
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = []
            ports: dict[str, int] = {}
            for item in nameservers:
                host, port = _split(item)
                self._resolver.nameservers.append(host)
                ports[host] = port
            self._resolver.nameserver_ports = ports
        else:
            try:
                self._resolver = dns.asyncresolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                self._resolver = dns.asyncresolver.Resolver(configure=False)
                self._resolver.nameservers = []
        self._resolver.lifetime = timeout
        self._resolver.cache = dns.resolver.LRUCache(10_000)

    async def _query(self, name: str, rdtype: str) -> list:
        if not self._resolver.nameservers:
            raise TempDnsError("no DNS server configured")
        try:
            answer = await self._resolver.resolve(name, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            raise NoSuchDomain(name) from None
        except dns.resolver.NoAnswer:
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.LifetimeTimeout) as exc:
            raise TempDnsError(f"{name}/{rdtype}: {exc}") from None
        except dns.exception.DNSException as exc:
            raise TempDnsError(f"{name}/{rdtype}: {exc}") from None
        return list(answer)

    async def mx(self, domain: str) -> list[tuple[int, str]]:
        records = await self._query(domain, "MX")
        return [(r.preference, r.exchange.to_text(omit_final_dot=True) or ".") for r in records]

    async def a(self, name: str) -> list[str]:
        return [r.address for r in await self._query(name, "A")]

    async def aaaa(self, name: str) -> list[str]:
        return [r.address for r in await self._query(name, "AAAA")]

    async def txt(self, name: str) -> list[str]:
        return [b"".join(r.strings).decode("utf-8", "replace") for r in await self._query(name, "TXT")]

    async def ptr(self, ip: str) -> list[str]:
        name = dns.reversename.from_address(ip).to_text()
        return [r.target.to_text(omit_final_dot=True) for r in await self._query(name, "PTR")]


def _split(item: str) -> tuple[str, int]:
    if item.startswith("["):
        host, _, port = item[1:].partition("]:")
        return host, int(port or 53)
    if item.count(":") == 1:
        host, port = item.split(":")
        return host, int(port)
    return item, 53
