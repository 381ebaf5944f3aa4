"""SmtpTransport and LmtpTransport against Postfix's smtp-sink, a real peer we did not write."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from mailboat.delivery.lmtp import LmtpTransport
from mailboat.delivery.outcome import RecipientState
from mailboat.delivery.smtp import SmtpTransport
from mailboat.mail.envelope import Envelope, Recipient
from mailboat.routing.route import Lmtp, Relay

from mbtest import need_tool

pytestmark = pytest.mark.interop


class SmtpSink:
    def __init__(self, *flags: str, address: str = "127.0.0.7") -> None:
        binary = need_tool("smtp-sink")
        self.dump = Path(tempfile.mkdtemp(prefix="mailboat-sink-"))
        self.dump.chmod(0o777)  # smtp-sink drops to `nobody` under root
        with socket.socket() as sock:
            sock.bind((address, 0))
            self.port = sock.getsockname()[1]
        user = ["-u", "nobody"] if os.getuid() == 0 else []
        self.proc = subprocess.Popen([binary, *user, *flags, "-d", f"{self.dump}/%M.", f"{address}:{self.port}", "50"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.target = f"{address}:{self.port}"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection((address, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("smtp-sink did not start")

    def dumps(self) -> list[bytes]:
        """The transactions the sink received. smtp-sink creates a transaction's dump file at
        MAIL and removes it again when the transaction ends without DATA; a look in between
        finds it empty (seen 2 times in about 20 runs), so empty files are not transactions."""
        return [data for p in sorted(self.dump.iterdir()) if (data := p.read_bytes())]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)
        shutil.rmtree(self.dump, ignore_errors=True)


@pytest.fixture
def smtp_sink():
    sinks: list[SmtpSink] = []

    def start(*flags: str) -> SmtpSink:
        sinks.append(SmtpSink(*flags))
        return sinks[-1]

    yield start
    for sink in sinks:
        sink.stop()


async def send(transport, route, count: int, message: bytes, sender: str = "s@x.example",
               rcpt: str = "b{}@example.org"):
    results = []
    for n in range(count):
        rcpts = [Recipient(rcpt.format(n), notify=("FAILURE",), orcpt=f"rfc822;{rcpt.format(n)}")]
        results += await transport.deliver(Envelope(sender, tuple(rcpts)), message, rcpts, route)
    await transport.close()
    return results


def test_pipelined_8bit_dsn_delivery_with_reuse(smtp_sink) -> None:
    sink = smtp_sink()
    message = "Subject: hi\r\n\r\nbødy\n.starts with a dot\r\n".encode()
    results = asyncio.run(send(SmtpTransport(None, "relay.test"), Relay(sink.target), 20, message))  # type: ignore[arg-type]
    assert all(o.state is RecipientState.DELIVERED and o.reply_text == "2.0.0 Ok" for o in results)
    dumps = sink.dumps()
    assert len(dumps) == 20
    assert all(b"X-Mail-Args: <s@x.example> BODY=8BITMIME" in d for d in dumps)
    assert all(b"NOTIFY=FAILURE ORCPT=rfc822;b" in d for d in dumps)
    # smtp-sink un-stuffs the dot: exactly one is left; the bare LF arrived as a line break.
    assert all("bødy".encode() in d and b"\n.starts with a dot" in d and b"..starts" not in d for d in dumps)


def test_no_esmtp_falls_back_to_helo_and_refuses_smtputf8_locally(smtp_sink) -> None:
    sink = smtp_sink("-e")
    transport = SmtpTransport(None, "relay.test")  # type: ignore[arg-type]
    plain = asyncio.run(send(transport, Relay(sink.target), 1, b"Subject: a\r\n\r\nb\r\n"))
    utf8 = asyncio.run(send(SmtpTransport(None, "relay.test"), Relay(sink.target), 1, b"x\r\n",  # type: ignore[arg-type]
                            rcpt="bø{}@example.org"))
    assert plain[0].state is RecipientState.DELIVERED
    assert b"X-Client-Proto: SMTP" in sink.dumps()[0]
    assert (utf8[0].state, utf8[0].reply_code, utf8[0].enhanced_status) == (RecipientState.FAILED, 550, "5.6.7")


def test_lock_step_and_soft_rejected_rcpt(smtp_sink) -> None:
    sink = smtp_sink("-r", "RCPT")  # implies no PIPELINING
    results = asyncio.run(send(SmtpTransport(None, "relay.test"), Relay(sink.target), 2, b"x\r\n"))  # type: ignore[arg-type]
    assert [(o.state, o.reply_code // 100) for o in results] == [(RecipientState.DEFERRED, 4)] * 2
    assert sink.dumps() == []


def test_lmtp_against_smtp_sink(smtp_sink) -> None:
    sink = smtp_sink("-L")
    results = asyncio.run(send(LmtpTransport("mx.test"), Lmtp(sink.target), 3, b"Subject: l\r\n\r\nl\r\n"))
    assert all(o.state is RecipientState.DELIVERED for o in results)
    assert all(b"X-Client-Proto: LMTP" in d for d in sink.dumps()) and len(sink.dumps()) == 3
