"""Pausing a listener on a shared socket (worker processes): the queue process stops accepting
while its deliveries pile up, and the connections wait in the kernel for another worker or for
resume(); the balance between them (supervisor.AcceptBalancer)."""

from __future__ import annotations

import asyncio

from mailboat.server import supervisor
from mailboat.server.listener import bind

from serverkit import smtp_listener


async def _greeting(port, wait):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)  # the kernel completes it
    try:
        return await asyncio.wait_for(reader.readline(), wait)
    except TimeoutError:
        return None
    finally:
        writer.close()


def test_paused_listener_leaves_connections_to_others_and_resumes():
    async def main():
        sockets = bind(("127.0.0.1", 0))
        port = sockets[0].getsockname()[1]
        listener = smtp_listener(sockets)
        await listener.start()
        before = await _greeting(port, 5)
        listener.pause()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while_paused = await asyncio.wait_for(reader.readline(), 0.5)
        except TimeoutError:
            while_paused = None
        # Another worker on the same socket (its own descriptors, as after fork) takes it.
        other = smtp_listener([sock.dup() for sock in sockets])
        await other.start()
        taken = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        await other.stop()
        await listener.resume()
        after = await _greeting(port, 5)
        await listener.stop()
        closed = all(sock.fileno() == -1 for sock in sockets)
        return before, while_paused, taken, after, closed

    before, while_paused, taken, after, closed = asyncio.run(main())
    assert before.startswith(b"220 ")
    assert while_paused is None
    assert taken.startswith(b"220 ")
    assert after.startswith(b"220 ")
    assert closed  # stop() closes the descriptors it kept for resume()


class _Runner:
    in_flight = 0


class _Listener:
    def __init__(self):
        self.paused = False
        self.calls = []

    def pause(self):
        self.paused = True
        self.calls.append("pause")

    async def resume(self):
        self.paused = False
        self.calls.append("resume")


def test_balance_pauses_while_deliveries_pile_up_and_only_with_a_peer(monkeypatch):
    monkeypatch.setattr(supervisor, "ACCEPT_BALANCE_EVERY", 0.001)

    async def main():
        runner, listener, peers = _Runner(), _Listener(), [True]
        balancer = supervisor.AcceptBalancer([listener], runner, lambda: peers[0])  # type: ignore[list-item]
        task = asyncio.get_running_loop().create_task(balancer.run())

        async def settle(in_flight, alive=True):
            runner.in_flight, peers[0] = in_flight, alive
            await asyncio.sleep(0.03)
            return listener.paused

        states = [
            await settle(supervisor.ACCEPT_PAUSE_AT - 1),   # below the mark: accepting
            await settle(supervisor.ACCEPT_PAUSE_AT),       # piled up: paused
            await settle(supervisor.ACCEPT_RESUME_AT + 1),  # hysteresis: still paused
            await settle(supervisor.ACCEPT_RESUME_AT),      # caught up: accepting
            await settle(supervisor.ACCEPT_PAUSE_AT),       # paused again
            await settle(supervisor.ACCEPT_PAUSE_AT, alive=False),  # the last other worker died: accepting
            await settle(10 * supervisor.ACCEPT_PAUSE_AT, alive=False),  # and never pauses alone
        ]
        task.cancel()
        return states, listener.calls

    states, calls = asyncio.run(main())
    assert states == [False, True, True, False, True, False, False]
    assert calls == ["pause", "resume", "pause", "resume"]
