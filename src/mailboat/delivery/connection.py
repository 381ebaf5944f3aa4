"""The asyncio driver of smtp.ClientConnection, shared by the SMTP and LMTP transports.

`ClientSession.open()` connects (TCP with TCP_NODELAY, or a unix socket), reads the greeting,
says EHLO/LHLO and, by policy, upgrades with STARTTLS (RFC 3207); `send()` runs one
transaction; `SessionPool` keeps idle sessions for reuse and bounds concurrent deliveries per
destination. Timeouts are the RFC 5321 §4.5.3.2 client minimums unless configured shorter.
Every network failure becomes a `SessionError` carrying a locally made 4yz reply; the engine's
RemoteProtocolError never leaves this module (STYLE "translate at the boundary"). Its texts are
ours, in Postfix's words, and never a Python exception's: a failed connect is
"connect to mx.example.net[192.0.2.1]:25: Connection refused" (also "Connection timed out",
"No route to host", "Network is unreachable": the system's words for the errno).
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from mailboat.smtp import RemoteProtocolError, Reply
from mailboat.smtp.client import (
    ClientConnection,
    ClientEvent,
    Closed,
    HelloDone,
    TlsReady,
    TransactionDone,
    TransactionResult,
)
from mailboat.smtp.events import NeedData
from mailboat.smtp.outgoing import Transaction
from mailboat.stream import StreamProtocol

__all__ = ["Timeouts", "SessionError", "ClientSession", "SessionPool", "reply_text"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds to wait for each reply (RFC 5321 §4.5.3.2), the connect and the TLS handshake."""

    connect: float = 30.0
    greeting: float = 300.0  # §4.5.3.2.1
    command: float = 300.0  # EHLO, MAIL (§4.5.3.2.2), RCPT (§4.5.3.2.3), RSET, STARTTLS
    data_init: float = 120.0  # §4.5.3.2.4: the 354
    data_block: float = 180.0  # §4.5.3.2.5: each block of content written
    data_done: float = 600.0  # §4.5.3.2.6: the reply after CRLF.CRLF
    tls_handshake: float = 30.0
    quit: float = 10.0

    def for_reply_to(self, command: str | None) -> float:
        match command:
            case "GREETING":
                return self.greeting
            case "DATA":
                return self.data_init
            case "DOT" | "DOT_IGNORED":
                return self.data_done
            case "QUIT":
                return self.quit
            case _:
                return self.command


class SessionError(Exception):
    """The session failed before the server decided (connect, greeting, TLS, timeout, EOF, garbage).

    Attributes:
        reply: a locally made reply for the recipients (4yz: another host or a later try may work).
        tls_failed: the STARTTLS handshake failed (opportunistic TLS then retries in plaintext).
        connected: a connection was made (False: nobody answered, the outcome's host is "none").
    """

    def __init__(self, reply: Reply, *, tls_failed: bool = False, connected: bool = True) -> None:
        super().__init__(str(reply))
        self.reply = reply
        self.tls_failed = tls_failed
        self.connected = connected


def connect_error(exc: BaseException) -> str:
    """Why a connect failed, in the system's words ("Connection refused"), never Python's."""
    if isinstance(exc, TimeoutError) or getattr(exc, "errno", None) == errno.ETIMEDOUT:
        return "Connection timed out"
    if isinstance(exc, socket.gaierror):
        return "host name not found"
    code = getattr(exc, "errno", None)
    if not code:  # asyncio's "Multiple exceptions: ..." (several addresses): the first one's errno
        code = next((e.errno for e in getattr(exc, "exceptions", ()) if getattr(e, "errno", None)), None)
    if not code and exc.__cause__ is not None:
        code = getattr(exc.__cause__, "errno", None)
    return os.strerror(code) if code and code > 0 else "connection failed"


def reply_text(reply: Reply) -> str:
    """A reply as one line for RecipientOutcome.reply_text: "5.1.1 text..." (status first)."""
    return " ".join(part for part in (reply.status_text, *reply.lines) if part)


def _describe_tls(transport: asyncio.BaseTransport) -> str | None:
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    name, _, bits = ssl_object.cipher() or ("?", "", 0)
    return f"{ssl_object.version()} with cipher {name} ({bits}/{bits} bits)"


class ClientSession:
    """One greeted (and maybe encrypted) session; see the module docstring."""

    def __init__(self, stream: StreamProtocol, conn: ClientConnection, label: str, timeouts: Timeouts) -> None:
        self.stream, self.conn, self.label, self.timeouts = stream, conn, label, timeouts
        self.tls: str | None = None  # "TLSv1.3 with cipher ... (256/256 bits)" once encrypted
        self.uses = 0
        self.idle_since = time.monotonic()

    @classmethod
    async def open(cls, *, host: str, port: int = 25, path: str | None = None, label: str, helo_name: str,
                   lmtp: bool = False, timeouts: Timeouts = Timeouts(), starttls: str = "none",
                   ssl_context: ssl.SSLContext | None = None, server_hostname: str | None = None) -> ClientSession:
        """Connect, read the greeting, EHLO/LHLO and (starttls "may"/"verify") STARTTLS.

        Raises SessionError; with starttls "verify", also when STARTTLS is missing or refused.
        """
        loop = asyncio.get_running_loop()
        where = path or f"{host}:{port}"
        try:
            async with asyncio.timeout(timeouts.connect):
                if path is not None:
                    transport, stream = await loop.create_unix_connection(StreamProtocol, path)
                else:
                    transport, stream = await loop.create_connection(StreamProtocol, host, port)
        except (OSError, TimeoutError) as exc:
            # Postfix: "connect to mx.example.net[192.0.2.1]:25: Connection refused"
            name = label if path is None or path in label else f"{label} ({where})"
            raise SessionError(Reply.make(451, "4.4.1", f"connect to {name}: {connect_error(exc)}"),
                               connected=False) from None
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # commands are small writes
        session = cls(stream, ClientConnection(helo_name, lmtp=lmtp), label, timeouts)
        try:
            await session._handshake(starttls, ssl_context, server_hostname)
        except BaseException:
            session.abort()
            raise
        return session

    async def _handshake(self, starttls: str, context: ssl.SSLContext | None, server_hostname: str | None) -> None:
        conn = self.conn
        greeting = await self._next()
        reply = getattr(greeting, "reply", None)  # a Greeting, or the Closed of a 421/554
        if reply is None or reply.code != 220:
            raise self._refused("greeted us with", reply)
        conn.hello()
        hello = await self._next()
        if not isinstance(hello, HelloDone) or hello.reply.code // 100 != 2:
            raise self._refused("refused our EHLO:", getattr(hello, "reply", None))
        if starttls == "none":
            return
        if "STARTTLS" not in conn.capabilities:
            if starttls == "verify":
                raise SessionError(Reply.make(451, "4.7.4", f"TLS is required, but was not offered by {self.label}"))
            return
        conn.starttls()
        ready = await self._next()
        if not isinstance(ready, TlsReady) or ready.reply.code != 220:
            if starttls == "verify" or not isinstance(ready, TlsReady):
                raise self._refused("refused STARTTLS:", getattr(ready, "reply", None), status="4.7.5")
            return  # opportunistic: a refused STARTTLS leaves a usable plaintext session (Postfix "may")
        assert context is not None
        try:
            await self.stream.start_tls(context, self.timeouts.tls_handshake, server_side=False,
                                        server_hostname=server_hostname)
        except (ssl.SSLError, OSError, TimeoutError, ConnectionError) as exc:
            raise SessionError(Reply.make(451, "4.7.5", f"cannot start TLS with {self.label}: handshake failed: "
                                          f"{getattr(exc, 'reason', None) or exc or type(exc).__name__}"),
                               tls_failed=True) from None
        assert self.stream.transport is not None
        self.tls = _describe_tls(self.stream.transport)
        conn.tls_established()
        hello = await self._next()
        if not isinstance(hello, HelloDone) or hello.reply.code // 100 != 2:
            raise self._refused("refused our EHLO after STARTTLS:", getattr(hello, "reply", None))

    def _refused(self, what: str, reply: Reply | None, status: str = "4.3.0") -> SessionError:
        # A refusal at session level is never final for the recipients: the next MX or a later
        # try may work (Postfix smtp_skip_5xx_greeting). The remote text is kept in ours.
        said = str(reply) if reply is not None else "nothing"
        return SessionError(Reply.make(451, status, f"host {self.label} {what} {said}"))

    async def _next(self) -> ClientEvent:
        """The next engine event, reading (under the RFC timeout of the awaited reply) as needed."""
        conn, stream = self.conn, self.stream
        while True:
            try:
                event = conn.next_event()
            except RemoteProtocolError as exc:
                raise SessionError(Reply.make(451, "4.5.0", f"protocol error from {self.label}: {exc.reason}")) \
                    from None
            stream.write(conn.data_to_send())
            if type(event) is not NeedData:
                if isinstance(event, Closed) and event.reply is None:
                    raise SessionError(Reply.make(451, "4.4.2", f"lost connection with {self.label} while "
                                                  f"awaiting reply to {conn.awaiting or 'command'}"))
                return event
            awaiting = conn.awaiting
            try:
                async with asyncio.timeout(self.timeouts.data_block):
                    await stream.drain()
                async with asyncio.timeout(self.timeouts.for_reply_to(awaiting)):
                    data = await stream.read()
            except TimeoutError:
                raise SessionError(Reply.make(451, "4.4.2", f"conversation with {self.label} timed out while "
                                              f"awaiting reply to {awaiting or 'command'}")) from None
            conn.receive_data(data)

    async def send(self, txn: Transaction) -> tuple[TransactionResult, SessionError | None]:
        """Run one transaction: its per-recipient replies, and the session error that ended it, if any."""
        self.uses += 1
        self.conn.start_transaction(txn)
        try:
            while True:
                event = await self._next()
                if isinstance(event, TransactionDone):
                    self.idle_since = time.monotonic()
                    return event.result, None
                if isinstance(event, Closed):  # a 421 after the transaction ended
                    raise SessionError(event.reply or Reply.make(451, "4.4.2", "connection closed"))
        except SessionError as exc:
            self.abort()
            result = self.conn.abort_transaction(exc.reply)
            assert result is not None
            return result, exc
        except BaseException:  # cancelled (the runner's delivery timeout): never reuse
            self.abort()
            raise

    @property
    def reusable(self) -> bool:
        return self.conn.reusable and self.stream.transport is not None and not self.stream.transport.is_closing()

    async def quit(self) -> None:
        """QUIT politely (bounded by the quit timeout), then close."""
        try:
            if self.reusable:
                self.conn.quit()
                async with asyncio.timeout(self.timeouts.quit):
                    while not isinstance(await self._next(), Closed):
                        pass
        except Exception:  # the session is being dropped anyway
            pass
        finally:
            self.abort()

    def abort(self) -> None:
        self.stream.close()


class SessionPool:
    """Idle sessions by key (address, port, TLS policy) and a concurrency limit per destination.

    Args:
        max_idle: seconds an idle session is kept (Postfix smtp_connection_cache_time_limit: 2s;
            longer suits bursts into one domain; servers drop idle clients after minutes).
        max_uses: transactions per session before it is retired (Postfix smtp_connection_reuse_count_limit).
        max_per_destination: deliveries at once per destination (Postfix default_destination_concurrency_limit).
    """

    def __init__(self, *, max_idle: float = 10.0, max_uses: int = 100, max_per_destination: int = 20) -> None:
        self.max_idle, self.max_uses, self.max_per_destination = max_idle, max_uses, max_per_destination
        self._idle: dict[tuple, list[ClientSession]] = {}
        self._limits: dict[str, list] = {}  # destination -> [Semaphore, users]
        self._closing: set[asyncio.Task] = set()

    def take(self, key: tuple) -> ClientSession | None:
        sessions = self._idle.get(key)
        now = time.monotonic()
        while sessions:
            session = sessions.pop()
            if session.reusable and now - session.idle_since < self.max_idle:
                return session
            self._retire(session)
        self._idle.pop(key, None)
        return None

    def give(self, key: tuple, session: ClientSession) -> None:
        sessions = self._idle.setdefault(key, [])
        if not session.reusable or session.uses >= self.max_uses or len(sessions) >= self.max_per_destination:
            self._retire(session)
            return
        sessions.append(session)
        asyncio.get_running_loop().call_later(self.max_idle, self._expire, key)

    def _expire(self, key: tuple) -> None:
        now = time.monotonic()
        sessions = self._idle.get(key, [])
        keep = [s for s in sessions if now - s.idle_since < self.max_idle and s.reusable]
        for session in sessions:
            if session not in keep:
                self._retire(session)
        if keep:
            self._idle[key] = keep
        else:
            self._idle.pop(key, None)

    def _retire(self, session: ClientSession) -> None:
        task = asyncio.get_running_loop().create_task(session.quit())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def transact(self, key: tuple, opener: Callable[[], Awaitable[ClientSession]], txn: Transaction
                       ) -> tuple[TransactionResult, SessionError | None, ClientSession]:
        """Run ``txn`` on an idle session for ``key`` or a new one from ``opener()`` (may raise SessionError).

        A cached session that fails before any reply (the server dropped it while idle) is
        replaced once by a fresh one: the server decided nothing, so nothing is sent twice.
        """
        session = self.take(key)
        reused = session is not None
        if session is None:
            session = await opener()
        result, error = await session.send(txn)
        if error is not None and reused and not any(result.remote):
            session = await opener()
            result, error = await session.send(txn)
        if error is None:
            self.give(key, session)
        return result, error, session

    async def limit(self, destination: str, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work()`` holding one of the destination's ``max_per_destination`` slots."""
        entry = self._limits.setdefault(destination, [asyncio.Semaphore(self.max_per_destination), 0])
        entry[1] += 1
        try:
            async with entry[0]:
                return await work()
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._limits[destination]

    async def close(self) -> None:
        """QUIT every idle session (at shutdown)."""
        for sessions in self._idle.values():
            for session in sessions:
                self._retire(session)
        self._idle.clear()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
