"""The worker processes of one server (`[server] workers` > 1), seen from the process that forks
them, and what ties the processes together.

The listening sockets are bound before the fork and every process accepts on them; every
process opens the queue; one of them (the one that forked the others) runs the queue runner.

- `Supervisor` forks the workers (before any event loop or thread exists in this process, so
  no lock is held across fork()), tells whether one of them is still alive (`peers_alive`,
  reaping and logging those that exited; a worker that dies is not restarted), and is the
  service that ends them: stop() sends them SIGTERM, drain() waits until they have exited.
- `WakePipe` wakes the runner after an enqueue in another process (one byte per loop
  iteration at most); `WakePipe.reader(wake)` is the service that listens in the runner's process.
- `AcceptBalancer` pauses the runner's process's listeners while its deliveries pile up, so
  the other workers take the new sessions.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Protocol

from mailboat import log as mblog

log = logging.getLogger("mailboat.master")

# The runner process's listeners pause at this many deliveries in flight and resume at the
# second figure (AcceptBalancer), looking every ACCEPT_BALANCE_EVERY seconds.
ACCEPT_PAUSE_AT = 16
ACCEPT_RESUME_AT = 4
ACCEPT_BALANCE_EVERY = 0.05
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
REAP_EVERY = 0.05  # seconds between looks at the workers while they exit (drain)


def _end_with(parent: int) -> None:
    """In a worker just forked: get SIGTERM when the process that forked it dies, however it dies
    (SIGKILL, the OOM killer), so no orphan keeps accepting on the shared sockets and a restart
    finds its ports free. Linux's PR_SET_PDEATHSIG; set after any change of ids (a change clears
    it), and checked against a parent that died before it was set."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log.warning("worker %d: cannot ask to end with the master: errno %d", os.getpid(), ctypes.get_errno())
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


class Supervisor:
    """The forked workers. A service in the process that forked them (start() has nothing to
    do: fork() ran before the event loop)."""

    name = "worker supervisor"

    def __init__(self) -> None:
        self.alive: list[int] = []

    def fork(self, count: int, main: Callable[[], None]) -> None:
        """Fork `count` workers. Each runs `main()` and exits: status 0 when it returns (or on
        SIGINT), 1 when it raises (logged). Returns in this process only."""
        # No thread may live across fork() (a lock it holds would stay held in the child): stop
        # the log writer thread, fork, then every process starts its own (with its own PID).
        mblog.flush_logging()
        parent = os.getpid()
        for _ in range(count):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    _end_with(parent)
                    self.alive = []
                    mblog.reopen_after_fork()
                    main()
                    code = 0
                except KeyboardInterrupt:
                    code = 0
                except BaseException:
                    log.exception("worker %d failed", os.getpid())
                finally:
                    mblog.flush_logging()
                    os._exit(code)
            self.alive.append(pid)
        mblog.reopen_after_fork()
        log.info("started %d worker processes: %s", len(self.alive), " ".join(map(str, self.alive)))

    def peers_alive(self) -> bool:
        """Whether a worker still runs; one that exited is reaped and logged."""
        for pid, status in self._reap():
            log.warning("worker %d exited with status %d; it is not restarted", pid, status)
        return bool(self.alive)

    def _reap(self) -> list[tuple[int, int]]:
        exited = []
        for pid in list(self.alive):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done:
                self.alive.remove(pid)
                exited.append((pid, status))
        return exited

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        """Ask every worker to stop (SIGTERM: each stops and drains its own services)."""
        for pid in self.alive:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    async def drain(self, timeout: float) -> None:
        """Wait until every worker has exited (the group cuts this off at `timeout`)."""
        while True:
            for pid, status in self._reap():
                if status != 0:
                    log.warning("worker %d exited with status %d", pid, status)
            if not self.alive:
                return
            await asyncio.sleep(REAP_EVERY)

    def close(self) -> None:
        """After the event loop: end the workers the services did not (a start that failed), and
        wait for them."""
        for pid in self.alive:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in self.alive:
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:
                continue
            if status != 0:
                log.warning("worker %d exited with status %d", pid, status)
        self.alive = []


class WakePipe:
    """A pipe from the workers to the runner's process: a byte in it means "look at the queue"."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._pending = False

    def writer_only(self) -> None:
        """In a worker, after the fork: it only writes."""
        os.close(self._read)

    def reader_only(self) -> None:
        """In the runner's process, after the fork: it only reads."""
        os.close(self._write)

    def notify(self, queue_id: str | None = None) -> None:
        """Wake the runner's process (usable as an on_enqueued callback). One byte per loop
        iteration at most, however many sessions enqueued in it."""
        if not self._pending:
            self._pending = True
            asyncio.get_running_loop().call_soon(self._send)

    def _send(self) -> None:
        self._pending = False
        try:
            os.write(self._write, b"w")
        except (BlockingIOError, InterruptedError, BrokenPipeError):
            pass  # a full pipe already holds a wake-up; no runner: its poll finds the message

    def reader(self, wake: Callable[[], None]) -> _WakeReader:
        """The service that calls `wake()` (the runner's) when a worker writes to the pipe."""
        return _WakeReader(self._read, wake)


class _WakeReader:
    name = "wake pipe"

    def __init__(self, fd: int, wake: Callable[[], None]) -> None:
        self.fd, self.wake = fd, wake

    async def start(self) -> None:
        asyncio.get_running_loop().add_reader(self.fd, self._woken)

    async def stop(self) -> None:
        asyncio.get_running_loop().remove_reader(self.fd)

    async def drain(self, timeout: float) -> None:
        pass

    def _woken(self) -> None:
        try:
            os.read(self.fd, 4096)
        except (BlockingIOError, InterruptedError):
            pass
        self.wake()


class _Pausable(Protocol):
    paused: bool

    @property
    def endpoint(self) -> object: ...

    def pause(self) -> None: ...

    async def resume(self) -> None: ...


class _Busy(Protocol):
    @property
    def in_flight(self) -> int: ...


class AcceptBalancer:
    """The process that runs the queue delivers every worker's mail. While its deliveries pile
    up (ACCEPT_PAUSE_AT in flight) it stops accepting connections, so the other workers take the
    new sessions and this one catches up; it accepts again once they are down to
    ACCEPT_RESUME_AT, or at once if no other worker is left (a process that is alone never
    pauses). Measured side by side with 2 workers, 4 rounds each: 1 KB over 20 sessions +8 % end
    to end with 11 % less CPU per message; 100 KB over 20 sessions +43 %; one session +58 % (the
    client no longer waits on a process busy delivering). Never accepting there at all was 0.64
    times at 100 KB: large local messages are delivered by the process that accepts them, so
    both must take sessions when the queue is quiet.

    Run as a service with `lifecycle.Background("accept balancer", balancer.run)`."""

    def __init__(self, listeners: Sequence[_Pausable], runner: _Busy, peers_alive: Callable[[], bool]) -> None:
        self.listeners, self.runner, self.peers_alive = listeners, runner, peers_alive

    async def run(self) -> None:
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
