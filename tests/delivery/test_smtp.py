"""SmtpTransport against a real DNS server (nsd) and sinks on several loopback addresses."""

from __future__ import annotations

import asyncio
import logging
import random
import socket

import pytest
from test_smtp_sink import Sink

from mailboat import smtp
from mailboat.delivery.connection import Timeouts
from mailboat.delivery.outcome import RecipientState
from mailboat.delivery.smtp import SmtpTransport
from mailboat.mail.envelope import Envelope, Recipient
from mailboat.resolver.dnspython import DnspythonResolver
from mailboat.routing.route import Mx, Relay
from mailboat.server.tls import ensure_self_signed, server_context

ZONE = """\
@ MX 10 down
@ MX 20 up
down A 127.0.0.4
up A 127.0.0.2
equal MX 10 a.equal
equal MX 10 b.equal
a.equal A 127.0.0.2
b.equal A 127.0.0.3
implicit A 127.0.0.3
nullmx MX 0 .
v6only MX 10 six
six AAAA ::1
broken MX 10 nowhere
garbage MX 10 bad
garbage MX 20 up
bad A 127.0.0.5
stall MX 10 slow
slow A 127.0.0.6
"""
FAST = Timeouts(connect=2, greeting=1, command=1, data_init=1, data_block=1, data_done=1, tls_handshake=2)
MESSAGE = b"From: a@client.example\r\nSubject: test\r\n\r\nHello\r\n.dot line\r\n"


def envelope(*rcpts: str, sender: str = "a@client.example") -> Envelope:
    return Envelope(sender, tuple(Recipient(r) for r in rcpts))


async def start_sinks(hosts: list[str], **kw) -> list[Sink]:
    """Sinks on the same port on each address (the MX port is one port for every host)."""
    for _ in range(20):
        first = await Sink.start(hosts[0], 0, **kw)
        sinks = [first]
        try:
            for host in hosts[1:]:
                sinks.append(await Sink.start(host, first.port, **kw))
            return sinks
        except OSError:
            for sink in sinks:
                await sink.stop()
    raise RuntimeError("no common free port")


@pytest.fixture
def dns(nsd):
    return DnspythonResolver([nsd({"example.net": ZONE}).nameserver], timeout=2)


def run(coro):
    return asyncio.run(coro)


async def deliver(transport: SmtpTransport, route, *rcpts: str, message: bytes = MESSAGE, **kw):
    outcomes = await transport.deliver(envelope(*rcpts, **kw), message, [Recipient(r) for r in rcpts], route)
    return {o.recipient: o for o in outcomes}


def test_first_mx_down_second_takes_it(dns) -> None:
    async def main():
        (up,) = await start_sinks(["127.0.0.2"])
        transport = SmtpTransport(dns, "relay.test", mx_port=up.port, timeouts=FAST)
        got = await deliver(transport, Mx("example.net"), "b@example.net")
        await transport.close()
        await up.stop()
        return got["b@example.net"], up

    result, up = run(main())
    assert result.state is RecipientState.DELIVERED
    assert result.host == f"up.example.net[127.0.0.2]:{up.port}"
    assert result.reply_text == "2.0.0 Ok: queued"
    assert up.messages[0].data == MESSAGE and up.messages[0].sender == "a@client.example"


def test_equal_preferences_are_shuffled(dns) -> None:
    async def main():
        a, b = await start_sinks(["127.0.0.2", "127.0.0.3"])
        for seed in range(12):
            transport = SmtpTransport(dns, "relay.test", mx_port=a.port, rng=random.Random(seed))
            await deliver(transport, Mx("equal.example.net"), "b@equal.example.net")
            await transport.close()
        await a.stop()
        await b.stop()
        return len(a.messages), len(b.messages)

    first, second = run(main())
    assert first + second == 12 and first > 0 and second > 0


def test_implicit_mx_and_aaaa_only_host(dns) -> None:
    async def main():
        implicit, six = await start_sinks(["127.0.0.3", "::1"])
        transport = SmtpTransport(dns, "relay.test", mx_port=implicit.port)
        one = await deliver(transport, Mx("implicit.example.net"), "b@implicit.example.net")
        two = await deliver(transport, Mx("v6only.example.net"), "b@v6only.example.net")
        await transport.close()
        await implicit.stop()
        await six.stop()
        return one["b@implicit.example.net"], two["b@v6only.example.net"], six

    one, two, six = run(main())
    assert one.state is two.state is RecipientState.DELIVERED
    assert two.host == f"six.example.net[::1]:{six.port}" and len(six.messages) == 1


@pytest.mark.parametrize("domain, code, status", [
    ("nullmx.example.net", 556, "5.1.10"),
    ("nosuch.example.net", 550, "5.1.2"),
    ("broken.example.net", 550, "5.4.4"),
])
def test_dns_verdicts_are_final(dns, domain: str, code: int, status: str) -> None:
    transport = SmtpTransport(dns, "relay.test", mx_port=1)
    got = run(deliver(transport, Mx(domain), f"b@{domain}"))[f"b@{domain}"]
    assert (got.state, got.reply_code, got.enhanced_status) == (RecipientState.FAILED, code, status)
    # Nobody was connected to: relay=none, and the text is ours, not a server's reply.
    assert got.host == "none" and not got.remote
    assert got.reply_text.startswith(f"{status} connect to {domain}: ")


def test_dns_timeout_defers(nsd) -> None:
    server = nsd({"example.net": ZONE})
    server.stop()
    transport = SmtpTransport(DnspythonResolver([server.nameserver], timeout=0.5), "relay.test")
    got = run(deliver(transport, Mx("example.net"), "b@example.net"))["b@example.net"]
    assert (got.state, got.enhanced_status) == (RecipientState.DEFERRED, "4.4.3")


def test_garbage_server_moves_on_to_the_next_mx(dns) -> None:
    async def main():
        up, = await start_sinks(["127.0.0.2"])
        bad = await Sink.start("127.0.0.5", up.port, mode="garbage")
        transport = SmtpTransport(dns, "relay.test", mx_port=up.port, timeouts=FAST)
        got = await deliver(transport, Mx("garbage.example.net"), "b@garbage.example.net")
        await transport.close()  # no idle session to `up` survives
        await bad.stop()
        await up.stop()
        alone = await deliver(transport, Mx("garbage.example.net"), "c@garbage.example.net")  # both gone now
        return got["b@garbage.example.net"], bad.connections, alone["c@garbage.example.net"]

    got, bad_connections, alone = run(main())
    assert got.state is RecipientState.DELIVERED and bad_connections == 1
    assert alone.state is RecipientState.DEFERRED


def test_stalling_server_times_out_and_defers(dns) -> None:
    async def main():
        slow = await Sink.start("127.0.0.6", 0, mode="stall")
        transport = SmtpTransport(dns, "relay.test", mx_port=slow.port, timeouts=FAST)
        got = await deliver(transport, Mx("stall.example.net"), "b@stall.example.net")
        await slow.stop()
        return got["b@stall.example.net"]

    got = run(main())
    assert got.state is RecipientState.DEFERRED and got.enhanced_status == "4.4.2"
    assert "timed out while awaiting reply to MAIL" in got.reply_text


def test_one_recipient_4xx_another_2xx_and_a_5xx_is_not_retried_elsewhere(dns) -> None:
    def rcpt(event):
        return {"grey": smtp.Reply.make(451, "4.7.1", "greylisted, come back later"),
                "gone": smtp.Reply.make(550, "5.1.1", "user unknown")}.get(event.path.local_part)

    async def main():
        a, b = await start_sinks(["127.0.0.2", "127.0.0.3"])
        a.hooks[smtp.RcptTo] = b.hooks[smtp.RcptTo] = rcpt
        transport = SmtpTransport(dns, "relay.test", mx_port=a.port)
        got = await deliver(transport, Mx("equal.example.net"),
                            *(f"{x}@equal.example.net" for x in ("ok", "grey", "gone")))
        await transport.close()
        await a.stop()
        await b.stop()
        return got, a.messages + b.messages, a.connections + b.connections

    got, messages, connections = run(main())
    assert got["ok@equal.example.net"].state is RecipientState.DELIVERED
    assert got["grey@equal.example.net"].state is RecipientState.DEFERRED
    assert got["grey@equal.example.net"].reply_text == "4.7.1 greylisted, come back later"
    assert got["gone@equal.example.net"].state is RecipientState.FAILED
    assert got["gone@equal.example.net"].reply_code == 550
    assert all(o.remote for o in got.values())  # every reply came from a server
    # The greylisted recipient was offered to the other MX as well, the unknown one was not.
    assert connections == 2 and len(messages) == 1


def test_connection_reuse_and_concurrency_limit() -> None:
    async def main():
        sink, = await start_sinks(["127.0.0.2"])
        transport = SmtpTransport(None, "relay.test", max_per_destination=2)  # type: ignore[arg-type]
        route = Relay(f"127.0.0.2:{sink.port}")
        for n in range(5):
            await deliver(transport, route, f"r{n}@example.org")
        sequential = sink.connections
        results = await asyncio.gather(*(deliver(transport, route, f"c{n}@example.org") for n in range(20)))
        await transport.close()
        await sink.stop()
        return sequential, sink, results

    sequential, sink, results = run(main())
    assert sequential == 1
    assert sink.max_concurrent <= 2 and len(sink.messages) == 25
    assert all(o.state is RecipientState.DELIVERED for r in results for o in r.values())


def test_opportunistic_starttls_and_handshake_failure_falls_back_to_plaintext(tmp_path, caplog) -> None:
    cert, key = ensure_self_signed(str(tmp_path / "tls"), "sink.example")

    async def main():
        secure = await Sink.start("127.0.0.2", 0, tls=server_context(cert, key))
        broken = await Sink.start("127.0.0.3", 0, mode="bad-tls")
        transport = SmtpTransport(None, "relay.test")  # type: ignore[arg-type]
        one = await deliver(transport, Relay(f"127.0.0.2:{secure.port}"), "b@example.org")
        two = await deliver(transport, Relay(f"127.0.0.3:{broken.port}"), "c@example.org")
        await transport.close()
        await secure.stop()
        await broken.stop()
        return one["b@example.org"], two["c@example.org"], secure, broken

    with caplog.at_level(logging.INFO, logger="mailboat.smtp"):
        one, two, secure, broken = run(main())
    assert one.state is two.state is RecipientState.DELIVERED
    assert secure.messages[0].tls and not broken.messages[0].tls and broken.connections == 2
    assert "Untrusted TLS connection established to 127.0.0.2[127.0.0.2]" in caplog.text
    assert "TLSv1.3 with cipher" in caplog.text
    assert "retrying in plaintext" in caplog.text


def test_verify_policy_never_falls_back(tmp_path) -> None:
    cert, key = ensure_self_signed(str(tmp_path / "tls"), "sink.example")

    async def main():
        secure = await Sink.start("127.0.0.2", 0, tls=server_context(cert, key))
        plain = await Sink.start("127.0.0.3", 0)
        transport = SmtpTransport(None, "relay.test", tls_policy="verify")  # type: ignore[arg-type]
        one = await deliver(transport, Relay(f"127.0.0.2:{secure.port}"), "b@example.org")
        two = await deliver(transport, Relay(f"127.0.0.3:{plain.port}"), "c@example.org")
        await secure.stop()
        await plain.stop()
        return one["b@example.org"], two["c@example.org"], secure.messages + plain.messages

    one, two, messages = run(main())
    assert (one.state, one.enhanced_status) == (RecipientState.DEFERRED, "4.7.5")
    assert (two.state, two.enhanced_status) == (RecipientState.DEFERRED, "4.7.4")
    assert messages == []


def test_size_refused_locally_and_bare_lf_normalised() -> None:
    async def main():
        sink, = await start_sinks(["127.0.0.2"])
        transport = SmtpTransport(None, "relay.test")  # type: ignore[arg-type]
        route = Relay(f"127.0.0.2:{sink.port}")
        big = await deliver(transport, route, "b@example.org", message=b"x" * 100 + b"\r\n" * 6_000_000)
        lf = await deliver(transport, route, "c@example.org", message=b"Subject: lf\n\nline\n.\nend")
        await transport.close()
        await sink.stop()
        return big["b@example.org"], lf["c@example.org"], sink.messages

    big, lf, messages = run(main())
    assert (big.state, big.reply_code, big.enhanced_status) == (RecipientState.FAILED, 552, "5.3.4")
    assert not big.remote  # we refused it (the server's SIZE), the server never saw it
    assert lf.state is RecipientState.DELIVERED
    assert messages[0].data == b"Subject: lf\r\n\r\nline\r\n.\r\nend\r\n"


def closed_port(host: str = "127.0.0.1") -> int:
    """A loopback port where nothing listens (bound, then closed: the kernel refuses connects)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def test_connection_refused_is_told_in_our_words_with_no_remote_host() -> None:
    port = closed_port()
    transport = SmtpTransport(None, "relay.test", timeouts=FAST)  # type: ignore[arg-type]
    got = run(deliver(transport, Relay(f"127.0.0.1:{port}"), "b@example.org"))["b@example.org"]
    assert (got.state, got.reply_code, got.host, got.remote) == (RecipientState.DEFERRED, 451, "none", False)
    # Postfix's words; never a Python exception's ("Connect call failed ('127.0.0.1', ...)", "[Errno 111]").
    assert got.reply_text == f"4.4.1 connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused"
