"""LMTP delivery (RFC 2033) to a mailbox server such as Dovecot: one outcome per recipient.

The target is "host:port" or "unix:/path" (`[delivery].lmtp`, carried in the `Lmtp` route).
LMTP answers once per accepted recipient after the message, so one recipient may be stored
while another is over quota (4yz, retried) or unknown (5yz, bounced). No MX, no TLS: LMTP is a
local hop (Postfix's lmtp(8) defaults alike). Sessions are reused across messages, as Postfix's
lmtp client does with Dovecot, bounded by `max_per_destination` deliveries at once.

Durability: RFC 2033 §4.2 — a 2yz after the message means that recipient's copy is stored,
so DELIVERED here is as strong as the server's own promise.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mailboat.delivery.connection import ClientSession, SessionError, SessionPool, Timeouts
from mailboat.delivery.outcome import RecipientOutcome
from mailboat.delivery.smtp import build_transaction, make_outcome
from mailboat.mail.envelope import Envelope, Recipient
from mailboat.routing.mx import split_hostport
from mailboat.routing.route import Lmtp, Route
from mailboat.smtp.outgoing import prepare_message

__all__ = ["LmtpTransport", "parse_target"]


def parse_target(target: str) -> tuple[str | None, str, int]:
    """("/path", "", 0) for "unix:/path"; (None, host, port) for "host:port" / "[v6]:port"."""
    if target.startswith("unix:"):
        return target[5:], "", 0
    host, port = split_hostport(target, 24)  # RFC 2033 §5 suggests no port; 24 is "lmtp" in /etc/services
    return None, host, port


class LmtpTransport:
    """Transport for `Lmtp` routes (register it under "lmtp").

    Args:
        helo_name: our LHLO name (config.hostname).
        target: default target when a route carries none (config.delivery.lmtp).
        timeouts: per-reply timeouts; LMTP servers are local, but a mailbox may be slow to write.
        max_per_destination: deliveries at once to one LMTP server.
    """

    def __init__(self, helo_name: str, *, target: str = "", timeouts: Timeouts = Timeouts(),
                 max_per_destination: int = 20, max_idle: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.helo_name, self.target, self.timeouts, self.clock = helo_name, target, timeouts, clock
        self.pool = SessionPool(max_idle=max_idle, max_per_destination=max_per_destination)

    async def deliver(self, envelope: Envelope, message: bytes, recipients: list[Recipient],
                      route: Route) -> list[RecipientOutcome]:
        if not isinstance(route, Lmtp):
            raise TypeError(f"LmtpTransport cannot deliver to {route!r}")
        target = route.target or self.target
        path, host, port = parse_target(target)
        label = f"lmtp[{path}]" if path else f"{host}[{host}]:{port}"  # Postfix relay= notation
        txn = build_transaction(envelope, prepare_message(message), recipients)

        async def open_session() -> ClientSession:
            return await ClientSession.open(host=host, port=port, path=path, label=label, helo_name=self.helo_name,
                                            lmtp=True, timeouts=self.timeouts)

        async def work() -> list[RecipientOutcome]:
            try:
                result, _, _ = await self.pool.transact((target,), open_session, txn)
            except SessionError as exc:
                now = self.clock()
                host = label if exc.connected else "none"
                return [make_outcome(r.address, exc.reply, host, now) for r in recipients]
            now = self.clock()
            return [make_outcome(r.address, reply, label, now, remote=remote)
                    for r, reply, remote in zip(recipients, result.replies, result.remote, strict=True)]

        return await self.pool.limit(target, work)

    async def close(self) -> None:
        """QUIT the idle sessions (call at shutdown)."""
        await self.pool.close()
