"""CPU cost of the sans-I/O SMTP server engine per transaction, in process, no sockets.

    .venv/bin/python bench/engine_bench.py [--rounds N] [--number N] [--profile VARIANT]

Each transaction is one whole client session on a fresh :class:`ServerConnection` (the
throughput benchmark, Postfix's smtp-source, opens a new connection per message), driven the
way ``mailboat.server.session.Session._loop`` drives it: ``data_to_send()`` before every
``next_event()`` and again before each read, ``accept()`` for Helo/MailFrom/RcptTo/Data,
``send(Reply.make(250, "2.0.0", "Ok: queued as …"))`` at MessageComplete. Only the policy
pipeline, the spool and the socket are left out, so the figure is the engine's own cost
(plus the few lines of driver dispatch that every event pays anyway).

Variants:

* ``helo-1k``: what smtp-source does without ``-L``/pipelining: greeting; HELO; MAIL; RCPT;
  DATA; a 1 KB body in one read; ``.\\r\\n``; QUIT. One read per client command.
* ``helo-100k``: the same with a 100 KB body arriving in 64 KB reads.
* ``ehlo-pipelining-1k``: EHLO, then MAIL+RCPT+DATA in one read (RFC 2920), then the body,
  the final dot and QUIT in one read.

Timing: ``--number`` transactions per round, the variants alternating round by round (these
machines are noisy: alternating keeps all variants under the same load), best round kept and
reported in microseconds per transaction. Before timing, every variant's output is checked
against the replies a correct server must give, so a faster but broken engine cannot pass.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from mailboat import smtp

HOSTNAME = "mx.example.com"


def _body(size: int) -> bytes:
    """A plausible message of about ``size`` octets: headers, then 76-character text lines."""
    head = (
        b"From: <a@example.org>\r\nTo: <bench@example.com>\r\nSubject: engine bench\r\n"
        b"Message-ID: <bench@example.org>\r\n\r\n"
    )
    line = b"x" * 76 + b"\r\n"
    lines = (size - len(head)) // len(line) + 1
    return head + line * lines


def _reads_helo(body: bytes, read_size: int) -> list[bytes]:
    """A non-pipelining client: one read per command, the body in reads of ``read_size``."""
    reads = [b"HELO client.example\r\n", b"MAIL FROM:<a@example.org>\r\n", b"RCPT TO:<bench@example.com>\r\n",
             b"DATA\r\n"]
    reads += [body[i : i + read_size] for i in range(0, len(body), read_size)]
    reads += [b".\r\n", b"QUIT\r\n"]
    return reads


def _reads_pipelining(body: bytes) -> list[bytes]:
    """RFC 2920: MAIL, RCPT and DATA in one go; after the 354, the body, the dot and QUIT."""
    return [
        b"EHLO client.example\r\n",
        b"MAIL FROM:<a@example.org> SIZE=%d\r\nRCPT TO:<bench@example.com>\r\nDATA\r\n" % len(body),
        body + b".\r\n" + b"QUIT\r\n",
    ]


VARIANTS: dict[str, list[bytes]] = {
    "helo-1k": _reads_helo(_body(1024), 65536),
    "helo-100k": _reads_helo(_body(100 * 1024), 65536),
    "ehlo-pipelining-1k": _reads_pipelining(_body(1024)),
}


def session(reads: list[bytes]) -> list[bytes]:
    """One connection, driven as Session._loop drives it; returns what was written."""
    conn = smtp.ServerConnection(
        hostname=HOSTNAME, lmtp=False, max_message_size=10_240_000, max_recipients=1000, max_errors=20,
        starttls_available=False, tls_active=False, auth_mechanisms=(),
    )
    written: list[bytes] = []
    chunks: list[bytes] = []
    feed = iter(reads)
    conn.start(None)
    while True:
        out = conn.data_to_send()  # Session._flush()
        if out:
            written.append(out)
        event = conn.next_event()
        if event is not smtp.NEED_DATA and not isinstance(event, smtp.DataChunk):
            pass  # Session resets its command deadline here
        if event is smtp.NEED_DATA:
            out = conn.data_to_send()
            if out:
                written.append(out)
            if conn.closed:
                return written
            conn.receive_data(next(feed, b""))
            continue
        match event:
            case smtp.DataChunk(data=data):
                chunks.append(data)
            case smtp.MailFrom():
                conn.accept()
            case smtp.RcptTo():
                conn.accept()
            case smtp.Data():
                conn.accept()
            case smtp.MessageComplete():
                message = b"".join(chunks)
                chunks = []
                assert len(message) == event.size
                conn.send(smtp.Reply.make(250, "2.0.0", "Ok: queued as 4XyZ1a2B3c"))
            case smtp.Helo():
                conn.accept()
            case smtp.Quit() | smtp.ConnectionClosed():
                out = conn.data_to_send()
                if out:
                    written.append(out)
                return written
            case other:
                raise AssertionError(f"unexpected event {other!r}")


def check(name: str, reads: list[bytes]) -> None:
    """Refuse to time an engine that answers the session wrongly."""
    wire = b"".join(session(reads))
    codes = [line[:3] for line in wire.split(b"\r\n") if line and line[3:4] == b" "]
    expected = [b"220", b"250", b"250", b"250", b"354", b"250", b"221"]
    if codes != expected:
        raise SystemExit(f"{name}: wrong replies {codes} from:\n{wire.decode()}")
    if b"Ok: queued as 4XyZ1a2B3c\r\n" not in wire:
        raise SystemExit(f"{name}: no queued reply")


def time_round(reads: list[bytes], number: int, run: Callable[[list[bytes]], object] = session) -> float:
    """Seconds per transaction over ``number`` back-to-back sessions."""
    clock = time.perf_counter
    start = clock()
    for _ in range(number):
        run(reads)
    return (clock() - start) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=15, help="rounds per variant (best kept)")
    parser.add_argument("--number", type=int, default=2000, help="transactions per round")
    parser.add_argument("--profile", metavar="VARIANT", help="cProfile one variant instead of timing")
    args = parser.parse_args()

    for name, reads in VARIANTS.items():
        check(name, reads)
    if args.profile:
        profiler = cProfile.Profile()
        reads = VARIANTS[args.profile]
        profiler.enable()
        time_round(reads, args.number)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return

    best = dict.fromkeys(VARIANTS, float("inf"))
    for _ in range(args.rounds):
        for name, reads in VARIANTS.items():  # alternate: every round times every variant
            best[name] = min(best[name], time_round(reads, args.number))
    print(f"best of {args.rounds} rounds x {args.number} transactions, Python {sys.version.split()[0]}")
    for name, seconds in best.items():
        print(f"  {name:20s} {seconds * 1e6:8.1f} µs/transaction")


if __name__ == "__main__":
    main()
