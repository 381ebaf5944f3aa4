"""RSS of a server holding N idle SMTP connections (bench/accept.sh; `make bench`).

Opens --count connections to 127.0.0.1:--port, waits until every one has its 220 greeting, then
sums VmRSS over the server's processes (--pid and every child of it: mailboat's workers, or
Postfix's master and its smtpd processes). Prints JSON: RSS before, with the connections open,
and per connection. The connections stay silent (no EHLO) and are closed at the end.

    python bench/lib/idle.py --port 2525 --pid 1234 --count 1000 --count 10000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from pathlib import Path


def tree(pid: int) -> list[int]:
    pids = [pid]
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                text = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            if int(text[text.rindex(")") + 2:].split()[1]) == pid:
                pids.append(int(entry.name))
    return pids


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


async def hold(port: int, count: int, pid: int, settle: float) -> dict:
    before = rss_kib(tree(pid))
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    failed = 0
    began = time.monotonic()

    async def open_one() -> None:
        nonlocal failed
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1024)
            line = await asyncio.wait_for(reader.readline(), 10)
            if not line.startswith(b"220"):
                failed += 1
                writer.close()
                return
            conns.append((reader, writer))
        except (OSError, asyncio.TimeoutError):
            failed += 1

    for start in range(0, count, 200):  # in waves, so the accept backlog never overflows
        await asyncio.gather(*(open_one() for _ in range(min(200, count - start))))
        print(f"idle.py: {len(conns)} open, {failed} failed after {time.monotonic() - began:.1f} s",
              file=sys.stderr, flush=True)
    opened = time.monotonic() - began
    await asyncio.sleep(settle)
    pids = tree(pid)
    during = rss_kib(pids)
    for _, writer in conns:
        writer.close()
    await asyncio.sleep(1)
    return {"connections": len(conns), "failed": failed, "open_s": round(opened, 1), "processes": len(pids),
            "rss_before_mb": round(before / 1024, 1), "rss_mb": round(during / 1024, 1),
            "kb_per_connection": round((during - before) / max(1, len(conns)), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--count", type=int, action="append", required=True)
    parser.add_argument("--settle", type=float, default=2.0)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = max(args.count) + 100
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(need, soft), hard), hard))
    results = []
    for count in args.count:
        results.append(asyncio.run(hold(args.port, count, args.pid, args.settle)))
        time.sleep(2)  # let the server close the previous wave's sessions
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
