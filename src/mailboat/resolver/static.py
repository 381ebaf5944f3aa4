"""An in-memory Resolver: zones as data, for tests and `--dns-override` (STYLE "Make DNS injectable").

Records are kept per owner name as ``(type, value)`` pairs. Text form, one record per line, in the
style of chasquid's minidns test zones::

    example.com   MX   10 mx1.example.com
    example.com   TXT  "v=spf1 " "-all"      ; strings are joined (RFC 7208 §3.3)
    mx1.example.com A  192.0.2.10
    slow.example.com TIMEOUT                  ; every query for the name fails temporarily

A name that is present with no record of the asked type gives an empty answer; an absent name
is NXDOMAIN. CNAMEs are followed as a recursive resolver would (RFC 1034 §3.6.2), and a CNAME
loop or an over-long chain is a temporary error, which is what a real resolver reports (SERVFAIL).
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Iterable, Mapping

from mailboat.resolver.base import NoSuchDomain, TempDnsError

TIMEOUT = "TIMEOUT"
_MAX_CNAME_CHAIN = 8


def _key(name: str) -> str:
    return name.rstrip(".").lower()


class StaticResolver:
    """Answers from a dict ``{name: [(type, value), ...]}``; type is "A", "TXT", "TIMEOUT", ...

    A ``("TIMEOUT", "")`` entry makes every query for the name raise TempDnsError; a
    ``("TXT", TIMEOUT)`` entry makes only that type time out. `queries` records every look-up
    as ``(type, name)`` so tests can count them (SPF's 10-lookup limit).
    """

    def __init__(self, zone: Mapping[str, Iterable[tuple[str, str]]] | None = None) -> None:
        self._zone: dict[str, list[tuple[str, str]]] = {}
        self.queries: list[tuple[str, str]] = []
        for name, records in (zone or {}).items():
            self._zone.setdefault(_key(name), [])
            for rtype, value in records:
                self.add(name, rtype, value)

    @classmethod
    def from_text(cls, text: str) -> StaticResolver:
        """Parse the line format of the module docstring (";" or "#" start a comment)."""
        resolver = cls()
        for line in text.splitlines():
            line = re.sub(r"\s[;#].*$", "", line).strip()
            if not line or line[0] in ";#":
                continue
            parts = line.split(None, 2)
            name, rtype = parts[0], parts[1].upper()
            value = parts[2] if len(parts) > 2 else ""
            if rtype == "TXT" and value.startswith('"'):
                value = "".join(shlex.split(value, posix=True))
            resolver.add(name, rtype, value)
        return resolver

    def add(self, name: str, rtype: str, value: str = "") -> None:
        self._zone.setdefault(_key(name), []).append((rtype.upper(), value))

    def _lookup(self, name: str, rtype: str) -> list[str]:
        self.queries.append((rtype, name))
        key = _key(name)
        if any(len(label) > 63 for label in key.split(".")) or len(key) > 253:
            # dnspython refuses such names before sending anything; so do we.
            raise NoSuchDomain(name)
        for _ in range(_MAX_CNAME_CHAIN):
            records = self._zone.get(key)
            if records is None:
                raise NoSuchDomain(name)
            if (TIMEOUT, "") in records or (rtype, TIMEOUT) in records:
                raise TempDnsError(f"{name}/{rtype}: timeout (static zone)")
            found = [v for t, v in records if t == rtype]
            if found or rtype == "CNAME":
                return found
            cname = [v for t, v in records if t == "CNAME"]
            if not cname:
                return []
            key = _key(cname[0])
        raise TempDnsError(f"{name}/{rtype}: CNAME chain too long or looping")

    async def mx(self, domain: str) -> list[tuple[int, str]]:
        answers = []
        for value in self._lookup(domain, "MX"):
            pref, _, host = value.partition(" ")
            answers.append((int(pref), host.strip().rstrip(".") or "."))
        return answers

    async def a(self, name: str) -> list[str]:
        return [str(ipaddress.IPv4Address(v)) for v in self._lookup(name, "A")]

    async def aaaa(self, name: str) -> list[str]:
        return [str(ipaddress.IPv6Address(v)) for v in self._lookup(name, "AAAA")]

    async def txt(self, name: str) -> list[str]:
        return self._lookup(name, "TXT")

    async def ptr(self, ip: str) -> list[str]:
        reverse = ipaddress.ip_address(ip).reverse_pointer
        return [v.rstrip(".") for v in self._lookup(reverse, "PTR")]
