"""Opening the `[[listener]]` sockets and starting one Session task per connection."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl

from mailboat.server.session import ListenerSettings, ServerContext, Session
from mailboat.server.stream import StreamProtocol

log = logging.getLogger("mailboat.master")


class Listener:
    """One listening socket (TCP host:port or a unix socket path)."""

    def __init__(self, ctx: ServerContext, settings: ListenerSettings, endpoint: tuple[str, int] | str) -> None:
        self.ctx = ctx
        self.settings = settings
        self.endpoint = endpoint
        self.server: asyncio.base_events.Server | None = None
        self.sessions: set[asyncio.Task[None]] = set()

    def _connection(self, stream: StreamProtocol) -> None:
        task = asyncio.get_running_loop().create_task(Session(self.ctx, self.settings, stream).run())
        self.sessions.add(task)
        task.add_done_callback(self.sessions.discard)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if self.settings.tls == "implicit":
            tls = self.ctx.ssl_context
            if tls is None:
                raise RuntimeError("an implicit-TLS listener needs a certificate")

        def factory() -> StreamProtocol:
            return StreamProtocol(self._connection)

        if isinstance(self.endpoint, str):
            if os.path.exists(self.endpoint):
                os.unlink(self.endpoint)
            self.server = await loop.create_unix_server(
                factory, self.endpoint, ssl=tls, backlog=1024,
                ssl_handshake_timeout=self.ctx.limits.tls_handshake_timeout if tls else None,
            )
        else:
            host, port = self.endpoint
            self.server = await loop.create_server(
                factory, host, port, ssl=tls, backlog=1024, reuse_address=True,
                family=socket.AF_INET6 if ":" in host else socket.AF_UNSPEC,
                ssl_handshake_timeout=self.ctx.limits.tls_handshake_timeout if tls else None,
            )

    @property
    def bound(self) -> str:
        """Where it really listens (port 0 in the configuration becomes the chosen port)."""
        if isinstance(self.endpoint, str):
            return f"unix:{self.endpoint}"
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def stop(self, grace: float = 5.0) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        if self.sessions:
            _, pending = await asyncio.wait(list(self.sessions), timeout=grace)
            for task in pending:
                task.cancel()
