"""A restart of mailboat with 500 queued messages delivers every one exactly once.

mailboat A routes example.net (`[[route]]`) to mailboat B on 127.0.0.5, which is down at first.
1. Queued while the destination is down: 490 messages over SMTP into a running A (each deferred
   with "connection refused"), then A is stopped and 10 more are queued with `mailboat sendmail`,
   which writes straight into the queue of the stopped server. `queue list --json` shows 500.
   B comes up, A starts again on the same data_dir: B receives exactly 500 distinct Message-IDs,
   each once, and A's queue ends empty.
2. Restarted in the middle of delivering: 500 queued while B is up, A is stopped (SIGTERM) while
   they are going out and started again: again exactly 500, no duplicates (a graceful stop lets
   the deliveries in flight record their outcome; SPEC: a restart loses and duplicates nothing).
"""

from __future__ import annotations

import json
import smtplib
import subprocess
import time
from collections import Counter

import pytest

from mbtest import MAILBOAT, RunningServer, start_server
from relay_support import free_port, message_ids, serve, start_config, wait_for

pytestmark = [pytest.mark.interop, pytest.mark.slow]

TOTAL = 500
A_EXTRA = """\
[relay]
trusted_networks = ["127.0.0.0/8"]
[[route]]
domain = "example.net"
smarthost = "127.0.0.5:{port}"
[queue]
retry = ["1s"]
delay_warning = ""
"""


@pytest.fixture
def servers():
    started: list[RunningServer] = []
    yield started
    logs = "".join(server.stop() for server in reversed(started))
    assert "Traceback" not in logs, logs[-5000:]


def message(n: int) -> bytes:
    return (f"From: alice@example.com\r\nTo: dave@example.net\r\nSubject: restart {n}\r\n"
            f"Message-ID: <restart-{n}@example.com>\r\n\r\nmessage {n}\r\n").encode()


def send_smtp(server: RunningServer, numbers: range) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=60) as client:
        for n in numbers:
            assert client.sendmail("alice@example.com", ["dave@example.net"], message(n)) == {}


def queued(server: RunningServer) -> list[dict]:
    done = server.cli("queue", "list", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    return data if isinstance(data, list) else data.get("messages", data.get("queue", []))


def start_a(tmp_path, servers, port: int) -> RunningServer:
    (tmp_path / "a").mkdir()
    server = start_server(tmp_path / "a", extra=A_EXTRA.format(port=port))
    servers.append(server)
    return server


def restart(server: RunningServer, servers: list) -> RunningServer:
    again = start_config(server.config, server.data_dir)
    servers.append(again)
    return again


def start_b(tmp_path, servers, port: int) -> RunningServer:
    server = serve(tmp_path / "b", hostname="mx-b.example.net", address=f"127.0.0.5:{port}",
                   local=("example.net",), users=("dave@example.net",))
    servers.append(server)
    return server


def expect_exactly_once(b: RunningServer, a: RunningServer, timeout: float) -> None:
    try:
        wait_for(lambda: len(b.messages("dave@example.net")) >= TOTAL, timeout, f"{TOTAL} messages at B",
                 interval=0.25)
    except AssertionError:
        raise AssertionError(f"{len(b.messages('dave@example.net'))} of {TOTAL} arrived\n"
                             + a.stop()[-3000:]) from None
    wait_for(lambda: queued(a) == [], 30, "A's queue to empty")
    time.sleep(2)  # anything sent twice would show up now
    ids = message_ids(b.messages("dave@example.net"))
    duplicates = {k: v for k, v in Counter(ids).items() if v > 1}
    assert not duplicates, f"{len(duplicates)} duplicated, e.g. {list(duplicates.items())[:5]}"
    assert sorted(ids) == sorted(f"<restart-{n}@example.com>" for n in range(TOTAL))


def test_restart_with_500_queued_for_a_destination_that_was_down(tmp_path, servers) -> None:
    port = free_port("127.0.0.5")
    a = start_a(tmp_path, servers, port)
    send_smtp(a, range(TOTAL - 10))
    # Every one was tried once and deferred (the destination refuses connections).
    wait_for(lambda: a.log.count("status=deferred") >= TOTAL - 10, 60, "a first attempt for each message",
             interval=0.25)
    a.stop()
    for n in range(TOTAL - 10, TOTAL):
        done = subprocess.run([*MAILBOAT, "sendmail", "-f", "alice@example.com", "-i", "dave@example.net",
                               "--config", str(a.config)], input=message(n), capture_output=True, timeout=60,
                              check=False)
        assert done.returncode == 0, done.stderr
    assert len(queued(a)) == TOTAL
    b = start_b(tmp_path, servers, port)
    started = time.monotonic()
    a = restart(a, servers)
    expect_exactly_once(b, a, timeout=120)
    print(f"{TOTAL} delivered {time.monotonic() - started:.1f} s after the restart")


def test_restart_in_the_middle_of_delivery(tmp_path, servers) -> None:
    port = free_port("127.0.0.5")
    a = start_a(tmp_path, servers, port)
    send_smtp(a, range(TOTAL))  # the destination is down: all deferred, retried every second
    wait_for(lambda: a.log.count("status=deferred") >= TOTAL, 60, "a first attempt for each message",
             interval=0.25)
    b = start_b(tmp_path, servers, port)
    arrived = wait_for(lambda: len(b.messages("dave@example.net")) >= 50 and len(b.messages("dave@example.net")),
                       60, "the first 50 deliveries", interval=0.02)
    a.stop()  # SIGTERM while the rest are going out
    at_stop = len(b.messages("dave@example.net"))
    print(f"stopped A with {arrived}..{at_stop} of {TOTAL} delivered")
    a = restart(a, servers)
    expect_exactly_once(b, a, timeout=120)
    assert at_stop < TOTAL, "everything was delivered before the stop: the restart proved nothing"
