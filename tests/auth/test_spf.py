"""SPF beyond the RFC 7208 suite: the API for MAIL FROM and HELO, limits, timeouts, explanations."""

from __future__ import annotations

import asyncio

from mailboat.auth.results import SpfResult
from mailboat.auth.spf import check_host, check_mail_from
from mailboat.resolver.static import TIMEOUT, StaticResolver


def spf(zone: dict, ip="192.0.2.10", sender="alice@example.com", helo="mx.example.com"):
    return asyncio.run(check_mail_from(StaticResolver(zone), ip, sender, helo, receiver="mx.test.example"))


def test_pass_fail_softfail_neutral():
    for qualifier, result in (("+", "pass"), ("-", "fail"), ("~", "softfail"), ("?", "neutral")):
        zone = {"example.com": [("TXT", f"v=spf1 {qualifier}ip4:192.0.2.0/24 -all")]}
        assert spf(zone).result == result
    assert spf({"example.com": [("TXT", "v=spf1 a -all")]}, ip="198.51.100.1").result is SpfResult.FAIL


def test_null_sender_checks_helo():
    zone = {"mx.example.com": [("TXT", "v=spf1 ip4:192.0.2.10 -all"), ("A", "192.0.2.10")]}
    outcome = spf(zone, sender="")
    assert (outcome.result, outcome.domain) == (SpfResult.PASS, "mx.example.com")


def test_no_record_is_none():
    assert spf({"example.com": [("TXT", "google-site-verification=abc")]}).result is SpfResult.NONE
    assert spf({}).result is SpfResult.NONE


def test_dns_timeout_is_temperror():
    assert spf({"example.com": [(TIMEOUT, "")]}).result is SpfResult.TEMPERROR
    zone = {"example.com": [("TXT", "v=spf1 include:slow.example.net -all")], "slow.example.net": [(TIMEOUT, "")]}
    outcome = spf(zone)
    assert outcome.result is SpfResult.TEMPERROR and "slow.example.net" in outcome.reason


def test_malformed_records_are_permerror():
    for record in ("v=spf1 ip4:300.1.1.1 -all", "v=spf1 foo:bar", "v=spf1 redirect=a.example redirect=b.example",
                   "v=spf1 a:%{z}.example.com", "v=spf1 -all\x00"):
        assert spf({"example.com": [("TXT", record)]}).result is SpfResult.PERMERROR, record


def test_ten_lookup_limit_counts_nested_includes():
    zone = {"example.com": [("TXT", "v=spf1 " + " ".join(f"include:i{i}.example.com" for i in range(11)) + " -all")]}
    for i in range(11):
        zone[f"i{i}.example.com"] = [("TXT", "v=spf1 -all")]
    outcome = spf(zone)
    assert outcome.result is SpfResult.PERMERROR and "10" in outcome.reason


def test_void_lookup_limit():
    zone = {"example.com": [("TXT", "v=spf1 a:n1.example.com a:n2.example.com a:n3.example.com -all")]}
    outcome = spf(zone)
    assert outcome.result is SpfResult.PERMERROR and "void" in outcome.reason


def test_explanation_with_macros():
    zone = {"example.com": [("TXT", "v=spf1 -all exp=why.example.com")],
            "why.example.com": [("TXT", "%{i} is not allowed to send for %{d} (checked by %{r})")]}
    outcome = spf(zone)
    assert outcome.explanation == "192.0.2.10 is not allowed to send for example.com (checked by mx.test.example)"


def test_ipv6_and_mapped_ipv4():
    zone = {"example.com": [("TXT", "v=spf1 ip6:2001:db8::/32 ip4:192.0.2.10 -all")]}
    assert spf(zone, ip="2001:db8::5").result is SpfResult.PASS
    assert spf(zone, ip="::ffff:192.0.2.10").result is SpfResult.PASS


def test_invalid_domain_is_none():
    outcome = asyncio.run(check_host(StaticResolver({}), "192.0.2.1", "localhost", "a@localhost", "x"))
    assert outcome.result is SpfResult.NONE
