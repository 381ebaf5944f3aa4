"""Where each recipient goes: local mailbox, LMTP, a smarthost, or the domain's MX hosts.

The Router answers three questions with the same rules, so RCPT-time checks, queue delivery and
`mailboat route` can never disagree:
- `recipient_exists(address)`: may a local-domain recipient be accepted at RCPT? (550 5.1.1 if not)
- `expand(address)`: alias expansion, recursive and loop-safe;
- `route(address)`: the Route of one final address.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence

from mailboat.routing.route import Lmtp, Maildir, Mx, Relay, Route

MAX_ALIAS_DEPTH = 10
ROUTE_CACHE_SIZE = 4096  # addresses whose Route is kept (emptied whole when full)
RECIPIENT_DELIMITER = "+"  # alice+lists@example.com is alice's mailbox (Postfix recipient_delimiter)
# Characters that may appear in a Maildir directory name as they are; the rest are %XX-escaped.
_PATH_SAFE = re.compile(r"[^a-z0-9._=+-]")


def split_address(address: str) -> tuple[str, str]:
    """("local", "domain") with the domain lowercased and any trailing dot removed."""
    local, at, domain = address.rpartition("@")
    if not at:
        return address, ""
    return local, domain.rstrip(".").lower()


def normalize(address: str) -> str:
    local, domain = split_address(address)
    return f"{local.lower()}@{domain}" if domain else local.lower()


def has_routing_syntax(local_part: str) -> bool:
    """True for local parts that other MTAs would re-route: user%host, host!user, "user@host".

    Accepting them for a local domain is how open relays were made (Postfix
    allow_untrusted_routing=no); we never route by them and refuse them outright.
    """
    return any(ch in local_part for ch in "%!@")


class Router:
    def __init__(
        self,
        *,
        local_domains: Sequence[str],
        account_exists: Callable[[str], bool],
        aliases: Mapping[str, Sequence[str]],
        catch_all: bool,
        maildir_template: str,
        data_dir: str,
        hostname: str,
        lmtp: str = "",
        smarthost: str = "",
        routes: Mapping[str, str] | None = None,
    ) -> None:
        self.local_domains = frozenset(d.lower().rstrip(".") for d in local_domains)
        self._account_exists = account_exists
        self._aliases = {normalize(k): [a.strip() for a in v] for k, v in aliases.items()}
        self._catch_all = catch_all
        self._maildir_template = maildir_template
        self._data_dir = data_dir
        self._hostname = hostname.lower()
        self._lmtp = lmtp
        self._smarthost = smarthost
        self._routes = {k.lower().rstrip("."): v for k, v in (routes or {}).items()}
        # route() depends on the configuration only, which never changes after this: its
        # answers are kept (the runner asks for every recipient of every message).
        self._route_cache: dict[str, Route] = {}

    def qualify(self, address: str) -> str:
        """RFC 5321 allows RCPT TO:<Postmaster> with no domain: it is postmaster of this host."""
        return address if "@" in address else f"{address}@{self._hostname}"

    def is_local_domain(self, domain: str) -> bool:
        return domain.lower().rstrip(".") in self.local_domains

    def is_local(self, address: str) -> bool:
        return self.is_local_domain(split_address(self.qualify(address))[1])

    def _base(self, address: str) -> str:
        """The mailbox key of an address: lowercased, without a +detail."""
        local, domain = split_address(normalize(address))
        base_local = local.split(RECIPIENT_DELIMITER, 1)[0] if local not in ("", RECIPIENT_DELIMITER) else local
        return f"{base_local or local}@{domain}"

    def recipient_exists(self, address: str) -> bool:
        address = self.qualify(address)
        local, domain = split_address(address)
        if not self.is_local_domain(domain) or has_routing_syntax(local):
            return False
        key, base = normalize(address), self._base(address)
        if local.lower() == "postmaster":  # RFC 5321 §4.5.1: always accepted
            return True
        return (
            key in self._aliases
            or base in self._aliases
            or self._account_exists(key)
            or self._account_exists(base)
            or self._catch_all
        )

    def expand(self, address: str) -> list[str]:
        """Final addresses of `address` after aliases; an alias loop ends at the looping entry."""
        result: list[str] = []
        seen: set[str] = set()

        def walk(addr: str, depth: int) -> None:
            addr = self.qualify(addr)
            key = normalize(addr)
            targets = self._aliases.get(key)
            if targets is None and self.is_local(addr):
                targets = self._aliases.get(self._base(addr))
            if targets is None or key in seen or depth >= MAX_ALIAS_DEPTH:
                if key not in {normalize(r) for r in result}:
                    result.append(addr)
                return
            seen.add(key)
            for target in targets:
                # An alias that names itself also delivers to its own mailbox (Postfix semantics).
                if normalize(self.qualify(target)) == key:
                    if key not in {normalize(r) for r in result}:
                        result.append(addr)
                else:
                    walk(target, depth + 1)

        walk(address, 0)
        return result

    def maildir_path(self, address: str) -> str:
        local, domain = split_address(self._base(self.qualify(address)))
        safe_local = _PATH_SAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), local)
        if safe_local.startswith("."):
            safe_local = "%2E" + safe_local[1:]
        path = self._maildir_template.format(data_dir=self._data_dir, domain=domain, local=safe_local,
                                             user=f"{safe_local}@{domain}")
        return os.path.normpath(path)

    def route(self, address: str) -> Route:
        route = self._route_cache.get(address)
        if route is None:
            route = self._route(address)
            if len(self._route_cache) >= ROUTE_CACHE_SIZE:
                self._route_cache.clear()
            self._route_cache[address] = route
        return route

    def _route(self, address: str) -> Route:
        address = self.qualify(address)
        _, domain = split_address(address)
        if self.is_local_domain(domain):
            if self._lmtp:
                return Lmtp(self._lmtp)
            return Maildir(self.maildir_path(address))
        if domain in self._routes:
            return Relay(self._routes[domain])
        if self._smarthost:
            return Relay(self._smarthost)
        return Mx(domain)
