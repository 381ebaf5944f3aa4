"""The queue's services in a running server (mailboat/lifecycle.py), in the process that runs
the queue: the runner, the journey pruner and the sweeper of orphaned bodies."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from mailboat.lifecycle import Background
from mailboat.queue.runner import QueueRunner
from mailboat.queue.store import QueueError, QueueStore

log = logging.getLogger("mailboat.master")

PRUNE_EVERY = 3600.0  # seconds between journey prunes, and between sweeps of spooled bodies


class RunnerService:
    """The queue runner as a service. stop() leaves it running: it goes on delivering what the
    listeners, draining before it, still hand over. drain() stops its claims and waits for the
    deliveries in flight, so their outcomes are recorded (QueueRunner.stop()); the group cuts
    them off at its deadline, and a delivery cut off keeps its lease: delivered again later, a
    duplicate, never a loss."""

    name = "queue runner"

    def __init__(self, runner: QueueRunner) -> None:
        self.runner = runner

    async def start(self) -> None:
        self.runner.start()

    async def stop(self) -> None:
        pass

    async def drain(self, timeout: float) -> None:
        await self.runner.stop()


def journey_pruner(store: QueueStore, keep: float) -> Background:
    """The service that forgets old journey events (prune_journeys)."""
    return Background("journey pruner", lambda: prune_journeys(store, keep))


def body_sweeper(store: QueueStore) -> Background:
    """The service that removes the spooled bodies a crash left behind (sweep_bodies)."""
    return Background("body sweeper", lambda: sweep_bodies(store))


async def prune_journeys(store: QueueStore, keep: float, *, every: float = PRUNE_EVERY,
                         clock: Callable[[], float] = time.time) -> None:
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
    its commit. (The store sweeps at open too; this catches what a crash of another process
    leaves.)"""
    while True:
        await asyncio.sleep(every)
        try:
            await store.sweep_bodies()
        except (QueueError, OSError) as exc:
            log.warning("queue: sweeping spooled bodies failed: %s", exc)
