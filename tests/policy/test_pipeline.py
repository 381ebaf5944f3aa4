"""Pipeline: order, first final verdict wins, headers collected; only overriding filters run."""

import asyncio

from mailboat.policy import Pipeline, SessionInfo, TransactionInfo
from mailboat.policy.filter import Filter
from mailboat.policy.verdict import CONTINUE, Verdict, refuse


class Recorder(Filter):
    def __init__(self, name, calls, verdict=CONTINUE):
        self.name, self.calls, self.verdict = name, calls, verdict

    async def on_rcpt(self, session, txn, recipient):
        self.calls.append((self.name, "rcpt"))
        return self.verdict

    async def on_data(self, session, txn, message):
        self.calls.append((self.name, "data"))
        return Verdict(headers=(f"X-{self.name}: 1\r\n".encode(),))


class Passive(Filter):
    """Overrides nothing: never awaited."""

    async def never(self):  # pragma: no cover - a marker only
        raise AssertionError


def test_order_first_final_and_headers():
    calls = []
    pipeline = Pipeline([Recorder("a", calls), Passive(), Recorder("b", calls, refuse(550, "5.7.1", "no")),
                         Recorder("c", calls)])
    session = SessionInfo(listener="smtp", peer_ip="192.0.2.1", peer_port=25)
    txn = TransactionInfo(sender="s@x.test")

    async def main():
        rcpt = await pipeline.on_rcpt(session, txn, "r@y.test")
        data = await pipeline.on_data(session, txn, b"Subject: s\r\n\r\nb\r\n")
        helo = await pipeline.on_helo(session)
        return rcpt, data, helo

    rcpt, data, helo = asyncio.run(main())
    assert rcpt.reply is not None and rcpt.reply.code == 550
    assert calls[:2] == [("a", "rcpt"), ("b", "rcpt")]  # c never ran: b's verdict was final
    assert data.headers == (b"X-a: 1\r\n", b"X-b: 1\r\n", b"X-c: 1\r\n")
    assert helo is CONTINUE
    assert pipeline._by_hook["on_helo"] == () and len(pipeline._by_hook["on_data"]) == 3
