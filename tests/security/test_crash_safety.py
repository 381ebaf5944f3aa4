"""Crash safety: kill -9 under load loses no message that got a 250.

Postfix's smtp-source sends 5,000 messages over 20 parallel sessions to a real `mailboat serve`;
at a random moment (seeded; the seed is printed and can be replayed with MAILBOAT_CRASH_SEED)
the server gets SIGKILL. smtp-source's -v transcript shows each "250 2.0.0 Ok: queued as ID" it
received. The server is restarted on the same data directory and the same ports, and every
acknowledged queue id must then be delivered into Maildir new/ (the id is in our Received
header). Duplicates are acceptable (RFC 5321 §6.1), loss is not; files in tmp/ never count.

The "spooled" case sends 200 KB messages, whose bodies are files beside the queue database
(queue/bodies.py): those must survive the kill as well, and none may be left once all is
delivered.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from security_support import MAILBOAT_CMD, free_port, need_tool, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.interop]

BUDGET = 90.0  # seconds for the whole test
# (messages, sessions, message size for smtp-source -l, kill after this many 250s: range)
CASES = {"small": (5000, 20, None, (300, 4200)), "spooled": (400, 10, 200_000, (30, 330))}
RCPT = "alice@example.com"
ACK = re.compile(r"<<< 250 2\.0\.0 Ok: queued as ([0-9A-Za-z]+)")
OUR_ID = re.compile(rb"\tby mx\.test\.example \(mailboat\) with [A-Z0-9]+ id ([0-9A-Za-z]+)")

CONFIG = """\
hostname = "mx.test.example"
data_dir = "{data_dir}"
[[listener]]
kind = "smtp"
address = "127.0.0.1:{port}"
[domains]
local = ["example.com"]
catch_all = true
[queue]
retry = ["1s"]
[server]
workers = 1
"""


def start(config: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as sink:
        proc = subprocess.Popen([*MAILBOAT_CMD, "serve", "--config", str(config)], stdout=subprocess.DEVNULL,
                                stderr=sink)
    return proc


def port_open(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            return sock.recv(64).startswith(b"220")
    except OSError:
        return False


def delivered_ids(maildir: Path) -> list[str]:
    ids = []
    new = maildir / "new"
    if not new.exists():
        return ids
    for path in new.iterdir():
        try:
            head = path.read_bytes()[:1000]
        except FileNotFoundError:
            continue
        match = OUR_ID.search(head)
        assert match, f"{path.name}: no Received header of ours: {head[:300]!r}"
        ids.append(match.group(1).decode())
    return ids


@pytest.mark.parametrize("case", sorted(CASES))
def test_sigkill_under_load_loses_no_acknowledged_message(tmp_path, case):
    source = need_tool("smtp-source")
    messages, sessions, size, kill_range = CASES[case]
    seed = int(os.environ.get("MAILBOAT_CRASH_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    kill_after_acks = rng.randint(*kill_range)
    print(f"crash seed {seed}: SIGKILL after {kill_after_acks} acknowledged messages (+ up to 50 ms)")
    begin = time.monotonic()

    port = free_port()
    data_dir = tmp_path / "data"
    config = tmp_path / "mailboat.toml"
    config.write_text(CONFIG.format(data_dir=data_dir, port=port))
    server_log = tmp_path / "server.log"
    transcript = tmp_path / "smtp-source.log"

    server = start(config, server_log)
    try:
        assert wait_until(lambda: port_open(port), timeout=20), server_log.read_text()[-3000:]
        with open(transcript, "wb") as out:
            client = subprocess.Popen([source, "-v", "-m", str(messages), "-s", str(sessions),
                                       *(["-l", str(size)] if size else []), "-f",
                                       "sender@example.org", "-t", RCPT, f"127.0.0.1:{port}"],
                                      stdout=out, stderr=subprocess.STDOUT)
        acks = lambda: len(ACK.findall(transcript.read_text(errors="replace")))  # noqa: E731
        reached = wait_until(lambda: acks() >= kill_after_acks or client.poll() is not None, timeout=45, step=0.01)
        assert reached, "smtp-source made no progress"
        time.sleep(rng.random() * 0.05)
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        killed_at = time.monotonic() - begin
        try:
            client.wait(timeout=30)  # it sees the connections drop and gives up
        except subprocess.TimeoutExpired:
            client.kill()
            client.wait()
        acknowledged = set(ACK.findall(transcript.read_text(errors="replace")))
        print(f"killed at {killed_at:.1f}s with {len(acknowledged)} messages acknowledged; "
              f"client exit status {client.returncode}")
        assert acknowledged, "nothing was acknowledged before the kill"

        # Restart on the same data directory and ports: every acknowledged message arrives.
        server = start(config, server_log)
        assert wait_until(lambda: port_open(port), timeout=20), server_log.read_text()[-3000:]
        maildir = data_dir / "mail" / "example.com" / "alice"
        remaining = max(5.0, BUDGET - (time.monotonic() - begin))
        wait_until(lambda: acknowledged <= set(delivered_ids(maildir)), timeout=remaining, step=0.25)
        delivered = delivered_ids(maildir)
        missing = acknowledged - set(delivered)
        assert not missing, f"seed {seed}: {len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:5]}"
        duplicates = len(delivered) - len(set(delivered))
        print(f"{len(set(delivered))} distinct messages delivered ({duplicates} duplicates) "
              f"for {len(acknowledged)} acknowledged, in {time.monotonic() - begin:.1f}s")
        assert time.monotonic() - begin < BUDGET
        if size:
            # Every delivered message's body file went with it. What may remain are bodies the
            # kill caught between their write and their row's commit (at most one per session,
            # never acknowledged): the next start's sweep removes them once they are old enough
            # to be sure no enqueue is still in flight (tests/queue/test_bodies.py).
            bodies = data_dir / "queue.db-bodies"
            wait_until(lambda: len(list(bodies.iterdir())) <= sessions, timeout=5)
            left = {path.name for path in bodies.iterdir()}
            assert len(left) <= sessions and not left & acknowledged, sorted(left)[:5]
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    log = server_log.read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]
