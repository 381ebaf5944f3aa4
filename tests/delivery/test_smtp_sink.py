"""A small asyncio SMTP/LMTP sink built on our ServerConnection, for transport tests (and its own checks).

    sink = await Sink.start("127.0.0.2", port)           # port 0: any
    sink.hooks[smtp.RcptTo] = lambda ev: Reply.make(550, "5.1.1", "no") if ... else None
    ... sink.messages -> [Received(sender, recipients, data)], sink.connections, sink.max_concurrent
    await sink.stop()

`mode` picks a misbehaviour: "ok", "garbage" (a non-SMTP greeting), "stall" (greets, then never
answers), "stall-greeting", "bad-tls" (offers STARTTLS, says 220, then sends junk instead of a
handshake; the next session without STARTTLS works).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from mailboat import smtp

OK_FINAL = smtp.Reply.make(250, "2.0.0", "Ok: queued")


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    tls: bool


@dataclass
class Sink:
    host: str
    port: int
    lmtp: bool = False
    mode: str = "ok"
    tls: ssl.SSLContext | None = None
    hooks: dict[type, Callable[[smtp.Event], smtp.Reply | None]] = field(default_factory=dict)
    messages: list[Received] = field(default_factory=list)
    connections: int = 0
    active: int = 0
    max_concurrent: int = 0
    server: asyncio.Server | None = None

    @classmethod
    async def start(cls, host: str, port: int = 0, **kw) -> Sink:
        sink = cls(host, port, **kw)
        sink.server = await asyncio.start_server(sink._handle, host, port)
        sink.port = sink.server.sockets[0].getsockname()[1]
        return sink

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.active += 1
        self.max_concurrent = max(self.max_concurrent, self.active)
        try:
            await self._session(reader, writer)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # (cancelled: the test's event loop is ending)
        finally:
            self.active -= 1
            writer.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "garbage":
            writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            await reader.read(100)
            return
        if self.mode == "stall-greeting":
            await reader.read(100)
            await asyncio.sleep(30)
            return
        bad_tls = self.mode == "bad-tls" and self.connections % 2 == 1
        conn = smtp.ServerConnection("sink.example", lmtp=self.lmtp,
                                     starttls_available=self.tls is not None or bad_tls)
        conn.start()
        chunks: list[bytes] = []
        while True:
            event = conn.next_event()
            writer.write(conn.data_to_send())
            await writer.drain()
            if event is smtp.NEED_DATA:
                data = await reader.read(65536)
                if self.mode == "stall" and conn.helo_name is not None:
                    await asyncio.sleep(30)
                conn.receive_data(data)
                continue
            hook = self.hooks.get(type(event))
            answer = hook(event) if hook else None
            match event:
                case smtp.ConnectionClosed():
                    return
                case smtp.StartTls() if bad_tls:
                    writer.write(b"this is not a TLS handshake\r\n" * 10)
                    await writer.drain()
                    return
                case smtp.StartTls():
                    await writer.start_tls(self.tls)
                    conn.tls_established()
                case smtp.DataChunk(data=chunk):
                    chunks.append(chunk)
                case smtp.MessageComplete():
                    rcpts = [p.address for p in conn.accepted_recipients]
                    mail = conn.mail_from
                    self.messages.append(Received(mail.path.address if mail else "", rcpts, b"".join(chunks),
                                                  conn.tls_active))
                    chunks.clear()
                    for _ in range(len(rcpts) if self.lmtp else 1):
                        conn.send(answer or OK_FINAL)
                case smtp.DecisionEvent():
                    conn.send(answer) if answer is not None else conn.accept()


def test_the_sink_takes_a_message_from_smtplib() -> None:
    import smtplib

    async def main() -> list[Received]:
        sink = await Sink.start("127.0.0.1")
        await asyncio.to_thread(_send, sink.port)
        await sink.stop()
        return sink.messages

    def _send(port: int) -> None:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail("a@x.example", ["b@y.example"], b"Subject: t\r\n\r\nhi\r\n")

    messages = asyncio.run(main())
    assert messages[0].recipients == ["b@y.example"] and messages[0].data.endswith(b"hi\r\n")
