"""DMARC (RFC 7489, updated by RFC 9989 "DMARCbis"): policy discovery by DNS tree walk,
organisational domain, identifier alignment, and the disposition of one message.

RFC 9989 replaces the Public Suffix List with a walk up the DNS tree (§4.10): query
_dmarc.<domain>, then jump to at most 7 labels and drop one label at a time, so at most 8 queries
per walk, and no PSL snapshot to go stale. The walk answers two questions: which record governs
the author domain (policy discovery) and which domain is the organisational domain (relaxed
alignment: two names are aligned when their organisational domains are equal).

Both old and new tags are honoured: pct= (RFC 7489 §6.3 sampling) and t=y (RFC 9989 testing
mode); np= (non-existent subdomains) and psd= (public suffix domains).
"""

from __future__ import annotations

import email.utils
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mailboat.auth.results import Disposition, DmarcResult
from mailboat.mail.headers import get_all, parse_fields, split_message
from mailboat.resolver.base import NoSuchDomain, Resolver, TempDnsError

MAX_WALK_LABELS = 7  # RFC 9989 §4.10.1: after the first query, start at most 7 labels deep
_POLICIES = {"none": Disposition.NONE, "quarantine": Disposition.QUARANTINE, "reject": Disposition.REJECT}
_DOWNGRADE = {Disposition.REJECT: Disposition.QUARANTINE, Disposition.QUARANTINE: Disposition.NONE,
              Disposition.NONE: Disposition.NONE}


class DmarcTempError(Exception):
    """A DNS failure during discovery: the result is temperror."""


@dataclass(frozen=True, slots=True)
class DmarcRecord:
    p: Disposition
    sp: Disposition | None = None
    np: Disposition | None = None
    adkim: str = "r"  # "r" relaxed | "s" strict
    aspf: str = "r"
    pct: int = 100
    testing: bool = False  # t=y
    psd: str = "u"  # "y" | "n" | "u" (unknown)


def parse_record(text: str) -> DmarcRecord | None:
    """A v=DMARC1 record, or None when `text` is not one (§4.7: such records are discarded).

    Unknown tags are ignored and bad values fall back to defaults (RFC 9989 §5.3 asks receivers
    to be lenient), except that a record without v=DMARC1 first is not a DMARC record at all.
    """
    tags: dict[str, str] = {}
    for i, part in enumerate(p.strip() for p in text.split(";")):
        if not part:
            continue
        name, eq, value = part.partition("=")
        name, value = name.strip().lower(), value.strip()
        if i == 0 and (name != "v" or value != "DMARC1"):
            return None
        if eq:
            tags.setdefault(name, value)
    if "v" not in tags:
        return None
    policy = _POLICIES.get(tags.get("p", "").lower(), Disposition.NONE)
    try:
        pct = min(100, max(0, int(tags.get("pct", "100"))))
    except ValueError:
        pct = 100
    return DmarcRecord(
        p=policy, sp=_POLICIES.get(tags.get("sp", "").lower()), np=_POLICIES.get(tags.get("np", "").lower()),
        adkim="s" if tags.get("adkim", "").lower() == "s" else "r",
        aspf="s" if tags.get("aspf", "").lower() == "s" else "r",
        pct=pct, testing=tags.get("t", "").lower() == "y", psd=tags.get("psd", "u").lower()[:1] or "u",
    )


async def _query(resolver: Resolver, domain: str) -> DmarcRecord | None:
    try:
        texts = await resolver.txt(f"_dmarc.{domain}")
    except NoSuchDomain:
        return None
    except TempDnsError as exc:
        raise DmarcTempError(f"_dmarc.{domain}: {exc}") from None
    records = [r for r in (parse_record(t) for t in texts) if r is not None]
    return records[0] if len(records) == 1 else None  # several records: all discarded


def walk_targets(domain: str) -> list[str]:
    """The names the tree walk queries, in order (§4.10.1)."""
    labels = domain.lower().rstrip(".").split(".")
    targets = [".".join(labels)]
    start = min(len(labels) - 1, MAX_WALK_LABELS)
    for n in range(start, 0, -1):
        targets.append(".".join(labels[-n:]))
    return targets


class Discovery:
    """Tree walks for one message, with their answers cached (the same names recur)."""

    def __init__(self, resolver: Resolver) -> None:
        self._resolver = resolver
        self._cache: dict[str, DmarcRecord | None] = {}

    async def record(self, domain: str) -> DmarcRecord | None:
        if domain not in self._cache:
            self._cache[domain] = await _query(self._resolver, domain)
        return self._cache[domain]

    async def policy(self, author_domain: str) -> tuple[str, DmarcRecord] | None:
        """The governing record: at the author domain, or the first one up the tree."""
        for target in walk_targets(author_domain):
            record = await self.record(target)
            if record is not None:
                return target, record
        return None

    async def organizational_domain(self, domain: str) -> str:
        """§4.10.2: psd=n stops the walk; psd=y makes the name below it the org domain;
        otherwise the highest name with a record; with no record at all, the name itself."""
        targets = walk_targets(domain)
        highest = None
        for i, target in enumerate(targets):
            record = await self.record(target)
            if record is None:
                continue
            if record.psd == "n":
                return target
            if record.psd == "y" and i > 0:
                below = domain.lower().rstrip(".").split(".")[-(target.count(".") + 2):]
                return ".".join(below)
            highest = target
        return highest or domain.lower().rstrip(".")

    async def aligned(self, a: str, b: str, mode: str) -> bool:
        a, b = a.lower().rstrip("."), b.lower().rstrip(".")
        if a == b:
            return True
        if mode == "s":
            return False
        return await self.organizational_domain(a) == await self.organizational_domain(b)


@dataclass(frozen=True, slots=True)
class DmarcOutcome:
    result: DmarcResult
    disposition: Disposition  # what to do with this message
    from_domain: str = ""
    policy: Disposition | None = None  # the policy the domain asked for (before pct/t=)
    policy_domain: str = ""  # where the governing record was found
    reason: str = ""
    spf_aligned: bool = False
    dkim_aligned: bool = False


def from_domains(message: bytes) -> list[str] | None:
    """The RFC5322.From domains (§3.1.1); None when there is no usable From field."""
    fields = get_all(parse_fields(split_message(message)[0]), "from")
    addresses = email.utils.getaddresses([f.value for f in fields])
    domains = sorted({addr.rpartition("@")[2].lower().rstrip(".") for _, addr in addresses if "@" in addr})
    return domains if fields and domains and all(domains) else None


async def evaluate(resolver: Resolver, message: bytes, spf: tuple[str, str] | None,
                   dkim: Sequence[tuple[str, str]], sample: Callable[[], float] = random.random) -> DmarcOutcome:
    """DMARC for a message. `spf` is (result, MAIL FROM or HELO domain); `dkim` is (result, d=) pairs.

    With several From domains every one is evaluated and the strictest outcome wins, so adding
    a second author cannot weaken a domain's policy (RFC 7489 §6.6.1).
    """
    domains = from_domains(message)
    if domains is None:
        return DmarcOutcome(DmarcResult.PERMERROR, Disposition.NONE, reason="no usable From address")
    discovery = Discovery(resolver)
    outcomes = []
    for domain in domains:
        try:
            outcomes.append(await _evaluate_domain(discovery, resolver, domain, spf, dkim, sample))
        except DmarcTempError as exc:
            outcomes.append(DmarcOutcome(DmarcResult.TEMPERROR, Disposition.NONE, domain, reason=str(exc)))
    rank = {Disposition.NONE: 0, Disposition.QUARANTINE: 1, Disposition.REJECT: 2}
    order = {DmarcResult.FAIL: 4, DmarcResult.TEMPERROR: 3, DmarcResult.PERMERROR: 2, DmarcResult.PASS: 1,
             DmarcResult.NONE: 0}
    return max(outcomes, key=lambda o: (rank[o.disposition], order[o.result]))


async def _evaluate_domain(discovery: Discovery, resolver: Resolver, domain: str, spf: tuple[str, str] | None,
                           dkim: Sequence[tuple[str, str]], sample: Callable[[], float]) -> DmarcOutcome:
    found = await discovery.policy(domain)
    if found is None:
        return DmarcOutcome(DmarcResult.NONE, Disposition.NONE, domain, reason="no DMARC record")
    policy_domain, record = found
    spf_aligned = bool(spf and spf[0] == "pass" and await discovery.aligned(spf[1], domain, record.aspf))
    dkim_aligned = False
    for result, d in dkim:
        if result == "pass" and await discovery.aligned(d, domain, record.adkim):
            dkim_aligned = True
            break
    requested = await _requested_policy(resolver, domain, policy_domain, record)
    common: dict[str, Any] = dict(from_domain=domain, policy=requested, policy_domain=policy_domain,
                  spf_aligned=spf_aligned, dkim_aligned=dkim_aligned)
    if spf_aligned or dkim_aligned:
        via = "SPF and DKIM" if spf_aligned and dkim_aligned else "SPF" if spf_aligned else "DKIM"
        return DmarcOutcome(DmarcResult.PASS, Disposition.NONE, reason=f"aligned {via} pass", **common)
    if (spf and spf[0] == "temperror") or any(r == "temperror" for r, _ in dkim):
        # An identifier that might have passed could not be checked: say so rather than fail.
        return DmarcOutcome(DmarcResult.TEMPERROR, Disposition.NONE, reason="SPF or DKIM temperror", **common)
    disposition = requested
    note = ""
    if record.testing:
        disposition, note = _DOWNGRADE[disposition], " (t=y testing: one step milder)"
    elif record.pct < 100 and sample() * 100 >= record.pct:
        disposition, note = _DOWNGRADE[disposition], f" (outside pct={record.pct}: one step milder)"
    return DmarcOutcome(DmarcResult.FAIL, disposition, reason="no aligned SPF or DKIM pass" + note, **common)


async def _requested_policy(resolver: Resolver, domain: str, policy_domain: str, record: DmarcRecord) -> Disposition:
    if policy_domain == domain.lower().rstrip("."):
        return record.p
    if record.np is not None and await _nonexistent(resolver, domain):
        return record.np
    return record.sp or record.p


async def _nonexistent(resolver: Resolver, domain: str) -> bool:
    """RFC 9989 §4.7 np=: the author domain has no A, AAAA or MX (NXDOMAIN on the name)."""
    try:
        await resolver.a(domain)
    except NoSuchDomain:
        return True
    except TempDnsError as exc:
        raise DmarcTempError(f"{domain}: {exc}") from None
    return False
