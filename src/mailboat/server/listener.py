"""Opening the `[[listener]]` sockets and starting one Session task per connection.

A Listener is a service (mailboat/lifecycle.py): start() binds (or takes over the sockets bound
before), stop() closes them and tells idle clients 421, drain() lets the sessions in the middle
of a message finish.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl

from mailboat.server.session import ListenerSettings, ServerContext, Session
from mailboat.stream import StreamProtocol

log = logging.getLogger("mailboat.master")


class Listener:
    """One listening socket (TCP host:port or a unix socket path)."""

    def __init__(self, ctx: ServerContext, settings: ListenerSettings, endpoint: tuple[str, int] | str,
                 sockets: list[socket.socket] | None = None) -> None:
        self.ctx = ctx
        self.settings = settings
        self.endpoint = endpoint
        # Bound before the worker processes were forked (daemon.py, [server] workers > 1):
        # every worker accepts on the same sockets and the kernel hands each connection to one.
        self.sockets = sockets
        self.server: asyncio.base_events.Server | None = None
        self.extra_servers: list[asyncio.base_events.Server] = []
        self.sessions: dict[asyncio.Task[None], Session] = {}
        self.paused = False
        self.name = f"listener {settings.kind} {_label(endpoint)}"
        self.grace = SESSION_GRACE

    def _connection(self, stream: StreamProtocol) -> None:
        session = Session(self.ctx, self.settings, stream)
        task = asyncio.get_running_loop().create_task(session.run())
        self.sessions[task] = session
        task.add_done_callback(lambda done: self.sessions.pop(done, None))

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if self.settings.tls == "implicit":
            tls = self.ctx.ssl_context
            if tls is None:
                raise RuntimeError("an implicit-TLS listener needs a certificate")

        def factory() -> StreamProtocol:
            return StreamProtocol(self._connection)

        handshake = self.ctx.limits.tls_handshake_timeout if tls else None
        if self.sockets:
            # Each server gets a duplicate of the shared socket: closing it (pause()) stops this
            # process accepting, while the socket and its queue of connections stay with the
            # other workers and with us for resume().
            servers = []
            for sock in self.sockets:
                if sock.family == socket.AF_UNIX:
                    servers.append(await loop.create_unix_server(
                        factory, sock=sock.dup(), ssl=tls, ssl_handshake_timeout=handshake))
                else:
                    servers.append(await loop.create_server(
                        factory, sock=sock.dup(), ssl=tls, ssl_handshake_timeout=handshake))
            self.server, self.extra_servers = servers[0], servers[1:]
            self.paused = False
            return
        if isinstance(self.endpoint, str):
            if os.path.exists(self.endpoint):
                os.unlink(self.endpoint)
            self.server = await loop.create_unix_server(
                factory, self.endpoint, ssl=tls, backlog=4096,
                ssl_handshake_timeout=self.ctx.limits.tls_handshake_timeout if tls else None,
            )
        else:
            host, port = self.endpoint
            self.server = await loop.create_server(
                factory, host, port, ssl=tls, backlog=4096, reuse_address=True,
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

    def pause(self) -> None:
        """Stop accepting on a shared socket (worker processes): connections wait in the
        kernel's queue for another worker, or for resume(). Sessions under way go on."""
        if self.sockets:
            self._close_servers()

    def _close_servers(self) -> None:
        if not self.paused:
            for server in (self.server, *self.extra_servers):
                if server is not None:
                    server.close()  # (no wait_closed(): from Python 3.12 on it waits for the sessions)
        self.paused = True

    async def resume(self) -> None:
        if self.paused:
            await self.start()

    async def stop(self) -> None:
        """Stop accepting; clients waiting between commands get 421 now (Session.shutdown()),
        those in the middle of a message go on (drain())."""
        self._close_servers()
        for sock in self.sockets or ():
            sock.close()  # ours, kept for resume(); the other workers hold their own
        for session in list(self.sessions.values()):
            session.shutdown()

    async def drain(self, timeout: float) -> None:
        """Give the sessions still under way `grace` seconds (at most `timeout`) to finish their
        message, then cut them off."""
        if self.sessions:
            _, pending = await asyncio.wait(list(self.sessions), timeout=min(self.grace, timeout))
            for task in pending:
                task.cancel()


# Seconds a session in the middle of a message has to finish it once the server stops.
SESSION_GRACE = 5.0


def _label(endpoint: tuple[str, int] | str) -> str:
    if isinstance(endpoint, str):
        return f"unix:{endpoint}"
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind(endpoint: tuple[str, int] | str, backlog: int = 4096) -> list[socket.socket]:
    """Listening sockets for `endpoint`, bound in this process (before forking workers), the way
    loop.create_server() would bind them: every address the host name resolves to, SO_REUSEADDR,
    IPv6 sockets IPv6-only."""
    if isinstance(endpoint, str):
        if os.path.exists(endpoint):
            os.unlink(endpoint)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(endpoint)
        sock.listen(backlog)
        sock.setblocking(False)
        return [sock]
    host, port = endpoint
    family = socket.AF_INET6 if ":" in host else socket.AF_UNSPEC
    infos = socket.getaddrinfo(host or None, port, family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    seen = set()
    try:
        for fam, kind, proto, _, address in infos:
            if (fam, address) in seen:
                continue
            seen.add((fam, address))
            sock = socket.socket(fam, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port:
                address = (address[0], port, *address[2:])
            sock.bind(address)
            if port == 0:  # every address family on the same chosen port, as create_server does not
                port = sock.getsockname()[1]
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets
