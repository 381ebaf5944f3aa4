"""server.auth.AuthLimiter: counted per client address and per (address, account), never per
account alone, over a sliding window read from an injected clock; bounded in memory."""

from __future__ import annotations

from mailboat.server.auth import IP_FAILURES, PAIR_FAILURES, WINDOW, AuthLimiter, client_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_guessing_one_account_from_one_address_never_locks_the_account_elsewhere():
    clock = Clock()
    limiter = AuthLimiter(clock=clock)
    for _ in range(PAIR_FAILURES):
        assert not limiter.blocked("192.0.2.1", "alice@example.com")
        limiter.failed("192.0.2.1", "alice@example.com")
    assert limiter.blocked("192.0.2.1", "alice@example.com")
    assert not limiter.blocked("192.0.2.1", "bob@example.com")  # the address may still log in as others
    assert not limiter.blocked("192.0.2.1")
    for _ in range(10 * IP_FAILURES):  # however much the stranger keeps at it
        limiter.failed("192.0.2.1", "alice@example.com")
    assert not limiter.blocked("198.51.100.7", "alice@example.com")  # alice, from her own address
    assert not limiter.blocked("198.51.100.7")


def test_one_address_failing_for_many_accounts_is_throttled_until_the_window_passes():
    clock = Clock()
    limiter = AuthLimiter(clock=clock)
    for n in range(IP_FAILURES):
        assert not limiter.blocked("192.0.2.1")
        limiter.failed("192.0.2.1", f"user{n}@example.com")
        clock.now += 1
    assert limiter.blocked("192.0.2.1") and limiter.blocked("192.0.2.1", "carol@example.com")
    assert not limiter.blocked("192.0.2.2")
    clock.now += WINDOW - IP_FAILURES  # the first failure leaves the window: one below the limit
    assert not limiter.blocked("192.0.2.1")
    limiter.failed("192.0.2.1", None)
    assert limiter.blocked("192.0.2.1")
    clock.now += WINDOW
    assert not limiter.blocked("192.0.2.1")
    limiter.failed("192.0.2.9", None)
    assert len(limiter) == 1  # the expired keys were forgotten


def test_ipv6_clients_count_per_84_network_and_mapped_ipv4_as_ipv4():
    assert client_key("2001:db8:1:2:3:4:5:6") == client_key("2001:db8:1:2:3:fff:ffff:ffff") == "2001:db8:1:2:3::/84"
    assert client_key("2001:db8:1:2:3:1000::") != client_key("2001:db8:1:2:3::")
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    limiter = AuthLimiter(clock=Clock(), ip_failures=3)
    for host in range(3):
        limiter.failed(f"2001:db8::{host + 1}", None)
    assert limiter.blocked("2001:db8::99")


def test_state_is_bounded():
    limiter = AuthLimiter(clock=Clock(), max_keys=100)
    for n in range(10_000):
        limiter.failed(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", f"user{n}@example.com")
    assert len(limiter) == 100
    for _ in range(1000):
        limiter.failed("192.0.2.1", "alice@example.com")
    assert max(len(times) for times in limiter._failures.values()) == IP_FAILURES
    assert limiter.blocked("192.0.2.1", "alice@example.com")
