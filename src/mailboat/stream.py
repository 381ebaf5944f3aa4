"""A minimal stream over asyncio.Protocol that we own end to end, STARTTLS included; used by
both the inbound sessions (server/) and the outbound client (delivery/connection.py).

Why not asyncio.StreamReader: at STARTTLS, every plaintext byte received after the STARTTLS
line must be discarded (CVE-2011-0411, aiosmtpd CVE-2024-34083), and StreamReader keeps its
buffer private. Here `start_tls()` clears our own buffer and then switches the transport, with
no await in between, so nothing read before the handshake can be taken as encrypted input (the
server's CVE-2011-0411 and the client's reply injection alike).
Reads return everything buffered at once (bulk parsing is what makes DATA fast).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import cast


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class StreamProtocol(asyncio.Protocol):
    def __init__(self, on_connect: Callable[[StreamProtocol], None] | None = None) -> None:
        self._on_connect = on_connect
        self._loop = asyncio.get_running_loop()
        self._buffer = bytearray()
        self._eof = False
        self._waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._reading_paused = False
        self.transport: asyncio.Transport | None = None

    # -- asyncio.Protocol callbacks ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream protocol gets a stream transport
        if self._on_connect is not None:
            self._on_connect(self)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > 1 << 20 and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()  # the session reads it out; bounded memory
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._wake()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- what the session and the client use ------------------------------------------------
    @property
    def readable(self) -> bool:
        """Bytes or the end of the stream are waiting: read() returns at once, with no timer."""
        return bool(self._buffer) or self._eof

    @property
    def write_paused(self) -> bool:
        """The transport pushed back (its buffer passed the high-water mark): drain() waits.

        While False, drain() returns at once, so a caller on the hot path may skip the await.
        """
        return self._paused

    @property
    def peername(self) -> object:
        return self.transport.get_extra_info("peername") if self.transport else None

    def ssl_object(self) -> ssl.SSLObject | None:
        return self.transport.get_extra_info("ssl_object") if self.transport else None

    async def read(self, timeout: float | None = None) -> bytes:
        """Everything received so far; b"" at end of stream.

        `timeout` (seconds): raise TimeoutError when nothing has arrived by then. One
        TimerHandle per wait, and none at all when bytes are already buffered; cheaper than
        an asyncio.timeout() context around every read (that costs a Timeout object, a
        reschedule and task cancel/uncancel bookkeeping on each command).
        """
        deadline = None
        while not self._buffer and not self._eof:
            if timeout is not None and deadline is None:
                if timeout <= 0:
                    raise TimeoutError
                deadline = self._loop.time() + timeout
            waiter = self._waiter = self._loop.create_future()
            timer = None
            if deadline is not None:
                timer = self._loop.call_at(deadline, _expire, waiter)
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        data = bytes(self._buffer)
        self._buffer.clear()
        if self._reading_paused and self.transport is not None and not self._eof:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    async def wait_readable(self, timeout: float) -> bool:
        """True as soon as bytes (or EOF) are there to read, False after `timeout` seconds of
        silence. Consumes nothing (the pregreet test peeks with it)."""
        if not self._buffer and not self._eof:
            self._waiter = self._loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._waiter), timeout)
            except TimeoutError:
                pass
            finally:
                self._waiter = None
        return bool(self._buffer) or self._eof

    def write(self, data: bytes) -> None:
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def drain(self) -> None:
        if self._paused and not self._eof:
            self._drain_waiter = self._loop.create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None

    async def start_tls(self, context: ssl.SSLContext, timeout: float, *, server_side: bool = True,
                        server_hostname: str | None = None) -> None:
        """Discard buffered plaintext, then hand the socket to TLS (RFC 3207 §4.2)."""
        assert self.transport is not None
        self._buffer.clear()
        self._reading_paused = False  # start_tls() takes over (and resumes) reading
        transport = await self._loop.start_tls(
            self.transport, self, context, server_side=server_side, server_hostname=server_hostname,
            ssl_handshake_timeout=timeout,
        )
        # No clear() here: what arrived since the handshake finished is the peer's first
        # encrypted data (a client's EHLO), read before this coroutine resumed.
        self.transport = transport

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
