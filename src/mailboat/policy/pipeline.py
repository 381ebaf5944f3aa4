"""Runs filters in their configured order; the first verdict with a reply wins.

Headers contributed by filters that let the message through are collected in order and
prepended by the session driver under our Received header.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from mailboat.policy.context import SessionInfo, TransactionInfo
from mailboat.policy.filter import Filter
from mailboat.policy.verdict import CONTINUE, Verdict


class Pipeline:
    def __init__(self, filters: Sequence[Filter]) -> None:
        self.filters = tuple(filters)

    async def _first(self, hook: Callable[[Filter], Awaitable[Verdict]]) -> Verdict:
        for f in self.filters:
            verdict = await hook(f)
            if verdict.is_final:
                return verdict
        return CONTINUE

    async def on_connect(self, session: SessionInfo) -> Verdict:
        return await self._first(lambda f: f.on_connect(session))

    async def on_helo(self, session: SessionInfo) -> Verdict:
        return await self._first(lambda f: f.on_helo(session))

    async def on_mail(self, session: SessionInfo, txn: TransactionInfo) -> Verdict:
        return await self._first(lambda f: f.on_mail(session, txn))

    async def on_rcpt(self, session: SessionInfo, txn: TransactionInfo, recipient: str) -> Verdict:
        return await self._first(lambda f: f.on_rcpt(session, txn, recipient))

    async def on_data(self, session: SessionInfo, txn: TransactionInfo, message: bytes) -> Verdict:
        headers: list[bytes] = []
        remove: list[bytes] = []
        for f in self.filters:
            verdict = await f.on_data(session, txn, message)
            if verdict.is_final:
                return verdict
            headers.extend(verdict.headers)
            remove.extend(verdict.remove_headers)
        if headers or remove:
            return Verdict(headers=tuple(headers), remove_headers=tuple(remove))
        return CONTINUE
