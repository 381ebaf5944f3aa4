"""Benchmark (not a test): durable enqueues/s of the SQLite store, and queue-to-Maildir drain rate.

    .venv/bin/python tests/queue/bench_store.py [--seconds 3] [--dir /path/on/the/real/disk]

Each enqueuer is a task that loops enqueue() -> await -> enqueue(), like an SMTP session that
answers 250 after each commit. Prints messages/s, commits and the mean batch per commit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time

from mailboat.delivery.maildir import MaildirTransport
from mailboat.mail.envelope import Envelope, Recipient
from mailboat.mail.ids import new_queue_id
from mailboat.queue.runner import QueueRunner
from mailboat.queue.sqlite import SqliteQueueStore
from mailboat.routing.route import Maildir

ENV = Envelope("sender@example.org", (Recipient("bob@example.com"),), client_ip="127.0.0.1", protocol="ESMTP")


async def enqueue_rate(path: str, size: int, sessions: int, seconds: float) -> tuple[float, int, int]:
    store = SqliteQueueStore(path)
    body = b"Subject: bench\r\n\r\n" + b"x" * (size - 18)
    done = 0
    deadline = time.perf_counter() + seconds

    async def session() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await store.enqueue(new_queue_id(), ENV, body)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(session() for _ in range(sessions)))
    elapsed = time.perf_counter() - start
    commits = store.stats.commits
    await store.close()
    return done / elapsed, commits, done


async def drain_rate(path: str, maildir: str) -> tuple[float, int]:
    store = SqliteQueueStore(path, release_leases=True)
    count = len(await store.list())
    router = type("R", (), {"expand": staticmethod(lambda a: [a]),
                            "route": staticmethod(lambda a: Maildir(os.path.join(maildir, a.split("@")[0])))})()
    runner = QueueRunner(store, router, {"maildir": MaildirTransport()}, batch_size=200, concurrency=200)
    import logging
    logging.getLogger("mailboat.queue").setLevel(logging.WARNING)
    start = time.perf_counter()
    while await runner.run_once():
        pass
    elapsed = time.perf_counter() - start
    await store.close()
    return count / elapsed, count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--dir", default=None, help="directory on the disk to measure (default: a temp dir)")
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="mailboat-bench-", dir=args.dir)
    try:
        print(f"{'size':>6} {'sessions':>8} {'msgs/s':>9} {'commits':>8} {'msgs/commit':>11}")
        for size in (1024, 100 * 1024):
            for sessions in (1, 20):
                path = os.path.join(base, f"q-{size}-{sessions}.sqlite")
                rate, commits, done = asyncio.run(enqueue_rate(path, size, sessions, args.seconds))
                print(f"{size // 1024:>5}K {sessions:>8} {rate:>9.0f} {commits:>8} {done / commits:>11.1f}")
        path = os.path.join(base, "q-1024-20.sqlite")
        rate, count = asyncio.run(drain_rate(path, os.path.join(base, "mail")))
        print(f"drain: {count} queued 1K messages delivered to Maildir at {rate:.0f} msgs/s")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
