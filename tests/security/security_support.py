"""Shared helpers for the security suite: a raw line client, server memory, queue rows, bystanders.

Named uniquely rather than conftest.py for the reason given in tests/mbtest.py
(tests/ has no __init__.py, so a second conftest.py would shadow tests/conftest.py).
"""

from __future__ import annotations

import os
import smtplib
import socket
import sqlite3
import sys
import time
from pathlib import Path

import pytest

_TESTS = Path(__file__).resolve().parent.parent
for _dir in (_TESTS, _TESTS / "integration"):
    if str(_dir) not in sys.path:
        sys.path.insert(0, str(_dir))

from mbtest import ON_CI, RunningServer, insecure_context, need_tool, serving, start_server  # noqa: E402
from mbtest import Raw as BaseRaw  # noqa: E402
from ourheaders import our_received, received_headers  # noqa: E402

__all__ = ["ON_CI", "MESSAGE", "Raw", "RunningServer", "bystander", "need_tool", "need_wiring", "our_received",
           "queue_rows", "queued_events", "received_headers", "rss_kb", "start_server", "CONTROL",
           "insecure_context", "serving"]

MESSAGE = b"From: Sender <sender@example.org>\r\nTo: alice@example.com\r\nSubject: hello\r\n\r\nBody line.\r\n"
CONTROL = {chr(c) for c in range(0x20)} | {"\x7f"}


class Raw(BaseRaw):
    """mbtest.Raw, plus waiting for the server to hang up."""

    def closed_by_server(self, timeout: float = 10.0) -> bool:
        """True once the server has closed (EOF or reset) within `timeout`; data read meanwhile
        is kept in .buffer."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buffer += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False

    def hello(self, name: bytes = b"client.example.org") -> None:
        assert self.reply().startswith(b"220 ")
        assert self.command(b"EHLO " + name).startswith(b"250")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bystander(server: RunningServer, rcpt: str = "bob@example.com", tag: str = "bystander") -> str:
    """A normal client completing a whole transaction; returns the queue id from the 250."""
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], local_hostname="ok.example.org", timeout=15) as client:
        client.ehlo()
        client.mail("sender@example.org")
        code, _ = client.rcpt(rcpt)
        assert code == 250, f"{tag}: RCPT got {code}"
        code, text = client.data(MESSAGE.replace(b"hello", tag.encode()))
    assert code == 250, f"{tag}: end of DATA got {code} {text!r}"
    return text.rsplit(b" ", 1)[1].decode()


def rss_kb(server: RunningServer) -> int:
    """Resident set size of the server process (VmRSS from /proc/PID/status), in KiB."""
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS line")


def queue_rows(data_dir: Path) -> list[dict]:
    """Every message row of {data_dir}/queue.db as {"queue_id", "envelope" (JSON text), "status"}."""
    db = data_dir / "queue.db"
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return [{"queue_id": q, "envelope": bytes(e).decode("utf-8", "replace") if isinstance(e, bytes) else e,
                 "recipients": r, "status": s}
                for q, e, r, s in conn.execute("SELECT queue_id, envelope, recipients, status FROM message")]
    finally:
        conn.close()


def queued_events(data_dir: Path) -> list[str]:
    """The JSON detail of every "queued" journey event (these outlive the delivered message)."""
    db = data_dir / "queue.db"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return [d for (d,) in conn.execute("SELECT detail FROM event WHERE kind = 'queued'")]
    finally:
        conn.close()


def need_wiring(section: str, key: str) -> None:
    """Skip (fail under CI=true) until the config key this test sets exists in config/schema.py."""
    from mailboat.config import schema

    model = {"limits": schema.Limits, "timeouts": schema.Timeouts}[section]
    if key not in model.model_fields:
        message = f"[{section}] {key} is not wired into config/schema.py and app.py yet"
        if ON_CI:
            pytest.fail(message)
        pytest.skip(message)


def wait_until(predicate, timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


MAILBOAT_CMD = [sys.executable, "-m", "mailboat"]
