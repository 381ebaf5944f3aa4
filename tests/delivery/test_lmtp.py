"""LmtpTransport against our own LMTP sink: one outcome per recipient (RFC 2033 §4.2)."""

from __future__ import annotations

import asyncio

import pytest
from test_smtp_sink import Sink

from mailboat import smtp
from mailboat.delivery.lmtp import LmtpTransport, parse_target
from mailboat.delivery.outcome import RecipientState
from mailboat.mail.envelope import Envelope, Recipient
from mailboat.routing.route import Lmtp, Mx


def test_per_recipient_outcomes_and_session_reuse() -> None:
    async def main():
        sink = await Sink.start("127.0.0.1", 0, lmtp=True)
        sink.hooks[smtp.RcptTo] = lambda e: smtp.Reply.make(550, "5.1.1", "unknown user") \
            if e.path.local_part == "nobody" else None
        transport = LmtpTransport("mx.test", target=f"127.0.0.1:{sink.port}")
        rcpts = [Recipient("alice@example.com"), Recipient("nobody@example.com"), Recipient("bob@example.com")]
        first = await transport.deliver(Envelope("s@x.example", tuple(rcpts)), b"Subject: a\r\n\r\nhi\r\n", rcpts,
                                        Lmtp(""))
        second = await transport.deliver(Envelope("s@x.example", tuple(rcpts[:1])), b"again\r\n", rcpts[:1],
                                         Lmtp(f"127.0.0.1:{sink.port}"))
        await transport.close()
        await sink.stop()
        return first, second, sink

    first, second, sink = asyncio.run(main())
    states = {o.recipient: (o.state, o.reply_code) for o in first}
    assert states == {"alice@example.com": (RecipientState.DELIVERED, 250),
                      "nobody@example.com": (RecipientState.FAILED, 550),
                      "bob@example.com": (RecipientState.DELIVERED, 250)}
    assert first[0].host == f"127.0.0.1[127.0.0.1]:{sink.port}"
    assert second[0].state is RecipientState.DELIVERED and sink.connections == 1
    assert sink.messages[0].recipients == ["alice@example.com", "bob@example.com"]


def test_lmtp_server_down_defers_everyone(tmp_path) -> None:
    transport = LmtpTransport("mx.test")
    rcpts = [Recipient("a@example.com"), Recipient("b@example.com")]
    got = asyncio.run(transport.deliver(Envelope("s@x", tuple(rcpts)), b"x\r\n", rcpts,
                                        Lmtp(f"unix:{tmp_path}/missing.sock")))
    assert [(o.state, o.enhanced_status) for o in got] == [(RecipientState.DEFERRED, "4.4.1")] * 2
    # Nobody answered (Postfix relay=none); the text says where and why, in the system's words.
    assert got[0].host == "none" and not got[0].remote
    assert got[0].reply_text == f"4.4.1 connect to lmtp[{tmp_path}/missing.sock]: No such file or directory"


def test_targets_and_wrong_route() -> None:
    assert parse_target("unix:/run/dovecot/lmtp") == ("/run/dovecot/lmtp", "", 0)
    assert parse_target("127.0.0.1:24") == (None, "127.0.0.1", 24)
    assert parse_target("[::1]:2424") == (None, "::1", 2424)
    with pytest.raises(TypeError):
        asyncio.run(LmtpTransport("mx").deliver(Envelope("s@x", (Recipient("a@b"),)), b"", [Recipient("a@b")],
                                                Mx("b")))
