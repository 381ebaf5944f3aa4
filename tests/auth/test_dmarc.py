"""DMARC: the issue's cases (aligned pass, SPF-only, DKIM-only, misaligned subdomain relaxed vs
strict, p=reject, p=quarantine, no record) plus tree-walk, pct/t=, np= and DNS failures."""

from __future__ import annotations

import asyncio

import pytest

from mailboat.auth.dmarc import Discovery, evaluate, parse_record, walk_targets
from mailboat.auth.results import Disposition, DmarcResult
from mailboat.resolver.static import TIMEOUT, StaticResolver

FROM = b"From: Alice <alice@example.com>\r\nSubject: hi\r\n\r\nbody\r\n"


def zone(record: str | None = "v=DMARC1; p=reject", **extra) -> StaticResolver:
    data = {"example.com": [("A", "192.0.2.1")], "mail.example.com": [("A", "192.0.2.2")]}
    if record is not None:
        data["_dmarc.example.com"] = [("TXT", record)]
    for name, records in extra.items():
        data[name.replace("__", ".")] = records
    return StaticResolver(data)


def run(resolver, message=FROM, spf=None, dkim=(), sample=lambda: 0.0):
    return asyncio.run(evaluate(resolver, message, spf, list(dkim), sample))


def test_aligned_pass_both():
    out = run(zone(), spf=("pass", "example.com"), dkim=[("pass", "example.com")])
    assert (out.result, out.disposition) == (DmarcResult.PASS, Disposition.NONE)
    assert out.spf_aligned and out.dkim_aligned


def test_spf_only_pass():
    out = run(zone(), spf=("pass", "example.com"), dkim=[("fail", "example.com")])
    assert out.result is DmarcResult.PASS and out.spf_aligned and not out.dkim_aligned


def test_dkim_only_pass():
    out = run(zone(), spf=("fail", "example.com"), dkim=[("pass", "example.com")])
    assert out.result is DmarcResult.PASS and out.dkim_aligned and not out.spf_aligned


def test_pass_for_unaligned_domain_does_not_count():
    out = run(zone(), spf=("pass", "evil.example"), dkim=[("pass", "evil.example")])
    assert (out.result, out.disposition) == (DmarcResult.FAIL, Disposition.REJECT)


@pytest.mark.parametrize("mode,expected", [("r", DmarcResult.PASS), ("s", DmarcResult.FAIL)])
def test_subdomain_alignment_relaxed_vs_strict(mode, expected):
    record = f"v=DMARC1; p=reject; adkim={mode}; aspf={mode}"
    out = run(zone(record), spf=("pass", "mail.example.com"), dkim=[("pass", "mail.example.com")])
    assert out.result is expected


def test_p_reject_and_quarantine():
    assert run(zone("v=DMARC1; p=reject")).disposition is Disposition.REJECT
    out = run(zone("v=DMARC1; p=quarantine"))
    assert (out.result, out.disposition, out.policy) == (
        DmarcResult.FAIL, Disposition.QUARANTINE, Disposition.QUARANTINE)
    assert run(zone("v=DMARC1; p=none")).disposition is Disposition.NONE


def test_no_record():
    out = run(zone(None), spf=("fail", "example.com"))
    assert (out.result, out.disposition) == (DmarcResult.NONE, Disposition.NONE)


def test_subdomain_uses_sp_found_by_tree_walk():
    message = FROM.replace(b"alice@example.com", b"alice@a.b.mail.example.com")
    resolver = zone("v=DMARC1; p=none; sp=reject", a__b__mail__example__com=[("A", "192.0.2.3")])
    out = run(resolver, message)
    assert (out.policy_domain, out.policy, out.disposition) == ("example.com", Disposition.REJECT, Disposition.REJECT)


def test_np_for_nonexistent_subdomain():
    message = FROM.replace(b"alice@example.com", b"alice@ghost.example.com")
    out = run(zone("v=DMARC1; p=none; sp=quarantine; np=reject"), message)
    assert out.disposition is Disposition.REJECT


def test_pct_and_testing_mode_step_down():
    assert run(zone("v=DMARC1; p=reject; pct=10"), sample=lambda: 0.5).disposition is Disposition.QUARANTINE
    assert run(zone("v=DMARC1; p=reject; pct=10"), sample=lambda: 0.05).disposition is Disposition.REJECT
    assert run(zone("v=DMARC1; p=reject; t=y")).disposition is Disposition.QUARANTINE


def test_dns_failure_is_temperror():
    resolver = StaticResolver({"_dmarc.example.com": [(TIMEOUT, "")]})
    out = run(resolver)
    assert (out.result, out.disposition) == (DmarcResult.TEMPERROR, Disposition.NONE)


def test_underlying_temperror_is_not_a_fail():
    out = run(zone(), spf=("temperror", "example.com"), dkim=[("fail", "example.com")])
    assert (out.result, out.disposition) == (DmarcResult.TEMPERROR, Disposition.NONE)


def test_two_authors_strictest_wins():
    message = FROM.replace(b"From: Alice <alice@example.com>", b"From: a@example.com, b@other.example")
    out = run(zone(), message, spf=("pass", "other.example"), dkim=[("pass", "other.example")])
    assert (out.from_domain, out.disposition) == ("example.com", Disposition.REJECT)


def test_no_from_is_permerror():
    assert run(zone(), b"Subject: x\r\n\r\nbody\r\n").result is DmarcResult.PERMERROR


@pytest.mark.parametrize("text", ["v=spf1 -all", "p=reject; v=DMARC1", "", "v=DMARC2; p=reject"])
def test_not_dmarc_records(text):
    assert parse_record(text) is None


def test_malformed_values_fall_back_to_defaults():
    record = parse_record("v=DMARC1; p=bogus; pct=lots; adkim=x")
    assert (record.p, record.pct, record.adkim) == (Disposition.NONE, 100, "r")


def test_two_records_are_discarded():
    resolver = StaticResolver({"_dmarc.example.com": [("TXT", "v=DMARC1; p=reject"), ("TXT", "v=DMARC1; p=none")]})
    assert run(resolver).result is DmarcResult.NONE


def test_walk_targets_are_bounded():
    assert walk_targets("a.b.example.com") == ["a.b.example.com", "b.example.com", "example.com", "com"]
    deep = ".".join(f"l{i}" for i in range(12)) + ".example.com"
    targets = walk_targets(deep)
    assert len(targets) == 8 and targets[1].count(".") == 6


def test_organizational_domain_with_psd():
    resolver = StaticResolver({
        "_dmarc.example.com": [("TXT", "v=DMARC1; p=reject")],
        "_dmarc.gov.example": [("TXT", "v=DMARC1; p=reject; psd=y")],
        "_dmarc.agency.gov.example": [("TXT", "v=DMARC1; p=none; psd=n")],
    })
    discovery = Discovery(resolver)

    async def main():
        assert await discovery.organizational_domain("a.b.example.com") == "example.com"
        assert await discovery.organizational_domain("x.dept.gov.example") == "dept.gov.example"
        assert await discovery.organizational_domain("mail.agency.gov.example") == "agency.gov.example"
        assert await discovery.organizational_domain("nothing.invalid") == "nothing.invalid"
    asyncio.run(main())
