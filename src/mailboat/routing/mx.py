"""Where to connect for a domain or a smarthost: MX lookup and host addresses (RFC 5321 §5.1).

`resolve_destinations(resolver, domain, port)` gives the ordered list of (host, ip) pairs to
try: MX records by preference, equal preferences shuffled (§5.1 "randomize"), every address of
one MX host (A and AAAA) before the next host, the implicit MX (the domain's own A/AAAA) when
there is no MX, null MX refused (RFC 7505), address literals (``[192.0.2.1]``) used as they are.
Failures are typed with the reply the queue should record, so the transport needs no DNS rules:

- `NullMx`: 556 5.1.10, the domain accepts no mail (RFC 7505 §3, RFC 7504);
- `DomainNotFound`: 550 5.1.2, NXDOMAIN for the domain (RFC 3463 "bad destination system");
- `NoUsableHost`: 550 5.4.4, MX hosts (or the implicit MX) with no address at all;
- `DnsTemporaryFailure`: 451 4.4.3, a timeout or SERVFAIL: try again later, never bounce.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
from dataclasses import dataclass
from itertools import groupby

from mailboat.resolver.base import NoSuchDomain, Resolver, TempDnsError

__all__ = ["Destination", "DestinationError", "NullMx", "DomainNotFound", "NoUsableHost", "DnsTemporaryFailure",
           "resolve_destinations", "resolve_smarthost", "split_hostport"]


@dataclass(frozen=True, slots=True)
class Destination:
    """One address to connect to.

    Attributes:
        host: the MX host name (or smarthost name; the literal for address literals).
        ip: the address to connect to.
        port: TCP port.
        preference: MX preference (0 for implicit MX, literals and smarthosts).
    """

    host: str
    ip: str
    port: int
    preference: int = 0

    @property
    def label(self) -> str:
        """Postfix's relay= notation: ``mx.example.net[192.0.2.1]:25``."""
        return f"{self.host}[{self.ip}]:{self.port}"


class DestinationError(Exception):
    """No destination for this domain now. Carries the reply the recipients get."""

    code = 451
    status = "4.4.3"

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    @property
    def reply_text(self) -> str:
        return f"{self.status} {self.text}"


class NullMx(DestinationError):
    code, status = 556, "5.1.10"


class DomainNotFound(DestinationError):
    code, status = 550, "5.1.2"


class NoUsableHost(DestinationError):
    code, status = 550, "5.4.4"


class DnsTemporaryFailure(DestinationError):
    code, status = 451, "4.4.3"


def split_hostport(text: str, default_port: int) -> tuple[str, int]:
    """ "host:port", "[host]:port", "[v6]:port", "host" → (host, port). Brackets are removed."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    if host.lower().startswith("ipv6:"):
        host = host[5:]
    if port and not port.isdigit():
        raise ValueError(f"bad port in {text!r}")
    return host, int(port) if port else default_port


def _literal(domain: str) -> str | None:
    """The IP of an RFC 5321 §4.1.3 address literal ``[192.0.2.1]`` / ``[IPv6:2001:db8::1]``."""
    if not (domain.startswith("[") and domain.endswith("]")):
        return None
    body = domain[1:-1]
    if body[:5].lower() == "ipv6:":
        body = body[5:]
    try:
        return str(ipaddress.ip_address(body))
    except ValueError:
        raise NoUsableHost(f"bad address literal {domain}") from None


async def _addresses(resolver: Resolver, host: str, ipv6_first: bool) -> list[str]:
    """A and AAAA of `host` (looked up together). NXDOMAIN / no records → []; temporary → raises."""
    try:
        return [str(ipaddress.ip_address(host))]  # an IP where a name was expected (smarthost)
    except ValueError:
        pass
    results = await asyncio.gather(resolver.a(host), resolver.aaaa(host), return_exceptions=True)
    found: list[list[str]] = []
    temporary = None
    for result in results:
        if isinstance(result, NoSuchDomain):
            found.append([])
        elif isinstance(result, TempDnsError):
            temporary = result
            found.append([])
        elif isinstance(result, BaseException):
            raise result
        else:
            found.append(result)
    v4, v6 = found
    addresses = v6 + v4 if ipv6_first else v4 + v6
    if not addresses and temporary is not None:
        raise DnsTemporaryFailure(f"cannot look up {host}: {temporary}")
    return addresses


async def resolve_destinations(resolver: Resolver, domain: str, port: int = 25, *,
                               rng: random.Random | None = None, ipv6_first: bool = False) -> list[Destination]:
    """The addresses to try for mail to `domain`, in order. See the module docstring.

    Raises:
        DestinationError: one of its subclasses, with the reply to record.
    """
    domain = domain.rstrip(".").lower()
    literal = _literal(domain)
    if literal is not None:
        return [Destination(domain, literal, port)]
    try:
        records = await resolver.mx(domain)
    except NoSuchDomain:
        raise DomainNotFound(f"domain {domain} does not exist (DNS: NXDOMAIN)") from None
    except TempDnsError as exc:
        raise DnsTemporaryFailure(f"DNS lookup of MX {domain} failed: {exc}") from None
    if records and all(exchange in (".", "") for _, exchange in records):
        raise NullMx(f"domain {domain} does not accept mail (null MX, RFC 7505)")
    records = [(pref, exchange.rstrip(".").lower()) for pref, exchange in records if exchange not in (".", "")]
    if not records:  # RFC 5321 §5.1: the domain itself is the implicit MX, preference 0
        records = [(0, domain)]
    rng = rng or random.Random()
    ordered: list[tuple[int, str]] = []
    for _, group in groupby(sorted(records), key=lambda r: r[0]):
        same = list(dict.fromkeys(group))  # dnspython may repeat nothing, but be safe
        rng.shuffle(same)
        ordered += same
    lookups = await asyncio.gather(*(_addresses(resolver, host, ipv6_first) for _, host in ordered),
                                   return_exceptions=True)
    destinations: list[Destination] = []
    temporary: DestinationError | None = None
    for (pref, host), result in zip(ordered, lookups, strict=True):
        if isinstance(result, DestinationError):
            temporary = temporary or result
        elif isinstance(result, BaseException):
            raise result
        else:
            destinations += [Destination(host, ip, port, pref) for ip in dict.fromkeys(result)]
    if destinations:
        return destinations
    if temporary is not None:
        raise temporary
    what = "the MX hosts" if ordered != [(0, domain)] else "the domain (no MX, no A/AAAA)"
    raise NoUsableHost(f"no address found for {what} of {domain}")


async def resolve_smarthost(resolver: Resolver, smarthost: str, default_port: int = 25, *,
                            ipv6_first: bool = False) -> list[Destination]:
    """The addresses of a smarthost "host:port" (A/AAAA only, never MX, as Postfix's [host])."""
    # A smarthost's failures are the operator's to fix, never the sender's: defer, never bounce.
    try:
        host, port = split_hostport(smarthost, default_port)
    except ValueError as exc:
        raise DnsTemporaryFailure(f"smarthost {smarthost!r}: {exc}") from None
    addresses = await _addresses(resolver, host, ipv6_first)
    if not addresses:
        raise DnsTemporaryFailure(f"smarthost {host} has no address")
    return [Destination(host, ip, port) for ip in addresses]
