"""An in-process SMTP listener for the session-driver tests: no filters, a memory queue."""

from __future__ import annotations

import socket

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
