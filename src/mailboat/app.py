"""Composition root: builds resolver, stores, pipeline, router, transports, runner and listeners
from a Config, and runs them until SIGTERM/SIGINT (one server process; daemon.py decides which
processes run, and as which user).

This is the only place (with `cli`) that reads the configuration models; everything it builds
receives plain constructor arguments.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mailboat import __version__
from mailboat.accounts import UserStore
from mailboat.config import Config
from mailboat.delivery.lmtp import LmtpTransport
from mailboat.delivery.maildir import MaildirTransport
from mailboat.delivery.smtp import SmtpTransport
from mailboat.policy import Pipeline
from mailboat.auth.dkim.sign import DkimKey, DkimKeyError, load_key
from mailboat.policy.filters.authresults import AuthLedger, AuthResultsFilter
from mailboat.policy.filters.dkim_sign import DkimSignFilter
from mailboat.policy.filters.dkim_verify import DkimVerifyFilter
from mailboat.policy.filters.dmarc import DmarcFilter
from mailboat.policy.filters.loops import HopLimitFilter
from mailboat.policy.filters.spf import SpfFilter
from mailboat.policy.filters.relay import RelayFilter
from mailboat.policy.filters.sender import SenderOwnershipFilter
from mailboat.policy.filters.submission import ListenerRequirementsFilter
from mailboat.queue.bounce import Bouncer
from mailboat.queue.runner import QueueRunner
from mailboat.queue import open_store
from mailboat.queue.store import QueueError, QueueStore
from mailboat.resolver.dnspython import DnspythonResolver
from mailboat.routing.route import Lmtp, Maildir
from mailboat.routing.router import Router
from mailboat.server.listener import Listener
from mailboat.server.session import Limits, ListenerSettings, ServerContext
from mailboat.server.tls import ensure_self_signed, server_context

log = logging.getLogger("mailboat.master")

# One delivery run may legitimately take the RFC 5321 §4.5.3.2 client time-outs end to end
# (up to 10 min waiting for the reply to the final dot); the claim lease must outlast it.
DELIVERY_TIMEOUT = 900.0
QUEUE_LEASE = 1200.0

LISTENER_NOTES = {
    ("smtp", "optional"): "STARTTLS offered",
    ("smtp", "required"): "STARTTLS required",
    ("smtp", "none"): "plaintext",
    ("submission", "required"): "STARTTLS + AUTH required",
    ("submissions", "implicit"): "implicit TLS, AUTH required",
    ("lmtp", "none"): "LMTP",
}


def users_path(config: Config) -> str:
    return os.path.join(config.data_dir, "users.db")


def build_router(config: Config, users: UserStore) -> Router:
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
class Server:
    """A running mailboat: listeners, queue store and runner."""

    config: Config
    listeners: list[Listener] = field(default_factory=list)
    store: QueueStore | None = None
    runner: QueueRunner | None = None
    users: UserStore | None = None
    smtp_out: SmtpTransport | None = None
    dkim_keys: list[DkimKey] = field(default_factory=list)
    lmtp_out: LmtpTransport | None = None
    # Worker processes ([server] workers > 1, see run()): the listening sockets bound before the
    # fork, whether this process runs the queue runner, and the pipe that wakes the runner's
    # process after an enqueue in another one (the read end there, the write end elsewhere).
    sockets: list[list] | None = None
    run_queue: bool = True
    wake_fd: int | None = None
    # In the process that runs the queue, with other workers: whether one of them still runs
    # (the listeners pause only while another process accepts; see _balance_accepts).
    peers_alive: Callable[[], bool] | None = None
    # Other processes share the queue ([server] workers > 1).
    shared: bool = False
    # Read before dropping root (run()); None: read in start().
    secrets: Secrets | None = None
    source: str = "embedded default"  # the configuration file, for the start line of the log
    router: Router | None = None

    async def start(self) -> None:
        config = self.config
        os.makedirs(config.data_dir, mode=0o700, exist_ok=True)
        self.users = UserStore(users_path(config))
        router = self.router = build_router(config, self.users)
        # Only the process that runs the queue drops old leases: another worker doing so would
        # release the runner's live claims.
        self.store = open_store(config.queue, config.data_dir, runner=self.run_queue, shared=self.shared,
                                lease=QUEUE_LEASE)
        resolver = DnspythonResolver(config.dns.nameservers, timeout=config.dns.timeout)
        self.smtp_out = SmtpTransport(resolver, config.hostname, mx_port=config.relay.mx_port,
                                      tls_policy=config.relay.tls)
        self.lmtp_out = LmtpTransport(config.hostname, target=config.delivery.lmtp)
        # syncfs: two syncs per delivery batch instead of one fsync per file (maildir.py).
        transports = {"maildir": MaildirTransport(hostname=config.hostname, sync="syncfs"),
                      "mx": self.smtp_out, "relay": self.smtp_out, "lmtp": self.lmtp_out}
        # SPEC: a report that cannot itself be delivered goes to postmaster of the first local domain.
        first_domain = config.local_domains[0] if config.local_domains else config.hostname
        bouncer = Bouncer(self.store, config.hostname, postmaster=f"postmaster@{first_domain}")
        self.runner = QueueRunner(
            self.store, router, transports, delivery_timeout=DELIVERY_TIMEOUT,
            retry_schedule=list(config.queue.retry), max_lifetime=config.queue.max_lifetime,
            on_final_failure=bouncer.on_final_failure, on_success=bouncer.on_success,
            on_delay=bouncer.on_delay, delay_warning=config.queue.delay_warning,
        )
        bouncer.on_enqueued = self.runner.wake
        secrets = self.secrets or load_secrets(config)
        self.dkim_keys = secrets.dkim_keys
        ledger = AuthLedger()
        pipeline = Pipeline([
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
            DkimSignFilter(self.dkim_keys,
                           config.relay.trusted_networks if config.auth.sign_trusted_networks else ()),
        ])
        limits = Limits(
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
        on_enqueued = self.runner.wake
        loop = asyncio.get_running_loop()
        if self.wake_fd is not None and self.run_queue:
            loop.add_reader(self.wake_fd, self._woken)
        elif self.wake_fd is not None:
            on_enqueued = self._wake_runner_process
            bouncer.on_enqueued = self._wake_runner_process  # a DSN queued here is the poller's
        ctx = ServerContext(
            hostname=config.hostname, pipeline=pipeline, store=self.store, limits=limits,
            ssl_context=secrets.ssl_context, resolver=resolver, on_enqueued=on_enqueued,
            # The process that runs the queue delivers what it accepts at once, from memory
            # (runner.deliver_now); the other workers' messages reach it through claims, in
            # batches. (Every worker delivering its own was measured slower: twice the Maildir
            # sync calls, each in smaller batches, and two writers taking turns on the queue.)
            handoff=self.runner if self.run_queue else None,
            # Large messages for local mailboxes: every worker delivers its own before queueing
            # (runner.deliver_first; measured there).
            deliver_first=self.runner,
            authenticate=self.users.check, check_local_clients=config.auth.check_local_clients,
            spool_dir=config.data_dir,
            postmaster=f"postmaster@{(config.domains.local or [config.hostname])[0]}",
        )
        counter = ctx.counter  # its SMTP transactions still to be queued: the group commit waits for them
        self.store.expect_company(lambda: counter.transactions)
        for index, item in enumerate(config.listener):
            listener = Listener(ctx, ListenerSettings(item.kind, item.tls, item.auth), item.endpoint,
                                self.sockets[index] if self.sockets else None)
            await listener.start()
            self.listeners.append(listener)
        if self.run_queue:
            self.runner.start()
            if config.queue.journey_keep is not None:
                self._pruner = loop.create_task(prune_journeys(self.store, config.queue.journey_keep))
            # (the store swept at open too; this catches what a crash of another process leaves)
            self._sweeper = loop.create_task(sweep_bodies(self.store))
            if self.sockets is not None and self.peers_alive is not None:
                self._balancer = loop.create_task(self._balance_accepts())
        log.info("daemon started -- version %s, configuration %s", __version__, self.source)

    _wake_pending = False
    _pruner: asyncio.Task | None = None
    _sweeper: asyncio.Task | None = None
    _balancer: asyncio.Task | None = None

    async def _balance_accepts(self) -> None:
        """The process that runs the queue delivers every worker's mail. While its deliveries
        pile up (ACCEPT_PAUSE_AT in flight) it stops accepting connections, so the other workers
        take the new sessions and this one catches up; it accepts again once they are down to
        ACCEPT_RESUME_AT, or at once if no other worker is left (a process that is alone
        never pauses). Measured side by side with 2 workers, 4 rounds each: 1 KB over 20
        sessions +8 % end to end with 11 % less CPU per message; 100 KB over 20 sessions +43 %;
        one session +58 % (the client no longer waits on a process busy delivering). Never
        accepting there at all was 0.64 times at 100 KB: large local messages are delivered by
        the process that accepts them, so both must take sessions when the queue is quiet."""
        assert self.runner is not None and self.peers_alive is not None
        while True:
            await asyncio.sleep(ACCEPT_BALANCE_EVERY)
            paused = any(listener.paused for listener in self.listeners)
            in_flight = self.runner.in_flight
            if not paused and in_flight >= ACCEPT_PAUSE_AT and self.peers_alive():
                for listener in self.listeners:
                    listener.pause()
            elif paused and (in_flight <= ACCEPT_RESUME_AT or not self.peers_alive()):
                for listener in self.listeners:
                    try:
                        await listener.resume()
                    except OSError as exc:  # (its socket is still bound: not expected)
                        log.error("cannot accept on %s again: %s", listener.endpoint, exc)

    def _woken(self) -> None:
        try:
            os.read(self.wake_fd, 4096)  # type: ignore[arg-type]
        except (BlockingIOError, InterruptedError):
            pass
        if self.runner is not None:
            self.runner.wake()

    def _wake_runner_process(self) -> None:
        # One byte per loop iteration at most, however many sessions enqueued in it.
        if not self._wake_pending:
            self._wake_pending = True
            asyncio.get_running_loop().call_soon(self._send_wake)

    def _send_wake(self) -> None:
        self._wake_pending = False
        try:
            os.write(self.wake_fd, b"w")  # type: ignore[arg-type]
        except (BlockingIOError, InterruptedError, BrokenPipeError):
            pass  # a full pipe already holds a wake-up; no runner: its poll finds the message

    async def stop(self) -> None:
        if self.wake_fd is not None and self.run_queue:
            asyncio.get_running_loop().remove_reader(self.wake_fd)
        for task in (self._balancer, self._pruner, self._sweeper):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        for listener in self.listeners:
            await listener.stop()
        if self.runner is not None:
            await self.runner.stop()
        for transport in (self.smtp_out, self.lmtp_out):
            if transport is not None:
                await transport.close()
        if self.store is not None:
            await self.store.close()
        if self.users is not None:
            self.users.close()
        log.info("daemon stopped")

    def banner(self) -> str:
        lines = [f"mailboat {__version__} serving {self.config.hostname}"]
        for listener, item in zip(self.listeners, self.config.listener):
            note = LISTENER_NOTES.get((item.kind, item.tls), f"tls={item.tls}, auth={item.auth}")
            lines.append(f"  {item.kind:<12} {listener.bound:<22} {note}")
        lines.append(f"data:   {self.config.data_dir} (queue.db, mail/, tls/, users.db)")
        smtp_listener = next((l for l in self.listeners if l.settings.kind == "smtp"), None)
        if smtp_listener is not None and not smtp_listener.bound.startswith("unix:"):
            host, _, port = smtp_listener.bound.rpartition(":")
            address = f"postmaster@{self.config.local_domains[0]}"
            lines.append("send a test message:")
            lines.append(f"  swaks --server {host.strip('[]')}:{port} --to {address}")
            lines.extend(f"  {line}" for line in self._where_it_lands(address))
        return "\n".join(lines)

    def _where_it_lands(self, address: str) -> list[str]:
        """Where mail to `address` ends up, by the router's own alias expansion and routes."""
        if self.router is None:
            return []
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


PRUNE_EVERY = 3600.0  # seconds between journey prunes
# The queue process's listeners pause at this many deliveries in flight and resume at the
# second figure (workers > 1 only; Server._balance_accepts), looking every ACCEPT_BALANCE_EVERY s.
ACCEPT_PAUSE_AT = 16
ACCEPT_RESUME_AT = 4
ACCEPT_BALANCE_EVERY = 0.05


async def prune_journeys(store: QueueStore, keep: float, *, every: float = PRUNE_EVERY,
                         clock=time.time) -> None:
    """Forget journey events older than `keep` seconds of messages that left the queue, now and
    every `every` seconds, a bounded batch at a time (each batch is one short transaction on
    the event loop, so sessions go on between them)."""
    while True:
        pruned = 0
        try:
            while (count := await store.prune_events(clock() - keep)) > 0:
                pruned += count
                await asyncio.sleep(0)
        except QueueError as exc:
            log.warning("journey: pruning failed, next try in %.0f s: %s", every, exc)
        if pruned:
            log.info("journey: forgot %d events older than %.0f days", pruned, keep / 86400)
        await asyncio.sleep(every)


async def sweep_bodies(store: QueueStore, *, every: float = PRUNE_EVERY) -> None:
    """Every `every` seconds, remove spooled bodies that a crash left without a queue record
    (queue/bodies.py): a `mailboat sendmail` or a worker killed between a body's write and
    its commit."""
    while True:
        await asyncio.sleep(every)
        try:
            await store.sweep_bodies()
        except (QueueError, OSError) as exc:
            log.warning("queue: sweeping spooled bodies failed: %s", exc)


async def serve(config: Config, ready: asyncio.Event | None = None, *, sockets: list[list] | None = None,
                run_queue: bool = True, wake_fd: int | None = None, quiet: bool = False,
                peers_alive: Callable[[], bool] | None = None, shared: bool = False,
                secrets: Secrets | None = None, source: str = "embedded default") -> None:
    """Run until SIGTERM or SIGINT."""
    server = Server(config, sockets=sockets, run_queue=run_queue, wake_fd=wake_fd, peers_alive=peers_alive,
                    shared=shared, secrets=secrets, source=source)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        _settle_heap()
        if not quiet:
            print(server.banner(), flush=True, file=sys.stdout)
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        await server.stop()


def _settle_heap() -> None:
    """Keep the garbage collector out of the tail latency.

    Everything built at start-up (modules, configuration, compiled patterns, the pipeline)
    lives as long as the process; gc.freeze() moves it out of the collector's sight, so a full
    collection no longer walks it. A session allocates many short-lived objects per message,
    almost all freed by reference counting; a larger first-generation threshold makes the
    collector run a tenth as often, each run still short.
    """
    gc.collect()
    gc.freeze()
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, 7000), gen1, gen2)
