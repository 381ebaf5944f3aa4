"""The count of transactions still to be queued (Intake.transactions: the sessions announce them),
which the queue's group commit waits for: up at MAIL, down when the message is handed to the queue or
the transaction ends any other way, and never left behind by a client that goes away."""

from __future__ import annotations

import asyncio

from serverkit import client as _client
from serverkit import smtp_listener


async def _serve():
    listener = smtp_listener()
    await listener.start()
    port = listener.server.sockets[0].getsockname()[1]
    return listener.ctx, listener, port


async def _until(predicate, turns=500):
    for _ in range(turns):
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


def test_counted_from_mail_until_queued_or_reset():
    async def main():
        ctx, listener, port = await _serve()
        intake = ctx.intake
        _, writer, say = await _client(port)
        seen = [intake.transactions]
        assert (await say(b"HELO client.example.org")).startswith(b"250")
        assert (await say(b"MAIL FROM:<a@example.org>")).startswith(b"250")
        seen.append(intake.transactions)
        assert (await say(b"RSET")).startswith(b"250")
        seen.append(intake.transactions)
        assert (await say(b"MAIL FROM:<a@example.org>")).startswith(b"250")
        assert (await say(b"RCPT TO:<b@example.com>")).startswith(b"250")
        assert (await say(b"DATA")).startswith(b"354")
        seen.append(intake.transactions)
        assert (await say(b"Subject: x\r\n\r\nbody\r\n.")).startswith(b"250 2.0.0 Ok: queued as ")
        seen.append(intake.transactions)
        writer.close()
        await listener.stop()
        return seen, len(await ctx.intake.store.list())

    seen, queued = asyncio.run(main())
    assert seen == [0, 1, 0, 1, 0]
    assert queued == 1


def test_two_sessions_and_clients_that_leave_mid_transaction():
    async def main():
        ctx, listener, port = await _serve()
        counter, intake = ctx.counter, ctx.intake
        clients = [await _client(port) for _ in range(2)]
        for _, _, say in clients:
            await say(b"HELO client.example.org")
            await say(b"MAIL FROM:<a@example.org>")
        both = intake.transactions
        # Both go away without QUIT, one of them in the middle of its message.
        _, in_data, say = clients[1]
        await say(b"RCPT TO:<b@example.com>")
        await say(b"DATA")
        in_data.write(b"Subject: half a message\r\n")
        for _, writer, _ in clients:
            writer.close()
        drained = await _until(lambda: intake.transactions == 0 and counter.total == 0)
        await listener.stop()
        return both, drained, intake.transactions

    both, drained, left = asyncio.run(main())
    assert both == 2
    assert drained and left == 0
