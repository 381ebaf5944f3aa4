"""Final-dot-to-250 latency at a fixed offered load (bench/accept.sh; `make bench`).

Open loop: a new SMTP session starts every 1/rate seconds whatever the server's speed (like mail
arriving from many clients), each on its own connection, without pipelining: 220, EHLO, MAIL,
RCPT, DATA, the message, then the final dot. The clock starts when ".\\r\\n" is written and stops
when the "250" line is read; that interval is the server's durable-commit latency plus one loop
wake-up. Reports p50/p90/p99/max in milliseconds as JSON on stdout.

    python bench/lib/latency.py --port 2525 --rate 300 --duration 10 --size 1024 --rcpt a@example.com
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def expect(reader: asyncio.StreamReader, code: bytes) -> None:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        if not line.startswith(code):
            raise RuntimeError(f"expected {code!r}, got {line!r}")
        if line[3:4] != b"-":
            return


async def one(port: int, rcpt: str, body: bytes, latencies: list[float], errors: list[str]) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            await expect(reader, b"220")
            writer.write(b"EHLO latency.bench.test\r\n")
            await expect(reader, b"250")
            writer.write(b"MAIL FROM:<bench-sender@example.org>\r\n")
            await expect(reader, b"250")
            writer.write(f"RCPT TO:<{rcpt}>\r\n".encode())
            await expect(reader, b"250")
            writer.write(b"DATA\r\n")
            await expect(reader, b"354")
            writer.write(body)
            await writer.drain()
            start = time.perf_counter()
            writer.write(b".\r\n")
            await expect(reader, b"250")
            latencies.append((time.perf_counter() - start) * 1000)
            writer.write(b"QUIT\r\n")
            await expect(reader, b"221")
        finally:
            writer.close()
    except Exception as exc:  # counted, reported; the run goes on
        errors.append(f"{type(exc).__name__}: {exc}")


async def main_async(args: argparse.Namespace) -> dict:
    line = b"X" * 70 + b"\r\n"
    text = (b"From: bench-sender@example.org\r\nTo: " + args.rcpt.encode() + b"\r\nSubject: latency\r\n"
            b"Message-ID: <latency@bench.test>\r\n\r\n")
    body = text + line * max(1, (args.size - len(text)) // len(line))
    latencies: list[float] = []
    errors: list[str] = []
    tasks: set[asyncio.Task] = set()
    interval = 1.0 / args.rate
    total = int(args.rate * args.duration)
    began = time.perf_counter()
    skipped = 0
    for n in range(total):
        delay = began + n * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(tasks) >= args.max_open:
            skipped += 1  # the server fell behind: counted, not queued (open loop stays open)
            continue
        task = asyncio.get_running_loop().create_task(one(args.port, args.rcpt, body, latencies, errors))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    offered = time.perf_counter() - began
    if tasks:
        await asyncio.wait(tasks, timeout=args.duration + 30)
    result = {
        "offered_rate": args.rate, "duration_s": round(offered, 2), "sessions": total, "completed": len(latencies),
        "errors": len(errors), "skipped": skipped, "size": args.size,
    }
    if errors:
        result["first_error"] = errors[0]
    if latencies:
        result.update(
            p50_ms=round(percentile(latencies, 50), 2), p90_ms=round(percentile(latencies, 90), 2),
            p99_ms=round(percentile(latencies, 99), 2), max_ms=round(max(latencies), 2),
            mean_ms=round(statistics.fmean(latencies), 2),
        )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="new sessions per second")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rcpt", default="bench@example.com")
    parser.add_argument("--max-open", type=int, default=500, help="sessions open at once before skipping")
    args = parser.parse_args()
    try:
        import uvloop
        result = uvloop.run(main_async(args))
    except ImportError:
        result = asyncio.run(main_async(args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
