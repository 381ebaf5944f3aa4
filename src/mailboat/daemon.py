"""The server's processes: from `mailboat serve` to running listeners, in one process or many.

Part of the composition root with app.py (which builds one server process from the Config):
this module decides which processes run and as whom. Started as root with `[server] user`, it
binds the listeners and reads the keys first, takes the data directory over, drops root
(server/privileges.py), and only then opens the queue and forks the `[server] workers`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from mailboat.accounts import UserStore
from mailboat.app import Secrets, StartupError, load_secrets, serve, users_path
from mailboat.config import Config
from mailboat.queue import prepare_store
from mailboat.server import privileges
from mailboat.server.tls import ensure_self_signed

log = logging.getLogger("mailboat.master")


def _run_loop(main) -> None:
    try:
        import uvloop  # optional extra "speed"
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
        _run_loop(serve(config, sockets=sockets, secrets=secrets, source=source))
        return
    from mailboat import log as mblog
    from mailboat.server.listener import bind

    os.makedirs(config.data_dir, mode=0o700, exist_ok=True)
    # Created once here, so the workers never race to create the schema or the certificate.
    prepare_store(config.queue, config.data_dir)
    UserStore(users_path(config)).close()
    if not config.tls.cert:
        ensure_self_signed(os.path.join(config.data_dir, "tls"), config.hostname)
    if sockets is None:
        sockets = [bind(item.endpoint) for item in config.listener]
    # No thread may live across fork() (a lock it holds would stay held in the child): stop the
    # log writer thread, fork, then every process starts its own (with its own PID in the lines).
    mblog.flush_logging()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    children: list[int] = []
    for _ in range(workers - 1):
        pid = os.fork()
        if pid == 0:  # a worker
            code = 1
            try:
                os.close(wake_r)
                mblog.reopen_after_fork()
                _run_loop(serve(config, sockets=sockets, run_queue=False, wake_fd=wake_w, quiet=True,
                                shared=True, secrets=secrets, source=source))
                code = 0
            except KeyboardInterrupt:
                code = 0
            except BaseException:
                log.exception("worker %d failed", os.getpid())
            finally:
                mblog.flush_logging()
                os._exit(code)
        children.append(pid)
    os.close(wake_w)
    mblog.reopen_after_fork()
    log.info("started %d worker processes: %s", len(children), " ".join(map(str, children)))
    alive = list(children)

    def peers_alive() -> bool:
        for pid in list(alive):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done:
                alive.remove(pid)
                log.warning("worker %d exited with status %d; it is not restarted", pid, status)
        return bool(alive)

    try:
        _run_loop(serve(config, sockets=sockets, run_queue=True, wake_fd=wake_r, peers_alive=peers_alive,
                        shared=True, secrets=secrets, source=source))
    finally:
        for pid in alive:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in alive:
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:
                continue
            if status != 0:
                log.warning("worker %d exited with status %d", pid, status)
