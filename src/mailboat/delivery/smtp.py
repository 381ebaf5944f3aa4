"""SMTP delivery to a domain's MX hosts or to a smarthost (RFC 5321 §5, RFC 3207, RFC 7435).

For `Mx(domain)` the destinations come from `routing.mx.resolve_destinations` (preference
order, every address of a host before the next host); for `Relay(smarthost)` from the
smarthost's own addresses. Destinations are tried in order until none is left undecided:

- a connection failure, timeout, garbage, or a refusal at session level (greeting, EHLO,
  STARTTLS under "verify") moves every recipient on to the next address;
- a 4yz reply for a recipient (MAIL, RCPT, DATA or final) moves that recipient on;
- a 2yz or 5yz reply from a host that answered is final for that recipient;
- at most `max_addresses` addresses and `max_sessions` established sessions per delivery
  (Postfix smtp_mx_address_limit / smtp_mx_session_limit), so a long MX list cannot eat the
  runner's delivery timeout.

TLS policy (`tls_policy`):
- "opportunistic" (default, RFC 7435; Postfix ``smtp_tls_security_level = may``): STARTTLS when
  offered, certificate not verified. A refused STARTTLS continues in plaintext on the same
  session. A failed *handshake* leaves the session unusable: it is dropped and the same address
  is retried at once in plaintext on a new connection (Postfix's "retry as plaintext"), never
  silently inside the broken one. Both are logged as warnings.
- "verify": STARTTLS required and the certificate verified against the MX host name; anything
  less defers (4.7.4 / 4.7.5), never plaintext.
- "none": never STARTTLS.

Each outcome's `host` is Postfix's relay= notation `mx.example.net[192.0.2.1]:25`, or "none"
when no connection was made (refused, timed out, no route, no MX or address: the text says which,
"connect to HOST: Connection refused"); its reply text is the remote reply as received (status
first, `remote` True) or, for what we decided ourselves, our own text (`remote` False). The TLS protocol and
cipher are logged once per new session, as Postfix does ("Untrusted TLS connection established to ...").
"""

from __future__ import annotations

import functools
import logging
import random
import ssl
import time
from collections.abc import Callable

from mailboat.delivery.connection import ClientSession, SessionError, SessionPool, Timeouts, reply_text
from mailboat.delivery.outcome import RecipientOutcome, outcome
from mailboat.mail.envelope import Envelope, Recipient
from mailboat.resolver.base import Resolver
from mailboat.routing.mx import Destination, DestinationError, resolve_destinations, resolve_smarthost
from mailboat.routing.route import Mx, Relay, Route
from mailboat.smtp import Reply
from mailboat.smtp.outgoing import OutgoingMessage, OutgoingRecipient, Transaction, prepare_message

__all__ = ["SmtpTransport", "build_transaction", "TLS_POLICIES"]

log = logging.getLogger("mailboat.smtp")
TLS_POLICIES = ("opportunistic", "verify", "none")
def build_transaction(envelope: Envelope, message: OutgoingMessage, recipients: list[Recipient]) -> Transaction:
    """The client transaction for an envelope and the recipients of one delivery."""
    return Transaction(envelope.sender, tuple(OutgoingRecipient(r.address, r.notify, r.orcpt) for r in recipients),
                       message, smtputf8=envelope.smtputf8, ret=envelope.ret, envid=envelope.envid)


def make_outcome(rcpt: str, reply: Reply, host: str, at: float, remote: bool = False) -> RecipientOutcome:
    """`remote`: the reply came from the server (else it is ours; see RecipientOutcome.remote)."""
    return outcome(rcpt, reply.code, reply_text(reply), host, at, remote=remote)


class SmtpTransport:
    """Transport for `Mx` and `Relay` routes; register it under both kinds.

    Args:
        resolver: the Resolver (MX, A, AAAA).
        helo_name: our EHLO name (config.hostname).
        mx_port: port for MX hosts (config.relay.mx_port); smarthosts carry their own.
        tls_policy: "opportunistic", "verify" or "none" (see the module docstring).
        timeouts: connect/command/data timeouts (RFC 5321 §4.5.3.2 by default).
        max_per_destination: deliveries at once per domain or smarthost.
        max_idle: seconds an idle session waits for the next message to the same address.
        ssl_context: for "verify" (e.g. with a private CA); default: the system's trust store.
        rng: shuffles equal MX preferences (tests pass a seeded one).
    """

    def __init__(self, resolver: Resolver, helo_name: str, *, mx_port: int = 25,
                 tls_policy: str = "opportunistic", timeouts: Timeouts = Timeouts(),
                 max_per_destination: int = 20, max_idle: float = 10.0, max_addresses: int = 10,
                 max_sessions: int = 3, ssl_context: ssl.SSLContext | None = None,
                 rng: random.Random | None = None, clock: Callable[[], float] = time.time) -> None:
        if tls_policy not in TLS_POLICIES:
            raise ValueError(f"tls_policy must be one of {TLS_POLICIES}, not {tls_policy!r}")
        self.resolver, self.helo_name, self.mx_port = resolver, helo_name, mx_port
        self.tls_policy, self.timeouts = tls_policy, timeouts
        self.max_addresses, self.max_sessions = max_addresses, max_sessions
        self.pool = SessionPool(max_idle=max_idle, max_per_destination=max_per_destination)
        self.rng, self.clock = rng or random.Random(), clock
        if ssl_context is None:
            ssl_context = ssl.create_default_context()
            if tls_policy == "opportunistic":  # RFC 7435: encrypt without authenticating
                ssl_context.check_hostname = False
                ssl_context.verify_mode = ssl.CERT_NONE
        self.ssl_context = ssl_context

    async def deliver(self, envelope: Envelope, message: bytes, recipients: list[Recipient],
                      route: Route) -> list[RecipientOutcome]:
        match route:
            case Mx(domain=domain):
                destination = domain.lower()
                find = functools.partial(resolve_destinations, self.resolver, destination, self.mx_port, rng=self.rng)
            case Relay(smarthost=smarthost):
                destination = smarthost
                find = functools.partial(resolve_smarthost, self.resolver, smarthost)
            case _:
                raise TypeError(f"SmtpTransport cannot deliver to {route!r}")

        async def work() -> list[RecipientOutcome]:
            try:
                destinations = await find()
            except DestinationError as exc:
                now = self.clock()  # nobody to connect to: said in the words of a failed connect
                text = f"{exc.status} connect to {destination}: {exc.text}"
                return [outcome(r.address, exc.code, text, "none", now) for r in recipients]
            return await self._try(destinations, envelope, prepare_message(message), recipients)

        return await self.pool.limit(destination, work)

    async def _try(self, destinations: list[Destination], envelope: Envelope, message: OutgoingMessage,
                   recipients: list[Recipient]) -> list[RecipientOutcome]:
        results: dict[str, RecipientOutcome] = {}
        pending = list(recipients)
        sessions = 0
        for dest in destinations[: self.max_addresses]:
            if not pending or sessions >= self.max_sessions:
                break
            txn = build_transaction(envelope, message, pending)
            try:
                result, error, session = await self.pool.transact(
                    (dest.ip, dest.port, self.tls_policy, dest.host), functools.partial(self._open, dest), txn)
            except SessionError as exc:  # no session at all: every recipient moves on
                now = self.clock()
                host = dest.label if exc.connected else "none"  # Postfix: relay=none when not connected
                results.update((r.address, make_outcome(r.address, exc.reply, host, now)) for r in pending)
                continue
            sessions += 1
            now = self.clock()
            still: list[Recipient] = []
            for rcpt, reply, remote in zip(pending, result.replies, result.remote, strict=True):
                results[rcpt.address] = make_outcome(rcpt.address, reply, dest.label, now, remote)
                if reply.is_transient:
                    still.append(rcpt)
            if error is not None:
                log.info("%s: %s", dest.label, error.reply.text)
            pending = still
        return [results.get(r.address) or make_outcome(r.address, _NOTHING_TRIED, "none", self.clock())
                for r in recipients]

    async def _open(self, dest: Destination) -> ClientSession:
        policy = {"opportunistic": "may", "verify": "verify", "none": "none"}[self.tls_policy]
        try:
            session = await self._connect(dest, policy)
        except SessionError as exc:
            if not (exc.tls_failed and policy == "may"):
                raise
            log.warning("%s: %s; retrying in plaintext (opportunistic TLS)", dest.label, exc.reply.text)
            session = await self._connect(dest, "none")
        if session.tls:
            trust = "Verified" if policy == "verify" else "Untrusted"
            log.info("%s TLS connection established to %s: %s", trust, dest.label, session.tls)
        return session

    async def _connect(self, dest: Destination, starttls: str) -> ClientSession:
        # SNI and verification use the MX host name; an address literal has no name to verify.
        name = None if dest.host.startswith("[") else dest.host
        return await ClientSession.open(host=dest.ip, port=dest.port, label=dest.label, helo_name=self.helo_name,
                                        timeouts=self.timeouts, starttls=starttls, ssl_context=self.ssl_context,
                                        server_hostname=name or dest.ip)

    async def close(self) -> None:
        """QUIT the idle sessions (call at shutdown)."""
        await self.pool.close()


_NOTHING_TRIED = Reply.make(451, "4.4.0", "no destination could be tried")
