"""SPF: the check_host() function of RFC 7208, asynchronous, with DNS only through a Resolver.

    result = await check_mail_from(resolver, "192.0.2.1", "alice@example.com", "mx.example.com")
    result.result  # SpfResult.PASS ...

Limits (§4.6.4): at most 10 terms that cause DNS look-ups (include, a, mx, ptr, exists, redirect)
per evaluation, at most 10 MX and PTR names each, and at most 2 "void" look-ups (NXDOMAIN or no
answer); past a limit the result is permerror. One `_Budget` is shared by the whole evaluation,
including nested include/redirect, because the limits are per check_host() call tree.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mailboat.auth.results import SpfResult
from mailboat.auth.spf_record import (
    MacroContext,
    Mechanism,
    Record,
    SpfSyntaxError,
    expand,
    is_spf_record,
    parse_record,
    truncate_domain,
)
from mailboat.resolver.base import NoSuchDomain, Resolver, TempDnsError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_DNS_TERMS = 10
MAX_VOID = 2
MAX_NAMES = 10  # MX names (§4.6.4 item 2) and PTR names (§5.5)


@dataclass(frozen=True, slots=True)
class SpfOutcome:
    """check_host()'s answer. `reason` says which term or error decided it (for logs and A-R)."""

    result: SpfResult
    domain: str  # the domain checked (MAIL FROM domain, or HELO)
    reason: str = ""
    explanation: str = ""  # §6.2 exp= text, for the 550 reply on fail
    lookups: int = 0


class _PermError(Exception):
    pass


class _TempError(Exception):
    pass


@dataclass(slots=True)
class _Budget:
    """Mutable counters shared by one check_host() call tree (the only mutable state here)."""

    terms: int = 0
    void: int = 0
    explanation_default: str = ""
    receiver: str = "unknown"

    def term(self) -> None:
        self.terms += 1
        if self.terms > MAX_DNS_TERMS:
            raise _PermError(f"more than {MAX_DNS_TERMS} DNS-querying terms (RFC 7208 §4.6.4)")

    def void_lookup(self) -> None:
        self.void += 1
        if self.void > MAX_VOID:
            raise _PermError(f"more than {MAX_VOID} void DNS look-ups (RFC 7208 §4.6.4)")


def _ip(text: str) -> IPAddress:
    ip = ipaddress.ip_address(text)
    # §5: an IPv4-mapped IPv6 client is an IPv4 client for every mechanism.
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def valid_domain(domain: str) -> bool:
    """§4.3: a multi-label name, no empty or over-long label (else the result is none)."""
    labels = domain.rstrip(".").split(".")
    return len(labels) >= 2 and all(0 < len(label) <= 63 for label in labels) and len(domain) <= 253


async def check_mail_from(resolver: Resolver, ip: str, mail_from: str, helo: str,
                          receiver: str = "unknown") -> SpfOutcome:
    """SPF for the MAIL FROM identity, or for HELO when the reverse-path is null (§2.4)."""
    if not mail_from:
        return await check_host(resolver, ip, helo, f"postmaster@{helo}", helo, receiver)
    domain = mail_from.rpartition("@")[2]
    return await check_host(resolver, ip, domain, mail_from, helo, receiver)


async def check_host(resolver: Resolver, ip: str, domain: str, sender: str, helo: str,
                     receiver: str = "unknown", default_explanation: str = "") -> SpfOutcome:
    """RFC 7208 §4: evaluate `domain`'s policy for a client `ip` and `sender`."""
    if "@" not in sender:
        sender = f"postmaster@{sender}"
    elif sender.startswith("@"):
        sender = "postmaster" + sender
    domain = domain.rstrip(".")
    if not valid_domain(domain):
        return SpfOutcome(SpfResult.NONE, domain, f"{domain!r} is not a valid domain (RFC 7208 §4.3)")
    budget = _Budget(explanation_default=default_explanation, receiver=receiver)
    try:
        result, reason, explanation = await _check(resolver, _ip(ip), domain, sender, helo, budget, top=True)
    except _PermError as exc:
        return SpfOutcome(SpfResult.PERMERROR, domain, str(exc), lookups=budget.terms)
    except _TempError as exc:
        return SpfOutcome(SpfResult.TEMPERROR, domain, str(exc), lookups=budget.terms)
    return SpfOutcome(result, domain, reason, explanation, budget.terms)


async def _record(resolver: Resolver, domain: str) -> Record | None:
    """§4.4–4.5: the single SPF record of `domain`, None when there is none."""
    try:
        texts = await resolver.txt(domain)
    except NoSuchDomain:
        return None
    except TempDnsError as exc:
        raise _TempError(f"TXT {domain}: {exc}") from None
    records = [t for t in texts if is_spf_record(t)]
    if not records:
        return None
    if len(records) > 1:
        raise _PermError(f"{domain} publishes {len(records)} SPF records (RFC 7208 §4.5)")
    try:
        return parse_record(records[0])
    except SpfSyntaxError as exc:
        raise _PermError(f"{domain}: {exc}") from None


async def _check(resolver: Resolver, ip: IPAddress, domain: str, sender: str, helo: str, budget: _Budget,
                 top: bool = False) -> tuple[SpfResult, str, str]:
    record = await _record(resolver, domain)
    if record is None:
        if top:
            return SpfResult.NONE, f"no SPF record at {domain}", ""
        raise _PermError(f"no SPF record at {domain} (included or redirected to)")
    ctx = MacroContext(sender, domain, ip, helo, receiver=budget.receiver)
    for mech in record.mechanisms:
        if await _matches(resolver, mech, ip, ctx, helo, budget):
            result = SpfResult(mech.qualifier)
            explanation = ""
            if result is SpfResult.FAIL:
                explanation = await _explain(resolver, record, ctx, budget)
            return result, f"matched {mech.qualifier} {mech}", explanation
    if record.redirect is not None:
        # §6.1: redirect is a DNS term too; the target's own exp= applies, not ours.
        budget.term()
        target = await _target(resolver, record.redirect, ctx, budget)
        if not valid_domain(target):
            raise _PermError(f"redirect to invalid domain {target!r}")
        return await _check(resolver, ip, target, sender, helo, budget)
    return SpfResult.NEUTRAL, "no mechanism matched (default neutral)", ""


async def _target(resolver: Resolver, spec: str | None, ctx: MacroContext, budget: _Budget) -> str:
    if spec is None:
        return ctx.domain
    if "%{p" in spec.lower():  # §7.3: resolve the validated name only when a macro asks for it
        ctx = await _with_validated_name(resolver, ctx, budget)
    try:
        return truncate_domain(expand(spec, ctx))
    except SpfSyntaxError as exc:
        raise _PermError(str(exc)) from None


async def _addresses(resolver: Resolver, name: str, version: int, budget: _Budget, void_counts: bool = True
                     ) -> list[IPAddress]:
    if not valid_domain(name):
        return []
    try:
        found = await (resolver.a(name) if version == 4 else resolver.aaaa(name))
    except NoSuchDomain:
        found = []
    except TempDnsError as exc:
        raise _TempError(f"{'A' if version == 4 else 'AAAA'} {name}: {exc}") from None
    if not found and void_counts:
        budget.void_lookup()
    return [ipaddress.ip_address(a) for a in found]


def _in(ip: IPAddress, addresses: list[IPAddress], mech: Mechanism) -> bool:
    bits = mech.cidr4 if ip.version == 4 else mech.cidr6
    return any(ip in ipaddress.ip_network(f"{a}/{bits}", strict=False) for a in addresses if a.version == ip.version)


async def _matches(resolver: Resolver, mech: Mechanism, ip: IPAddress, ctx: MacroContext, helo: str,
                   budget: _Budget) -> bool:
    match mech.name:
        case "all":
            return True
        case "ip4" | "ip6":
            if (ip.version == 4) != (mech.name == "ip4"):
                return False
            bits = mech.cidr4 if mech.name == "ip4" else mech.cidr6
            return ip in ipaddress.ip_network(f"{mech.arg}/{bits}", strict=False)
        case "a":
            budget.term()
            target = await _target(resolver, mech.arg, ctx, budget)
            return _in(ip, await _addresses(resolver, target, ip.version, budget), mech)
        case "mx":
            budget.term()
            target = await _target(resolver, mech.arg, ctx, budget)
            return await _match_mx(resolver, mech, ip, target, budget)
        case "ptr":
            budget.term()
            target = (await _target(resolver, mech.arg, ctx, budget)).lower()
            return any(n == target or n.endswith("." + target) for n in await _validated_names(resolver, ip, budget))
        case "exists":
            budget.term()
            # §5.7: always an A query, whatever the client's address family.
            target = await _target(resolver, mech.arg, ctx, budget)
            return bool(await _addresses(resolver, target, 4, budget))
        case "include":
            budget.term()
            target = await _target(resolver, mech.arg, ctx, budget)
            if not valid_domain(target):
                raise _PermError(f"include of invalid domain {target!r}")
            result, _, _ = await _check(resolver, ip, target, ctx.sender, helo, budget)
            # §5.2: only pass matches; fail/softfail/neutral just do not match.
            return result is SpfResult.PASS
    raise _PermError(f"unknown mechanism {mech.name}")


async def _match_mx(resolver: Resolver, mech: Mechanism, ip: IPAddress, target: str, budget: _Budget) -> bool:
    if not valid_domain(target):
        return False
    try:
        hosts = await resolver.mx(target)
    except NoSuchDomain:
        hosts = []
    except TempDnsError as exc:
        raise _TempError(f"MX {target}: {exc}") from None
    if not hosts:
        budget.void_lookup()
        return False
    if len(hosts) > MAX_NAMES:
        raise _PermError(f"{target} has more than {MAX_NAMES} MX names (RFC 7208 §4.6.4)")
    for _, host in sorted(hosts):
        if host != "." and _in(ip, await _addresses(resolver, host, ip.version, budget, void_counts=False), mech):
            return True
    return False


async def _validated_names(resolver: Resolver, ip: IPAddress, budget: _Budget) -> list[str]:
    """§5.5: PTR names of `ip` whose A/AAAA records lead back to it; DNS errors just skip a name."""
    try:
        names = await resolver.ptr(str(ip))
    except (NoSuchDomain, TempDnsError):
        return []
    validated = []
    for name in names[:MAX_NAMES]:
        try:
            found = await (resolver.a(name) if ip.version == 4 else resolver.aaaa(name))
        except (NoSuchDomain, TempDnsError):
            continue
        if any(ipaddress.ip_address(a) == ip for a in found):
            validated.append(name.lower().rstrip("."))
    return validated


async def _with_validated_name(resolver: Resolver, ctx: MacroContext, budget: _Budget) -> MacroContext:
    """§7.3 "p": a validated name in the current domain if any, else any validated name."""
    names = await _validated_names(resolver, ctx.ip, budget)
    domain = ctx.domain.lower()
    preferred = [n for n in names if n == domain or n.endswith("." + domain)]
    name = (preferred or names or ["unknown"])[0]
    return MacroContext(ctx.sender, ctx.domain, ctx.ip, ctx.helo, name, ctx.receiver)


async def _explain(resolver: Resolver, record: Record, ctx: MacroContext, budget: _Budget) -> str:
    """§6.2: the exp= text; any problem means "as if no exp= was given" (never an error)."""
    if record.exp is None:
        return budget.explanation_default
    try:
        target = truncate_domain(expand(record.exp, ctx))
        texts = await resolver.txt(target) if valid_domain(target) else []
    except (SpfSyntaxError, NoSuchDomain, TempDnsError):
        return budget.explanation_default
    if len(texts) != 1:
        return budget.explanation_default
    try:
        if "%{p" in texts[0].lower():
            ctx = await _with_validated_name(resolver, ctx, budget)
        text = expand(texts[0], ctx, explain=True)
    except SpfSyntaxError:
        return budget.explanation_default
    return text if text.isascii() else budget.explanation_default
