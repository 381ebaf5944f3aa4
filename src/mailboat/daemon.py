"""The server's processes: from `mailboat serve` to running services, in one process or many.

Part of the composition root with app.py (which builds one server process from the Config):
this module decides which processes run and as whom, and runs each one (`serve()`: build,
start the services, wait for SIGTERM or SIGINT, stop them, drain them, close). Started as root
with `[server] user`, it binds the listeners and reads the keys first, takes the data directory
over, drops root (server/privileges.py), and only then opens the queue and forks the
`[server] workers` (server/supervisor.py).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys

from mailboat import __version__
from mailboat.accounts import UserStore
from mailboat.app import QUEUE_LEASE, Role, Secrets, Server, StartupError, build, load_secrets, users_path
from mailboat.config import Config
from mailboat.queue import prepare_store
from mailboat.server import privileges
from mailboat.server.supervisor import Supervisor, WakePipe
from mailboat.server.tls import ensure_self_signed

log = logging.getLogger("mailboat.master")

# The longest a stop waits for the services to drain: deliveries in flight are bounded by the
# delivery time-out, and past the claim lease another runner may take their messages anyway.
DRAIN_TIMEOUT = QUEUE_LEASE


def _run_loop(main) -> None:
    """Run `main` on uvloop (a dependency wherever it builds), else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def worker_count(config: Config) -> int:
    workers = config.server.workers
    if workers == 0:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, workers)


def run(config: Config, source: str = "embedded default") -> None:
    """Serve until SIGTERM/SIGINT, in `[server] workers` processes.

    With more than one: the listening sockets are bound here, then the workers are forked (before
    any event loop or queue thread exists in this process) and all accept on the same sockets.
    Every worker opens the queue (one writer at a time across processes, each worker
    group-commits its own sessions' messages; a 250 still means on disk). This process
    runs the queue runner; the others wake it through a pipe after each enqueue. SIGTERM or SIGINT
    here stops the workers too; a worker that dies is logged and not restarted.
    """
    try:
        _run_workers(config, source)
    except privileges.PrivilegeError as exc:
        raise StartupError(str(exc)) from None
    except BaseException:
        # The last log lines ("daemon stopped") before the CLI's one-line error, not after it.
        from mailboat.log import flush_logging
        flush_logging()
        raise


def _as_server_user(config: Config, who: privileges.Identity) -> tuple[list[list], Secrets]:
    """Started as root with [server] user: bind the listeners and read the keys as root, hand
    the data directory (and a log file made as root) to the user, then become it for good."""
    from mailboat.server.listener import bind

    if not os.path.isdir(config.data_dir):
        os.makedirs(config.data_dir, mode=0o700, exist_ok=True)
        os.chown(config.data_dir, who.uid, who.gid)
    taken = privileges.take_over(config.data_dir, who)  # what a run as root (or as another user) left
    if taken:
        log.info("data_dir %s: took over %d entries left by another owner (now %s)",
                 config.data_dir, taken, who.label)
    secrets = load_secrets(config)
    if not config.tls.cert:  # the self-signed pair load_secrets may just have made
        privileges.take_over(os.path.join(config.data_dir, "tls"), who)
    sockets = [bind(item.endpoint) for item in config.listener]
    for item in config.listener:
        if isinstance(item.endpoint, str):  # a unix socket: the user's, to remove it on the next start
            os.chown(item.endpoint, who.uid, who.gid)
    if config.log.file:
        privileges.own_log_file(config.log.file, who)
    privileges.drop(who)
    privileges.check_reachable(config.data_dir, who)
    if config.log.file and not os.access(config.log.file, os.W_OK):
        raise StartupError(f"log.file: {config.log.file} is not writable by {who.label}")
    log.info("running as %s (uid %d, gid %d)", who.label, who.uid, who.gid)
    return sockets, secrets


def _run_workers(config: Config, source: str) -> None:
    workers = worker_count(config)
    who = privileges.target(config.server.user)
    sockets, secrets = _as_server_user(config, who) if who is not None else (None, None)
    if workers <= 1:
        _run_loop(serve(config, Role(sockets=sockets, secrets=secrets), source=source))
        return
    from mailboat.server.listener import bind

    os.makedirs(config.data_dir, mode=0o700, exist_ok=True)
    # Created once here, so the workers never race to create the schema or the certificate.
    prepare_store(config.queue, config.data_dir)
    UserStore(users_path(config)).close()
    if not config.tls.cert:
        ensure_self_signed(os.path.join(config.data_dir, "tls"), config.hostname)
    if sockets is None:
        sockets = [bind(item.endpoint) for item in config.listener]
    wake = WakePipe()
    supervisor = Supervisor()

    def worker() -> None:
        wake.writer_only()
        _run_loop(serve(config, Role(sockets=sockets, run_queue=False, shared=True, wake=wake, secrets=secrets),
                        quiet=True, source=source))

    supervisor.fork(workers - 1, worker)
    wake.reader_only()
    try:
        _run_loop(serve(config, Role(sockets=sockets, shared=True, wake=wake, workers=supervisor, secrets=secrets),
                        source=source))
    finally:
        supervisor.close()  # the workers its service did not end (a start that failed)


async def serve(config: Config, role: Role, *, quiet: bool = False, source: str = "embedded default") -> None:
    """Run one server process until SIGTERM or SIGINT: build it, start its services, then stop,
    drain and close them."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server: Server | None = None
    try:
        server = build(config, role)
        await server.services.start()
        log.info("daemon started -- version %s, configuration %s", __version__, source)
        _settle_heap()
        if not quiet:
            print(server.banner(), flush=True, file=sys.stdout)
        await stop.wait()
    finally:
        if server is not None:
            await server.services.stop()
            await server.services.drain(DRAIN_TIMEOUT)
            await server.close()
        log.info("daemon stopped")


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
