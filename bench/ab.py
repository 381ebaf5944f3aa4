"""A/B: one mailboat against another (two source trees), same load, alternating rounds.

    .venv/bin/python bench/ab.py --a /path/to/old/src --b src [--rounds 5] [--count 3000]
                                 [--sessions 20] [--size 1024]

Each side is `python -m mailboat serve` with PYTHONPATH pointing at its source tree and the same
configuration (the defaults, on loopback ports of its own, delivering to Maildir). Postfix's
smtp-source sends the load; a run ends when the last message is in the Maildir's new/ (end to
end). The sides alternate round by round so that both see the same machine; each round's
ratio B/A is printed, then the medians. For a change that should cost nothing, ratios around
1.0 with a spread like the machine's own are the expected answer.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """\
hostname = "bench.example"
data_dir = "{data_dir}"
[[listener]]
kind = "smtp"
address = "127.0.0.1:{port}"
tls = "none"
[domains]
local = ["example.com"]
catch_all = true
[limits]
connections = 1000
connections_per_ip = 1000
[server]
workers = 0  # one per CPU, named so that trees with another default compare alike
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Side:
    def __init__(self, name: str, src: str, work: Path) -> None:
        self.name, self.src = name, os.path.abspath(src)
        self.dir = work / name
        self.dir.mkdir()
        self.port = free_port()
        self.data = self.dir / "data"
        (self.dir / "mailboat.toml").write_text(CONFIG.format(data_dir=self.data, port=self.port))
        env = dict(os.environ, PYTHONPATH=self.src)
        self.log = open(self.dir / "serve.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "mailboat", "serve", "--config",
                                      str(self.dir / "mailboat.toml")], env=env, stdout=subprocess.DEVNULL,
                                     stderr=self.log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"{name}: mailboat did not start (see {self.dir / 'serve.log'})")

    @property
    def new(self) -> Path:
        return self.data / "mail" / "example.com" / "bench" / "new"

    def run(self, smtp_source: str, count: int, sessions: int, size: int) -> float:
        """Messages per second end to end for one round (the Maildir emptied first)."""
        if self.new.exists():
            shutil.rmtree(self.new.parent)
        start = time.monotonic()
        subprocess.run([smtp_source, "-s", str(sessions), "-m", str(count), "-l", str(size),
                        "-f", "sender@example.org", "-t", "bench@example.com", f"127.0.0.1:{self.port}"],
                       check=True, stdout=subprocess.DEVNULL, timeout=600)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.new.exists() and len(os.listdir(self.new)) >= count:
                return count / (time.monotonic() - start)
            time.sleep(0.01)
        raise SystemExit(f"{self.name}: not every message arrived within 300 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True, help="source tree of side A (the baseline)")
    parser.add_argument("--b", required=True, help="source tree of side B")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()
    smtp_source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    work = Path(tempfile.mkdtemp(prefix="mailboat-ab-"))
    sides = [Side("a", args.a, work), Side("b", args.b, work)]
    try:
        for side in sides:  # warm-up: caches, the queue file, the Maildir tree
            side.run(smtp_source, min(200, args.count), args.sessions, args.size)
        rates: dict[str, list[float]] = {"a": [], "b": []}
        for n in range(args.rounds):
            order = sides if n % 2 == 0 else sides[::-1]
            for side in order:
                rates[side.name].append(side.run(smtp_source, args.count, args.sessions, args.size))
            print(f"round {n + 1}: A {rates['a'][-1]:,.0f}/s  B {rates['b'][-1]:,.0f}/s  "
                  f"B/A {rates['b'][-1] / rates['a'][-1]:.2f}", flush=True)
    finally:
        for side in sides:
            side.stop()
        shutil.rmtree(work, ignore_errors=True)
    ratios = [b / a for a, b in zip(rates["a"], rates["b"], strict=True)]
    print(f"{args.count} x {args.size} B over {args.sessions} sessions, end to end: "
          f"A median {statistics.median(rates['a']):,.0f}/s, B median {statistics.median(rates['b']):,.0f}/s; "
          f"B/A by round {', '.join(f'{r:.2f}' for r in ratios)} (median {statistics.median(ratios):.2f})")


if __name__ == "__main__":
    main()
