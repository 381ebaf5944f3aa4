"""MX resolution (RFC 5321 §5.1, RFC 7505) against a real nsd, plus a few injected DNS failures."""

from __future__ import annotations

import asyncio
import random

import pytest

from mailboat.resolver.base import TempDnsError
from mailboat.resolver.dnspython import DnspythonResolver
from mailboat.routing.mx import (
    Destination,
    DnsTemporaryFailure,
    DomainNotFound,
    NoUsableHost,
    NullMx,
    resolve_destinations,
    resolve_smarthost,
    split_hostport,
)

ZONE = """\
@ MX 20 backup
@ MX 10 primary
primary A 127.0.0.2
primary AAAA ::1
backup A 127.0.0.3
equal MX 5 a.equal
equal MX 5 b.equal
equal MX 5 c.equal
a.equal A 127.0.0.11
b.equal A 127.0.0.12
c.equal A 127.0.0.13
implicit A 127.0.0.20
implicit AAAA ::1
nullmx MX 0 .
six MX 10 v6
v6 AAAA ::1
broken MX 10 nowhere
half MX 10 nowhere
half MX 20 backup
noaddr TXT "nothing here"
"""


@pytest.fixture(scope="module")
def resolver(tmp_path_factory):
    from dnsserver import start_nsd

    server = start_nsd(tmp_path_factory.mktemp("mxdns"), {"example.net": ZONE})
    yield DnspythonResolver([server.nameserver], timeout=2)
    server.stop()


def resolve(resolver, domain: str, port: int = 25, **kw) -> list[Destination]:
    return asyncio.run(resolve_destinations(resolver, domain, port, **kw))


def test_preference_order_and_every_address_of_a_host_first(resolver) -> None:
    got = resolve(resolver, "example.net", 2525)
    assert [(d.host, d.ip, d.preference) for d in got] == [
        ("primary.example.net", "127.0.0.2", 10), ("primary.example.net", "::1", 10),
        ("backup.example.net", "127.0.0.3", 20)]
    assert got[0].label == "primary.example.net[127.0.0.2]:2525"
    six_first = resolve(resolver, "example.net", ipv6_first=True)
    assert [d.ip for d in six_first][:2] == ["::1", "127.0.0.2"]


def test_equal_preferences_are_shuffled_with_the_injected_rng(resolver) -> None:
    orders = {tuple(d.host[0] for d in resolve(resolver, "equal.example.net", rng=random.Random(seed)))
              for seed in range(30)}
    assert len(orders) > 2 and all(sorted(order) == ["a", "b", "c"] for order in orders)


def test_implicit_mx_null_mx_aaaa_only(resolver) -> None:
    assert [d.ip for d in resolve(resolver, "implicit.example.net")] == ["127.0.0.20", "::1"]
    assert resolve(resolver, "implicit.example.net")[0].preference == 0
    assert [d.ip for d in resolve(resolver, "six.example.net")] == ["::1"]
    with pytest.raises(NullMx) as null:
        resolve(resolver, "nullmx.example.net")
    assert (null.value.code, null.value.status, null.value.permanent) == (556, "5.1.10", True)


def test_nxdomain_broken_mx_and_no_address(resolver) -> None:
    with pytest.raises(DomainNotFound) as nx:
        resolve(resolver, "nosuch.example.net")
    assert nx.value.reply_text.startswith("5.1.2 domain nosuch.example.net does not exist")
    with pytest.raises(NoUsableHost):
        resolve(resolver, "broken.example.net")
    with pytest.raises(NoUsableHost):
        resolve(resolver, "noaddr.example.net")  # exists, no MX, no A/AAAA
    # One broken MX host among good ones is skipped.
    assert [d.host for d in resolve(resolver, "half.example.net")] == ["backup.example.net"]


def test_address_literals_and_smarthosts(resolver) -> None:
    assert resolve(resolver, "[192.0.2.1]", 25) == [Destination("[192.0.2.1]", "192.0.2.1", 25)]
    assert resolve(resolver, "[IPv6:2001:db8::1]")[0].ip == "2001:db8::1"
    with pytest.raises(NoUsableHost):
        resolve(resolver, "[300.1.1.1]")
    got = asyncio.run(resolve_smarthost(resolver, "backup.example.net:2525"))
    assert got == [Destination("backup.example.net", "127.0.0.3", 2525)]
    assert asyncio.run(resolve_smarthost(resolver, "[::1]:26")) == [Destination("::1", "::1", 26)]
    with pytest.raises(DnsTemporaryFailure):  # a smarthost problem is the operator's: defer
        asyncio.run(resolve_smarthost(resolver, "nowhere.example.net:25"))
    assert split_hostport("mx.example:587", 25) == ("mx.example", 587)
    assert split_hostport("[mx.example]", 25) == ("mx.example", 25)


class FlakyResolver:
    """MX answers, but address look-ups of one host time out."""

    async def mx(self, domain):
        if domain == "timeout.example":
            raise TempDnsError("timed out")
        return [(10, "slow.example"), (20, "fine.example")]

    async def a(self, name):
        if name == "slow.example":
            raise TempDnsError("SERVFAIL")
        return ["192.0.2.7"] if name == "fine.example" else []

    async def aaaa(self, name):
        return []


def test_temporary_failures_defer_and_never_bounce() -> None:
    with pytest.raises(DnsTemporaryFailure) as exc:
        resolve(FlakyResolver(), "timeout.example")
    assert (exc.value.code, exc.value.status) == (451, "4.4.3")
    # The slow host is skipped while another MX has an address.
    assert [d.host for d in resolve(FlakyResolver(), "other.example")] == ["fine.example"]


def test_mailboat_route_command_uses_the_real_router_and_dns(tmp_path, resolver) -> None:
    import json
    import subprocess
    import sys

    nameserver = resolver._resolver.nameservers[0]
    port = resolver._resolver.nameserver_ports[nameserver]
    config = tmp_path / "mailboat.toml"
    config.write_text(f'hostname = "mx.test.example"\ndata_dir = "{tmp_path}/data"\n'
                      '[domains]\nlocal = ["example.com"]\n'
                      f'[relay]\nmx_port = 2525\n[dns]\nnameservers = ["{nameserver}:{port}"]\n')

    def route(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mailboat", "route", *args, "--config", str(config)],
                              capture_output=True, text=True, timeout=60)

    text = route("bob@example.net")
    assert text.returncode == 0, text.stderr
    assert "relay to the MX hosts of example.net (port 2525, TLS opportunistic)" in text.stdout
    assert "1. MX 10  primary.example.net:2525  127.0.0.2, ::1" in text.stdout
    assert "2. MX 20  backup.example.net:2525  127.0.0.3" in text.stdout
    as_json = json.loads(route("bob@example.net", "--json").stdout)
    assert [h["host"] for h in as_json["routes"][0]["hosts"]] == ["primary.example.net", "backup.example.net"]
    for domain, words in (("nosuch.example.net", "bounced with 550 5.1.2"),
                          ("nullmx.example.net", "bounced with 556 5.1.10")):
        failed = route(f"bob@{domain}")
        assert failed.returncode == 1 and words in failed.stdout and "Traceback" not in failed.stderr
    local = route("postmaster@example.com")
    assert local.returncode == 0 and "Maildir" in local.stdout
    assert not (tmp_path / "data").exists()  # a dry run writes nothing
