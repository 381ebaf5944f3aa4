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
