"""The RFC 7208 test suite (pyspf project, tests/data/spf/rfc7208-tests.yml) against our check_host().

Each scenario's zone data is served by an in-memory StaticResolver, following the conventions of
the suite's own driver (pyspf test/testspf.py): SPF-type records stand in for TXT when a name has
no TXT records, "TXT: NONE" means the name exists without TXT, "TIMEOUT" makes queries fail
temporarily, and names starting with "error." that are absent time out.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml  # noqa: E402  (the test extra installs it)

from mailboat.auth.spf import check_host  # noqa: E402
from mailboat.resolver.base import TempDnsError  # noqa: E402
from mailboat.resolver.static import TIMEOUT, StaticResolver  # noqa: E402

SUITE = Path(__file__).parent.parent / "data" / "spf" / "rfc7208-tests.yml"


class SuiteResolver(StaticResolver):
    """StaticResolver plus the suite's rule that absent "error." names time out."""

    def _lookup(self, name: str, rtype: str) -> list[str]:
        key = name.rstrip(".").lower()
        if key.startswith("error.") and key not in self._zone:
            raise TempDnsError(name)
        # The driver's TIMEOUT entry times out only the types with no record listed before it.
        records = self._zone.get(key, [])
        if (TIMEOUT, "") in records:
            before = records[: records.index((TIMEOUT, ""))]
            if not any(t == rtype for t, _ in before):
                raise TempDnsError(name)
            self.queries.append((rtype, name))
            return [v for t, v in before if t == rtype]
        return super()._lookup(name, rtype)


def _zone(data: dict) -> SuiteResolver:
    resolver = SuiteResolver()
    for name, records in (data or {}).items():
        resolver._zone.setdefault(name.rstrip(".").lower(), [])
        records = records or []
        has_txt = any(isinstance(r, dict) and "TXT" in r for r in records)
        for record in records:
            if record == "TIMEOUT":
                resolver.add(name, TIMEOUT)
                continue
            (rtype, value), = record.items()
            if rtype == "MX":
                value = f"{value[0]} {value[1]}"
            elif isinstance(value, list):
                value = "".join(value)  # multi-string TXT: concatenated (RFC 7208 §3.3)
            value = str(value)
            if rtype == "SPF":
                if not has_txt:  # the RFC 4408 type-99 record, duplicated as TXT by the driver
                    resolver.add(name, "TXT", value)
                continue
            if value == "NONE":
                continue
            if value == "TIMEOUT":
                resolver.add(name, rtype, TIMEOUT)
                continue
            if rtype in ("A", "AAAA"):
                try:
                    import ipaddress
                    ipaddress.ip_address(value)
                except ValueError:
                    continue  # the suite has a few deliberately broken address records
            resolver.add(name, rtype, value)
    return resolver


def _cases():
    with SUITE.open("rb") as fp:
        for scenario in yaml.safe_load_all(fp):
            for name, test in scenario["tests"].items():
                yield pytest.param(scenario["zonedata"], test, id=name)


@pytest.mark.parametrize("zonedata,test", list(_cases()))
def test_rfc7208(zonedata, test):
    resolver = _zone(zonedata)
    sender = test["mailfrom"]
    domain = sender.rpartition("@")[2] if sender else test["helo"]
    if not sender:
        sender = f"postmaster@{test['helo']}"
    outcome = asyncio.run(check_host(resolver, test["host"], domain, sender, test["helo"],
                                     default_explanation="DEFAULT"))
    expected = test["result"] if isinstance(test["result"], list) else [test["result"]]
    assert outcome.result in expected, (
        f"{outcome.result} ({outcome.reason}); expected {expected}: {test.get('description', '')}")
    if "explanation" in test:
        assert outcome.explanation == test["explanation"]
