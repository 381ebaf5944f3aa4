"""What the sessions of one server share: the listener's settings and the server context."""

from __future__ import annotations

import functools
import ipaddress
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from mailboat.policy import Pipeline
from mailboat.queue.intake import Intake
from mailboat.resolver.base import Resolver
from mailboat.server import auth
from mailboat.server.limits import ConnectionCounter, Limits
from mailboat.stream import StreamProtocol

__all__ = ["ListenerSettings", "ServerContext", "is_loopback", "peer_address"]


@dataclass(frozen=True, slots=True)
class ListenerSettings:
    kind: str  # smtp | submission | submissions | lmtp
    tls: str  # none | optional | required | implicit
    auth: str  # none | optional | required


@dataclass(slots=True)
class ServerContext:
    """Everything the sessions of one server share (built by mailboat.app)."""

    hostname: str
    pipeline: Pipeline
    # The queue's one entrance: told of each transaction at MAIL, handed each finished message
    # (it decides deliver-first, enqueue, group commit and the hand-off to the runner).
    intake: Intake
    limits: Limits
    ssl_context: ssl.SSLContext | None = None
    resolver: Resolver | None = None
    authenticate: Callable[[str, str], bool] | None = None  # (account, password) -> ok; blocking
    auth_limiter: auth.AuthLimiter = field(default_factory=auth.AuthLimiter)
    check_local_clients: bool = False  # check SPF/DKIM/DMARC for loopback clients too
    counter: ConnectionCounter = field(default_factory=ConnectionCounter)
    spool_dir: str | None = None  # where the queue lives, for the free-space check at MAIL
    # Where a bare RCPT TO:<Postmaster> goes (RFC 5321 §4.1.1.3: it MUST be accepted):
    # postmaster@ the first local domain. "" = the router qualifies it with the hostname.
    postmaster: str = ""

    def spool_path(self) -> str | None:
        """The directory whose file system holds the queue (default: the store's file's)."""
        if self.spool_dir:
            return self.spool_dir
        path = getattr(self.intake.store, "path", None)
        return os.path.dirname(os.path.abspath(path)) if isinstance(path, str) else None


@functools.lru_cache(maxsize=1024)  # the same clients connect again and again
def is_loopback(ip: str) -> bool:
    """A loopback address, or "" (a unix socket): a client on this machine."""
    if not ip:
        return True  # a unix socket
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def peer_address(stream: StreamProtocol) -> tuple[str, int]:
    """(ip, port) of the client; ("", 0) on a unix socket."""
    peer = stream.peername
    if isinstance(peer, tuple) and len(peer) >= 2:
        return str(peer[0]), int(peer[1])
    return "", 0
