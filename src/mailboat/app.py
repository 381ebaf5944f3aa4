"""Composition root: builds resolver, stores, pipeline, router, transports, runner, listeners and
the list of services that run them, from a Config, for one server process (`build()`).

It builds and never runs: daemon.py decides which processes run, and as which user, and runs
each one's services (mailboat/lifecycle.py: start, stop, drain). This is the only place (with
`cli`) that reads the configuration models; everything it builds receives plain constructor
arguments. Adding a long-lived part (a web server, a cluster heartbeat) is one more entry in
`services()`.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
from dataclasses import dataclass, field
from typing import Protocol

from mailboat import __version__
from mailboat.accounts import UserStore
from mailboat.auth.dkim.sign import DkimKey, DkimKeyError, load_key
from mailboat.config import Config
from mailboat.config.schema import Listener as ListenerConfig
from mailboat.delivery.lmtp import LmtpTransport
from mailboat.delivery.maildir import MaildirTransport
from mailboat.delivery.smtp import SmtpTransport
from mailboat.delivery.transport import Transport
from mailboat.lifecycle import Background, Service, Services
from mailboat.policy import Pipeline
from mailboat.policy.filters.authresults import AuthLedger, AuthResultsFilter
from mailboat.policy.filters.dkim_sign import DkimSignFilter
from mailboat.policy.filters.dkim_verify import DkimVerifyFilter
from mailboat.policy.filters.dmarc import DmarcFilter
from mailboat.policy.filters.loops import HopLimitFilter
from mailboat.policy.filters.relay import RelayFilter
from mailboat.policy.filters.sender import SenderOwnershipFilter
from mailboat.policy.filters.spf import SpfFilter
from mailboat.policy.filters.submission import ListenerRequirementsFilter
from mailboat.queue import open_store
from mailboat.queue.bounce import Bouncer
from mailboat.queue.intake import Intake
from mailboat.queue.runner import QueueRunner
from mailboat.queue.store import QueueStore
from mailboat.queue.upkeep import RunnerService, body_sweeper, journey_pruner
from mailboat.resolver.dnspython import DnspythonResolver
from mailboat.routing.route import Lmtp, Maildir
from mailboat.routing.router import Router
from mailboat.server.listener import Listener
from mailboat.server.session import Limits, ListenerSettings, ServerContext
from mailboat.server.supervisor import AcceptBalancer, Supervisor, WakePipe
from mailboat.server.tls import ensure_self_signed, server_context

log = logging.getLogger("mailboat.master")

# One delivery run may legitimately take the RFC 5321 §4.5.3.2 client time-outs end to end
# (up to 10 min waiting for the reply to the final dot); the claim lease must outlast it.
DELIVERY_TIMEOUT = 900.0
QUEUE_LEASE = 1200.0

LISTENER_NOTES: dict[tuple[str, str | None], str] = {
    ("smtp", "optional"): "STARTTLS offered",
    ("smtp", "required"): "STARTTLS required",
    ("smtp", "none"): "plaintext",
    ("submission", "required"): "STARTTLS + AUTH required",
    ("submissions", "implicit"): "implicit TLS, AUTH required",
    ("lmtp", "none"): "LMTP",
}


def users_path(config: Config) -> str:
    return os.path.join(config.data_dir, "users.db")


class AccountLookup(Protocol):
    """What the router needs of the user database (a stand-in serves before it exists)."""

    def exists(self, address: str) -> bool: ...


def _listener_settings(item: ListenerConfig) -> ListenerSettings:
    assert item.tls is not None and item.auth is not None  # the schema fills them by kind
    return ListenerSettings(item.kind, item.tls, item.auth)


def build_router(config: Config, users: AccountLookup) -> Router:
    return Router(
        local_domains=config.local_domains,
        account_exists=users.exists,
        aliases=config.aliases,
        catch_all=config.domains.catch_all,
        maildir_template=config.delivery.maildir,
        data_dir=config.data_dir,
        hostname=config.hostname,
        lmtp=config.delivery.lmtp,
        smarthost=config.relay.smarthost,
        routes={r.domain: r.smarthost for r in config.route},
    )


class StartupError(Exception):
    """A configuration that validated but cannot be used (an unreadable key, ...): one line."""


@dataclass
class Secrets:
    """What is read before root is dropped ([server] user): the listeners' TLS context and the
    DKIM keys, so key files may stay readable by root alone (as Postfix reads them)."""

    ssl_context: ssl.SSLContext
    dkim_keys: list[DkimKey]


def load_secrets(config: Config) -> Secrets:
    cert, key = config.tls.cert, config.tls.key
    if not cert:
        cert, key = ensure_self_signed(os.path.join(config.data_dir, "tls"), config.hostname)
    try:
        context = server_context(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise StartupError(f"tls: cannot load the pair {cert} and {key}: {exc}") from None
    keys = []
    for index, entry in enumerate(config.dkim.sign):
        try:
            keys.append(load_key(entry.domain, entry.selector, entry.key))
        except DkimKeyError as exc:
            raise StartupError(f"dkim.sign[{index}].key: {exc}") from None
    return Secrets(context, keys)


@dataclass
class Role:
    """Which part of the server this process is (daemon.py decides). The default: all of it, in
    one process."""

    # Listening sockets bound before (as root, or before the workers were forked), one list per
    # [[listener]]; None: each listener binds its own.
    sockets: list[list[socket.socket]] | None = None
    # This process runs the queue: the runner, the journey pruner, the body sweeper. Only it
    # drops old leases at start (another worker doing so would release the runner's live claims).
    run_queue: bool = True
    shared: bool = False  # other processes share the queue ([server] workers > 1)
    # The pipe that wakes the runner's process after an enqueue in another one.
    wake: WakePipe | None = None
    # In the runner's process, with other workers: they are its services, and its listeners
    # pause only while one of them accepts (AcceptBalancer).
    workers: Supervisor | None = None
    # Read before dropping root ([server] user); None: read by build().
    secrets: Secrets | None = None


@dataclass
class Server:
    """One server process as build() made it: its parts, and the services that run them."""

    config: Config
    users: UserStore
    router: Router
    store: QueueStore
    runner: QueueRunner
    smtp_out: SmtpTransport
    lmtp_out: LmtpTransport
    listeners: list[Listener]
    dkim_keys: list[DkimKey] = field(default_factory=list)
    services: Services = field(default_factory=Services)

    async def close(self) -> None:
        """Close what build() opened, once the services have stopped and drained."""
        for transport in (self.smtp_out, self.lmtp_out):
            await transport.close()
        await self.store.close()
        self.users.close()

    def banner(self) -> str:
        lines = [f"mailboat {__version__} serving {self.config.hostname}"]
        for listener, item in zip(self.listeners, self.config.listener, strict=True):
            note = LISTENER_NOTES.get((item.kind, item.tls), f"tls={item.tls}, auth={item.auth}")
            lines.append(f"  {item.kind:<12} {listener.bound:<22} {note}")
        lines.append(f"data:   {self.config.data_dir} (queue.db, mail/, tls/, users.db)")
        smtp_listener = next((li for li in self.listeners if li.settings.kind == "smtp"), None)
        if smtp_listener is not None and not smtp_listener.bound.startswith("unix:"):
            host, _, port = smtp_listener.bound.rpartition(":")
            address = f"postmaster@{self.config.local_domains[0]}"
            lines.append("send a test message:")
            lines.append(f"  swaks --server {host.strip('[]')}:{port} --to {address}")
            lines.extend(f"  {line}" for line in self._where_it_lands(address))
        return "\n".join(lines)

    def _where_it_lands(self, address: str) -> list[str]:
        """Where mail to `address` ends up, by the router's own alias expansion and routes."""
        lines: list[str] = []
        for final in self.router.expand(address):
            route = self.router.route(final)
            if isinstance(route, Maildir):
                line = f"then look in {route.path}/new/"
            elif isinstance(route, Lmtp):
                line = f"then it is delivered over LMTP to {route.target}"
            else:
                line = f"then it is relayed to {final}"
            if line not in lines:
                lines.append(line)
        return lines


def build(config: Config, role: Role | None = None) -> Server:
    """The parts of one server process and the services that will run them, built from
    `config`. Nothing runs yet (daemon.py starts the services); the data directory, the user
    database and the queue are open (Server.close())."""
    role = role or Role()
    os.makedirs(config.data_dir, mode=0o700, exist_ok=True)
    secrets = role.secrets or load_secrets(config)
    users = UserStore(users_path(config))
    router = build_router(config, users)
    # Only the process that runs the queue drops its node's old leases: another worker doing so
    # would release the runner's live claims.
    store = open_store(config.queue, config.data_dir, runner=role.run_queue, shared=role.shared, lease=QUEUE_LEASE)
    resolver = DnspythonResolver(config.dns.nameservers, timeout=config.dns.timeout)
    smtp_out = SmtpTransport(resolver, config.hostname, mx_port=config.relay.mx_port, tls_policy=config.relay.tls)
    lmtp_out = LmtpTransport(config.hostname, target=config.delivery.lmtp)
    # syncfs: two syncs per delivery batch instead of one fsync per file (maildir.py).
    transports: dict[str, Transport] = {"maildir": MaildirTransport(hostname=config.hostname, sync="syncfs"),
                  "mx": smtp_out, "relay": smtp_out, "lmtp": lmtp_out}
    # SPEC: a report that cannot itself be delivered goes to postmaster of the first local domain.
    first_domain = config.local_domains[0] if config.local_domains else config.hostname
    bouncer = Bouncer(store, config.hostname, postmaster=f"postmaster@{first_domain}")
    runner = QueueRunner(
        store, router, transports, delivery_timeout=DELIVERY_TIMEOUT,
        retry_schedule=list(config.queue.retry), max_lifetime=config.queue.max_lifetime,
        on_final_failure=bouncer.on_final_failure, on_success=bouncer.on_success,
        on_delay=bouncer.on_delay, delay_warning=config.queue.delay_warning,
    )
    bouncer.on_enqueued = runner.wake
    on_enqueued = runner.wake
    if role.wake is not None and not role.run_queue:
        on_enqueued = bouncer.on_enqueued = role.wake.notify  # a DSN queued here is the runner's too
    intake = Intake(
        store, wake=on_enqueued,
        # The process that runs the queue delivers what it accepts at once, from memory
        # (runner.deliver_now); the other workers' messages reach it through claims, in
        # batches. (Every worker delivering its own was measured slower: twice the Maildir
        # sync calls, each in smaller batches, and two writers taking turns on the queue.)
        handoff=runner if role.run_queue else None,
        # Large messages for local mailboxes: every worker delivers its own before queueing
        # (runner.deliver_first; measured there).
        deliver_first=runner,
    )
    # The group commit waits a few milliseconds for the messages the intake expects.
    # (a backend without a group commit has no such method: the QueueStore protocol does not require it)
    expect_company = getattr(store, "expect_company", None)
    if expect_company is not None:
        expect_company(intake.coming)
    ctx = ServerContext(
        hostname=config.hostname, pipeline=build_pipeline(config, router, resolver, secrets.dkim_keys),
        intake=intake, limits=build_limits(config), ssl_context=secrets.ssl_context, resolver=resolver,
        authenticate=users.check, check_local_clients=config.auth.check_local_clients,
        spool_dir=config.data_dir,
        postmaster=f"postmaster@{(config.domains.local or [config.hostname])[0]}",
    )
    listeners = [Listener(ctx, _listener_settings(item), item.endpoint,
                          role.sockets[index] if role.sockets else None)
                 for index, item in enumerate(config.listener)]
    server = Server(config, users, router, store, runner, smtp_out, lmtp_out, listeners, secrets.dkim_keys)
    server.services = Services(services(config, role, server))
    return server


def services(config: Config, role: Role, server: Server) -> list[Service]:
    """The long-lived parts of this process, in the order they start; they stop and drain in
    the reverse order (mailboat/lifecycle.py), so a service listed after another may rely on
    it until it has drained. A new one (a web server, a cluster heartbeat) is one more entry."""
    listed: list[Service] = []
    if role.workers is not None:
        listed.append(role.workers)  # forked before the event loop; ended after everything else
    if role.run_queue:
        if role.wake is not None:
            listed.append(role.wake.reader(server.runner.wake))
        listed.append(RunnerService(server.runner))
        if config.queue.journey_keep is not None:
            listed.append(journey_pruner(server.store, config.queue.journey_keep))
        listed.append(body_sweeper(server.store))
    listed.extend(server.listeners)
    if role.workers is not None and role.sockets is not None:
        balancer = AcceptBalancer(server.listeners, server.runner, role.workers.peers_alive)
        listed.append(Background("accept balancer", balancer.run))
    return listed


def build_pipeline(config: Config, router: Router, resolver: DnspythonResolver, dkim_keys: list[DkimKey]) -> Pipeline:
    """The filters, in the order they run."""
    ledger = AuthLedger()
    return Pipeline([
        ListenerRequirementsFilter(),
        RelayFilter(router, config.relay.trusted_networks),
        SenderOwnershipFilter(router),
        HopLimitFilter(config.limits.hops),
        SpfFilter(resolver, ledger, receiver=config.hostname, reject_fail=config.auth.spf_reject_fail),
        DkimVerifyFilter(resolver, ledger),
        DmarcFilter(resolver, ledger, on_reject=config.auth.dmarc_reject,
                    on_quarantine=config.auth.dmarc_quarantine, temperror=config.auth.temperror),
        AuthResultsFilter(config.hostname, ledger),  # after SPF, DKIM and DMARC have spoken
        # Last: only what passed every check (and the sender-ownership test) gets our signature.
        DkimSignFilter(dkim_keys, config.relay.trusted_networks if config.auth.sign_trusted_networks else ()),
    ])


def build_limits(config: Config) -> Limits:
    return Limits(
        message_size=config.limits.message_size, recipients=config.limits.recipients,
        errors=config.limits.errors, soft_errors=config.limits.soft_errors,
        error_sleep=config.limits.error_sleep, junk_commands=config.limits.junk_commands,
        connections=config.limits.connections,
        connections_per_ip=config.limits.connections_per_ip,
        command_timeout=config.timeouts.command, data_timeout=config.timeouts.data,
        tls_handshake_timeout=config.timeouts.tls_handshake, rdns_timeout=config.dns.timeout,
        min_data_rate=config.timeouts.min_data_rate, greet_delay=config.limits.greet_delay,
        queue_minfree=config.limits.queue_minfree,
    )
