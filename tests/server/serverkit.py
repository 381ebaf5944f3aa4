"""An in-process SMTP listener for the session-driver tests: no filters, a memory queue."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

from mailboat.policy.pipeline import Pipeline
from mailboat.queue.intake import Intake
from mailboat.queue.memory import MemoryQueueStore
from mailboat.server.listener import Listener
from mailboat.server.session import Limits, ListenerSettings, ServerContext


def smtp_listener(sockets: list[socket.socket] | None = None, pipeline: Pipeline | None = None,
                  store=None) -> Listener:
    """A plain `smtp` listener on 127.0.0.1 (an ephemeral port), or on shared `sockets`; no
    filters and a memory queue unless given."""
    ctx = ServerContext(hostname="mx.test.example", pipeline=pipeline or Pipeline([]),
                        intake=Intake(store or MemoryQueueStore()), limits=Limits())
    return Listener(ctx, ListenerSettings("smtp", "none", "none"), ("127.0.0.1", 0), sockets)


async def client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Callable[[bytes], Awaitable[bytes]]]:
    """Connect, read the greeting, and return a `say(line) -> reply line` beside the streams."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert (await reader.readline()).startswith(b"220 ")

    async def say(line: bytes) -> bytes:
        writer.write(line + b"\r\n")
        return await reader.readline()

    return reader, writer, say
