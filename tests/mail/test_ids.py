"""Queue ids: shape, uniqueness within and across processes, time order."""

import multiprocessing
import time

from mailboat.mail.ids import QUEUE_ID_LENGTH, is_queue_id, new_queue_id, queue_id_time


def test_shape_and_validator():
    qid = new_queue_id()
    assert len(qid) == QUEUE_ID_LENGTH == 14 and qid.isalnum() and qid.isascii()
    assert is_queue_id(qid)
    for bad in ["", "abc", "../../etc/pass", "ABCDEFGHIJ-KLM", "A" * 15, "ÄBCDEFGHIJKLMN", None, 12345678901]:
        assert not is_queue_id(bad)


def test_unique_and_strictly_increasing_in_one_process():
    ids = [new_queue_id() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # base62 in ASCII order: string order is time order


def test_encodes_creation_time():
    before = time.time()
    qid = new_queue_id()
    assert before - 0.01 <= queue_id_time(qid) <= time.time() + 0.01
    assert queue_id_time("short") is None


def _mint(n, out):
    out.put([new_queue_id() for _ in range(n)])


def test_unique_across_forked_processes():
    ctx = multiprocessing.get_context("fork")
    new_queue_id()  # the parent has state that children must not reuse
    out = ctx.Queue()
    procs = [ctx.Process(target=_mint, args=(20_000, out)) for _ in range(4)]
    for p in procs:
        p.start()
    ids = [qid for _ in procs for qid in out.get(timeout=60)]
    for p in procs:
        p.join()
    ids += [new_queue_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids) == 100_000
    assert len({qid[-5:] for qid in ids}) == 5  # one process tag each
