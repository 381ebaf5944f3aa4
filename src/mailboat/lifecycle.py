"""The lifecycle of a server's long-lived parts: start, stop, drain.

Every part of a running server that outlives one request (a listener, the queue runner, the
journey pruner, the accept balancer, the worker supervisor) is a `Service`. The composition
root (app.py) builds them and lists them in the order they start; daemon.py runs the list as
one `Services` group:

    services = Services([runner, pruner, *listeners, balancer])
    await services.start()        # in order; a failure stops and drains what had started
    ...                           # until SIGTERM or SIGINT
    await services.stop()         # in reverse order: nothing takes new work any more
    await services.drain(timeout) # in reverse order: what is under way finishes, within `timeout`

Reverse order, because a service started later may depend on one started earlier (the
listeners hand messages to the runner; the balancer pauses the listeners): the dependant goes
first. Stopping is a separate phase from draining so that every part stops taking work at once
(all listeners close together), and then each finishes what it holds.

What the three steps mean for one service:

- `start()` brings it up and returns once it works (a listener is bound and accepting). If it
  raises, the group stops and drains the services started before it, then re-raises.
- `stop()` stops taking new work and returns at once: a listener stops accepting and tells idle
  clients 421; a background task is cancelled. A service may keep taking work from those that
  drain before it (the queue runner goes on delivering what the listeners still hand over).
- `drain(timeout)` finishes what is under way and returns within `timeout` seconds. The group
  gives each one what is left of a single deadline and cuts off one that overruns (cancelling
  it, with a warning): a delivery cut off that way keeps its lease, so the message is delivered
  again later, a duplicate, never a loss.

This is maddy's lifetime tracking (framework/module/lifetime.go) with a drain step, the way
Postfix's master stops its listeners first and lets the delivery agents finish. Lines are
logged at debug level; a service that fails to stop or drain is logged and the others go on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Protocol

log = logging.getLogger("mailboat.master")

UNDO_TIMEOUT = 60.0  # seconds to drain what had started when a later service fails to start


class Service(Protocol):
    """A long-lived part of the server. See the module docstring for what each step means."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def drain(self, timeout: float) -> None: ...


class Background:
    """A service that runs one coroutine (a loop that sleeps between rounds) as a task: stop()
    cancels it, drain() waits until it has ended."""

    def __init__(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.name = name
        self._run = run
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"mailboat {self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def drain(self, timeout: float) -> None:
        if self._task is not None:
            await asyncio.wait([self._task], timeout=timeout)
            if not self._task.cancelled() and self._task.done() and self._task.exception() is not None:
                log.error("%s ended with an error", self.name, exc_info=self._task.exception())


class Services:
    """A group of services, started in order and stopped and drained in reverse (see above)."""

    def __init__(self, services: Iterable[Service] = ()) -> None:
        self.services: list[Service] = list(services)
        self._started: list[Service] = []  # in start order

    def add(self, service: Service) -> None:
        """Append a service: it starts after those already in the group."""
        self.services.append(service)

    def __iter__(self):
        return iter(self.services)

    async def start(self, *, undo_timeout: float = UNDO_TIMEOUT) -> None:
        """Start each service in order. If one raises, stop and drain those already started (in
        reverse order, within `undo_timeout` seconds), then re-raise its exception."""
        for service in self.services:
            try:
                await service.start()
            except BaseException as exc:
                log.debug("%s did not start: %s", service.name, exc)
                await self.stop()
                await self.drain(undo_timeout)
                raise
            self._started.append(service)
            log.debug("%s started", service.name)

    async def stop(self) -> None:
        """Stop every started service, the last started first."""
        for service in reversed(self._started):
            try:
                await service.stop()
            except Exception:
                log.exception("%s: stopping failed", service.name)
            else:
                log.debug("%s stopped", service.name)

    async def drain(self, timeout: float) -> None:
        """Drain every started service, the last started first, all within `timeout` seconds;
        the group is then empty (start() may be called again)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        started, self._started = self._started, []
        for service in reversed(started):
            left = max(0.0, deadline - loop.time())
            try:
                async with asyncio.timeout(left):
                    await service.drain(left)
            except TimeoutError:
                log.warning("%s: still busy at the end of the %g s drain; cut off", service.name, timeout)
            except Exception:
                log.exception("%s: draining failed", service.name)
            else:
                log.debug("%s drained", service.name)
