"""`[server] workers = 2`: two processes accept on the same sockets and share the queue."""

import os
import re
import smtplib
import time
from concurrent.futures import ThreadPoolExecutor

from mbtest import start_server


def send(port: int, n: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        client.sendmail("sender@example.org", ["alice@example.com"],
                        f"Subject: worker test {n}\r\nMessage-ID: <w{n}@example.org>\r\n\r\nbody {n}\r\n")


def test_two_workers_accept_deliver_and_stop_together(tmp_path):
    server = start_server(tmp_path, extra="[server]\nworkers = 2\n")
    try:
        started = server.wait_log("started 1 worker processes:")
        child = int(re.search(r"started 1 worker processes: (\d+)", started).group(1))
        assert os.path.exists(f"/proc/{child}")
        with ThreadPoolExecutor(10) as pool:
            list(pool.map(lambda n: send(server.ports["smtp"], n), range(40)))
        messages = server.wait_messages("alice@example.com", 40)
        assert len(messages) == 40  # each once: the runner runs in one process only
        assert sorted(int(re.search(rb"body (\d+)", m).group(1)) for m in messages) == list(range(40))
        listing = server.cli("queue", "list")
        assert listing.returncode == 0
    finally:
        log = server.stop()
    assert server.proc.returncode == 0, log[-2000:]
    for _ in range(100):
        if not os.path.exists(f"/proc/{child}") or " Z " in open(f"/proc/{child}/stat").read():
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the worker process outlived the server")
    assert log.count("daemon stopped") == 2


def _gone(pid: int) -> bool:
    """Exited (or a zombie nobody reaps yet: its process ended all the same)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_workers_end_when_the_master_is_killed(tmp_path):
    """kill -9 of the process that forked the workers (an OOM kill, a careless operator): the
    workers get SIGTERM and end instead of holding the shared sockets as orphans, so a restart
    finds its ports free."""
    server = start_server(tmp_path, extra="[server]\nworkers = 2\n")
    started = server.wait_log("started 1 worker processes:")
    child = int(re.search(r"started 1 worker processes: (\d+)", started).group(1))
    assert not _gone(child)
    server.proc.kill()
    try:
        for _ in range(200):  # bounded: 10 s
            if _gone(child):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the worker outlived its killed master")
    finally:
        if not _gone(child):
            os.kill(child, 9)
        server.stop()
