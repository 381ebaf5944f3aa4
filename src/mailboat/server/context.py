"""What the sessions of one server share: the listener's settings and the server context."""

from __future__ import annotations

import functools
import ipaddress
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from mailboat.mail.envelope import Envelope
from mailboat.policy import Pipeline
from mailboat.queue.model import QueueItem
from mailboat.queue.runner import FirstAttempt
from mailboat.queue.store import QueueStore
from mailboat.resolver.base import Resolver
from mailboat.server import auth
from mailboat.server.limits import ConnectionCounter, Limits
from mailboat.stream import StreamProtocol

__all__ = ["DeliverFirst", "Handoff", "ListenerSettings", "ServerContext", "is_loopback", "peer_address"]


@dataclass(frozen=True, slots=True)
class ListenerSettings:
    kind: str  # smtp | submission | submissions | lmtp
    tls: str  # none | optional | required | implicit
    auth: str  # none | optional | required


class Handoff(Protocol):
    """Who delivers a message the moment it is queued (QueueRunner): see `ServerContext.handoff`."""

    def has_room(self, size: int = 0) -> bool: ...

    def deliver_now(self, item: QueueItem, message: bytes) -> None: ...


class DeliverFirst(Protocol):
    """Who delivers a large message to local mailboxes before it is queued (QueueRunner): see
    `ServerContext.deliver_first` and queue/runner.py."""

    async def deliver_first(self, queue_id: str, envelope: Envelope, message: bytes) -> FirstAttempt | None: ...

    async def finish_first(self, attempt: FirstAttempt) -> None: ...

    def record_first(self, item: QueueItem, attempt: FirstAttempt) -> None: ...


@dataclass(slots=True)
class ServerContext:
    """Everything the sessions of one server share (built by mailboat.app)."""

    hostname: str
    pipeline: Pipeline
    store: QueueStore
    limits: Limits
    ssl_context: ssl.SSLContext | None = None
    resolver: Resolver | None = None
    on_enqueued: Callable[[], None] | None = None  # e.g. QueueRunner.wake, after each enqueue
    # This process's runner: a message is enqueued already claimed and handed to it with its
    # bytes after the 250 (no claim query, no re-read); on_enqueued is then not called.
    handoff: Handoff | None = None
    # A message of runner.DELIVER_FIRST_MIN bytes or more whose recipients are all local
    # mailboxes is delivered before it is queued, and queued only if some copy is not delivered.
    deliver_first: DeliverFirst | None = None
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
        path = getattr(self.store, "path", None)
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
