"""The group-commit writer on its own: one transaction per loop turn, each caller its own verdict,
and append()ed rows riding along (queue/groupcommit.py)."""

import asyncio
import logging
import sqlite3
import threading

import pytest

from mailboat.queue.groupcommit import GroupCommitWriter
from mailboat.queue.store import DuplicateQueueIdError, StoreStats

INSERT = "INSERT INTO t (k, v) VALUES (?, ?)"


def _writer(tmp_path):
    path = str(tmp_path / "g.sqlite")
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)")
    stats = StoreStats()
    return GroupCommitWriter(conn, stats, wal_path=path + "-wal"), stats, path


def _rows(path):
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT k, v FROM t"))
    finally:
        conn.close()


def test_one_failing_operation_fails_alone(tmp_path):
    """Three operations in one turn, the middle one inserts and then fails: the others are
    committed with their results, the failure is its caller's alone, and nothing it wrote stays."""
    writer, stats, path = _writer(tmp_path)

    def insert(k, v):
        return lambda c: c.execute(INSERT, (k, v)).rowcount

    def half_then_bug(c):
        c.execute(INSERT, ("half", 2))
        raise ValueError("a bug in this operation")

    async def main():
        futures = [writer.submit(insert("a", 1)), writer.submit(half_then_bug), writer.submit(insert("c", 3))]
        results = await asyncio.gather(*futures, return_exceptions=True)
        await writer.close()
        return results

    first, failed, last = asyncio.run(main())
    assert first == 1 and last == 1
    assert isinstance(failed, ValueError) and str(failed) == "a bug in this operation"
    assert _rows(path) == {"a": 1, "c": 3}
    assert stats.commits >= 1


def test_duplicate_key_is_that_callers_error(tmp_path):
    writer, _, path = _writer(tmp_path)

    async def main():
        await writer.submit(lambda c: c.execute(INSERT, ("k", 1)))
        futures = [writer.submit(lambda c: c.execute(INSERT, ("k", 2))),
                   writer.submit(lambda c: c.execute(INSERT, ("other", 3)).rowcount)]
        results = await asyncio.gather(*futures, return_exceptions=True)
        await writer.close()
        return results

    duplicate, other = asyncio.run(main())
    assert isinstance(duplicate, DuplicateQueueIdError)
    assert other == 1
    assert _rows(path) == {"k": 1, "other": 3}


def test_appended_rows_share_the_turns_transaction(tmp_path):
    """Rows appended in one turn go in with that turn's operations: one COMMIT for all."""
    writer, stats, path = _writer(tmp_path)

    async def main():
        for i in range(5):
            writer.append(INSERT, (f"row{i}", i))
        result = await writer.submit(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0])
        commits = stats.commits
        await writer.close()
        return result, commits

    seen_by_op, commits = asyncio.run(main())
    assert seen_by_op == 5  # the rows were inserted first, in the same transaction
    assert commits == 1
    assert _rows(path) == {f"row{i}": i for i in range(5)}


def test_appended_rows_alone_and_from_another_thread(tmp_path):
    writer, _, path = _writer(tmp_path)

    async def main():
        writer.append(INSERT, ("loop", 1))
        await asyncio.sleep(0)  # the turn ends: the rows are committed without any operation
        await asyncio.sleep(0)
        after_turn = _rows(path)  # (another connection: only what is committed)
        thread = threading.Thread(target=writer.append, args=(INSERT, ("thread", 2)))
        thread.start()
        thread.join()
        after_thread = _rows(path)
        await writer.close()
        return after_turn, after_thread

    after_turn, after_thread = asyncio.run(main())
    assert after_turn == {"loop": 1}
    assert after_thread == {"loop": 1, "thread": 2}


def test_a_failing_row_costs_only_the_rows(tmp_path, caplog):
    """A row the database refuses (here a duplicate key) fails the shared transaction; the
    operations are replayed alone and succeed; the rows are tried once more, then logged."""
    writer, _, path = _writer(tmp_path)

    async def main():
        await writer.submit(lambda c: c.execute(INSERT, ("taken", 0)))
        writer.append(INSERT, ("taken", 1))
        result = await writer.submit(lambda c: c.execute(INSERT, ("op", 2)).rowcount)
        await writer.close()
        return result

    with caplog.at_level(logging.WARNING, logger="mailboat.queue"):
        assert asyncio.run(main()) == 1
    assert _rows(path) == {"taken": 0, "op": 2}
    assert "1 background record(s) not written" in caplog.text


def test_lone_failing_operation_is_not_replayed(tmp_path):
    writer, _, _ = _writer(tmp_path)
    calls = []

    def failing(c):
        calls.append(1)
        raise KeyError("x")

    async def main():
        with pytest.raises(KeyError):
            await writer.submit(failing)
        await writer.close()

    asyncio.run(main())
    assert calls == [1]


def _settles_within(future, turns):
    """Run `turns` loop turns (sleep(0)); whether `future` is done by then."""
    async def spin():
        for _ in range(turns):
            if future.done():
                return True
            await asyncio.sleep(0)
        return future.done()
    return spin()


def test_commits_at_once_when_nobody_is_coming(tmp_path):
    """company() says 0: the turn commits at the end of the loop turn, as without a company
    (durable=False: answered at COMMIT, so loop turns can tell)."""
    writer, _, path = _writer(tmp_path)
    writer.company = lambda: 0
    writer.linger = 10.0  # would be seen

    async def main():
        future = writer.submit(lambda c: c.execute(INSERT, ("a", 1)).rowcount, durable=False)
        done = await _settles_within(future, 50)
        await writer.close()
        return done, future.result()

    assert asyncio.run(main()) == (True, 1)
    assert _rows(path) == {"a": 1}


def test_waits_for_company_and_commits_when_the_last_one_joins(tmp_path):
    """Two transactions are coming: the first submit waits (no commit in many loop turns), the
    second joins the same transaction, and its arrival (company() at 0) commits both at once."""
    writer, stats, path = _writer(tmp_path)
    coming = [2]
    writer.company = lambda: coming[0]
    writer.linger = 10.0

    async def main():
        coming[0] -= 1
        first = writer.submit(lambda c: c.execute(INSERT, ("a", 1)).rowcount, durable=False)
        waited = not await _settles_within(first, 50)
        committed_meanwhile = _rows(path)
        coming[0] -= 1
        second = writer.submit(lambda c: c.execute(INSERT, ("b", 2)).rowcount)
        results = await asyncio.wait_for(asyncio.gather(first, second), 5)
        await writer.close()
        return waited, committed_meanwhile, results

    waited, meanwhile, results = asyncio.run(main())
    assert waited and meanwhile == {}
    assert results == [1, 1]
    assert stats.commits == 1  # one transaction for both
    assert _rows(path) == {"a": 1, "b": 2}


def test_a_row_from_the_last_one_expected_ends_the_wait_too(tmp_path):
    """A message delivered before queueing writes only journey rows: when they come from the
    last transaction expected, the lingering turn commits without waiting out its linger."""
    writer, stats, path = _writer(tmp_path)
    coming = [2]
    writer.company = lambda: coming[0]
    writer.linger = 10.0

    async def main():
        coming[0] -= 1
        first = writer.submit(lambda c: c.execute(INSERT, ("a", 1)).rowcount, durable=False)
        waited = not await _settles_within(first, 50)
        coming[0] -= 1
        writer.append(INSERT, ("row", 2))
        result = await asyncio.wait_for(first, 5)
        await writer.close()
        return waited, result

    assert asyncio.run(main()) == (True, 1)
    assert stats.commits == 1
    assert _rows(path) == {"a": 1, "row": 2}


def test_linger_is_bounded_when_company_never_comes(tmp_path):
    """A transaction that stays open (a slow client) holds a commit for `linger`, no longer."""
    writer, _, path = _writer(tmp_path)
    writer.company = lambda: 1
    writer.linger = 0.05

    async def main():
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = await asyncio.wait_for(writer.submit(lambda c: c.execute(INSERT, ("a", 1)).rowcount), 5)
        waited = loop.time() - started
        await writer.close()
        return result, waited

    result, waited = asyncio.run(main())
    assert result == 1
    assert 0.04 <= waited < 2
    assert _rows(path) == {"a": 1}


def test_close_commits_a_lingering_turn(tmp_path):
    writer, _, path = _writer(tmp_path)
    writer.company = lambda: 1
    writer.linger = 60.0

    async def main():
        future = writer.submit(lambda c: c.execute(INSERT, ("a", 1)).rowcount)
        await asyncio.sleep(0)
        await asyncio.wait_for(writer.close(), 5)
        return await asyncio.wait_for(future, 5)

    assert asyncio.run(main()) == 1
    assert _rows(path) == {"a": 1}
