"""Test support shared by every directory: a real `mailboat serve` on ephemeral loopback ports,
and the rule for Debian peers (skip without them, fail under CI=true).

Import it as `from mbtest import ...` (tests/ is on sys.path through tests/conftest.py). It is not
conftest.py itself: with no __init__.py in tests/, a bare `from mbtest import` resolves to
whichever conftest.py pytest loaded last.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ON_CI = os.environ.get("CI") == "true"
MAILBOAT = [sys.executable, "-m", "mailboat"]


def need_tool(name: str) -> str:
    """Path of a Debian peer; skip without it (fail under CI=true, SPEC "Set-up")."""
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/lib/postfix/sbin/{name}")
                                       if os.path.exists(p)), None)
    if path is None:
        message = f"{name} is not installed (make test installs it as root: apt-get install)"
        if ON_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


CONFIG_TEMPLATE = """\
hostname = "mx.test.example"
data_dir = "{data_dir}"
[[listener]]
kind = "smtp"
address = "127.0.0.1:0"
[[listener]]
kind = "submission"
address = "127.0.0.1:0"
[[listener]]
kind = "submissions"
address = "127.0.0.1:0"
[[listener]]
kind = "lmtp"
address = "127.0.0.1:0"
[domains]
local = ["example.com", "mx.test.example"]
[aliases]
"sales@example.com" = ["alice@example.com", "bob@example.com"]
{extra}
"""

# Tests never ask the machine's resolver (its server is off-limits here): unless a test brings its
# own DNS server, look-ups go to a loopback port where nothing listens and fail at once.
NO_DNS = '[dns]\nnameservers = ["127.0.0.1:9"]\ntimeout = "2s"\n'


def one_process(config: str) -> str:
    """`config` with `[server] workers = 1` unless it names a worker count: the tests written
    against one process (connection and AUTH-failure counts, a SIGKILL of "the server") keep
    it; the default, one process per CPU, has tests of its own (tests/cli/test_defaults.py,
    tests/integration/test_workers.py)."""
    if re.search(r"^workers\s*=", config, re.MULTILINE):
        return config
    if re.search(r"^\[server\]\s*$", config, re.MULTILINE):
        return re.sub(r"^\[server\]\s*$", "[server]\nworkers = 1", config, count=1, flags=re.MULTILINE)
    return config.rstrip("\n") + "\n[server]\nworkers = 1\n"


@dataclass
class RunningServer:
    proc: subprocess.Popen
    config: Path
    data_dir: Path
    ports: dict[str, int] = field(default_factory=dict)
    banner: str = ""
    log_lines: list[str] = field(default_factory=list)
    _drain: threading.Thread | None = None

    def drain_stderr(self) -> None:
        """Read the server's log continuously: a full pipe would block its logging (and it)."""
        def pump() -> None:
            for line in self.proc.stderr:
                self.log_lines.append(line)
        self._drain = threading.Thread(target=pump, daemon=True)
        self._drain.start()

    @property
    def log(self) -> str:
        return "".join(self.log_lines)

    def wait_log(self, text: str, timeout: float = 10.0) -> str:
        """The log once it contains `text` (the server writes its log from a thread of its own)."""
        deadline = time.monotonic() + timeout
        while text not in self.log:
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged within {timeout} s:\n{self.log[-3000:]}")
            time.sleep(0.02)
        return self.log

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([*MAILBOAT, *args, "--config", str(self.config)], input=input,
                              capture_output=True, text=True, timeout=60)

    def maildir(self, address: str) -> Path:
        local, domain = address.split("@")
        return self.data_dir / "mail" / domain / local

    def messages(self, address: str) -> list[bytes]:
        new = self.maildir(address) / "new"
        return [p.read_bytes() for p in sorted(new.iterdir())] if new.exists() else []

    def wait_messages(self, address: str, count: int, timeout: float = 20.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.messages(address)
            if len(found) >= count:
                time.sleep(0.05)
                return self.messages(address)
            time.sleep(0.05)
        raise AssertionError(f"{address}: {len(self.messages(address))} of {count} messages arrived")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._drain is not None:
            self._drain.join(5)
        return self.log


def start_server(tmp_path: Path, extra: str = "", users: tuple[str, ...] = ("alice@example.com", "bob@example.com"),
                 ) -> RunningServer:
    data_dir = tmp_path / "data"
    config = tmp_path / "mailboat.toml"
    if "[dns]" not in extra:
        extra += "\n" + NO_DNS
    config.write_text(one_process(CONFIG_TEMPLATE.format(data_dir=data_dir, extra=extra)))
    for user in users:
        subprocess.run([*MAILBOAT, "user", "add", user, "--password-stdin", "--config", str(config)],
                       input="password123\n", text=True, check=True, capture_output=True)
    return start_config(config, data_dir)


@contextmanager
def serving(tmp_path: Path, extra: str = "", **options: Any) -> Iterator[RunningServer]:
    """start_server() for the length of a with-block (a fixture's body), then stop it and check
    that nothing it logged was a traceback."""
    running = start_server(tmp_path, extra, **options)
    try:
        yield running
    finally:
        log = running.stop()
    assert "Traceback" not in log, log[-4000:]


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if re.search(rf"^PPid:\s*{pid}$", status, re.MULTILINE):
                found.append(int(entry.name))
    return found


def insecure_context() -> ssl.SSLContext:
    """A client context for our self-signed certificates: TLS without verifying the peer."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


def start_config(config: Path, data_dir: Path) -> RunningServer:
    """Start `mailboat serve --config config` and read its banner for the listening ports."""
    proc = subprocess.Popen([*MAILBOAT, "serve", "--config", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(30, proc.kill)
    watchdog.start()
    server = RunningServer(proc, config, data_dir)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            match = re.match(r"\s+(smtp|submission|submissions|lmtp)\s+\S+:(\d+)", line)
            if match:
                server.ports[match.group(1)] = int(match.group(2))
            if line.startswith("data:"):
                break
    finally:
        watchdog.cancel()
    server.banner = "".join(lines)
    server.drain_stderr()
    if proc.poll() is not None or not server.ports:
        raise AssertionError(f"mailboat serve did not start:\n{server.banner}\n{server.stop()}")
    return server


class Raw:
    """A line-level SMTP client for the cases smtplib cannot express (bounded by `timeout` per read)."""

    def __init__(self, port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> bytes:
        """The next complete (possibly multi-line) reply; ConnectionError if the server closed."""
        while True:
            lines = self.buffer.split(b"\r\n")
            for index, line in enumerate(lines[:-1]):
                if len(line) >= 4 and line[3:4] == b" ":
                    reply = b"\r\n".join(lines[: index + 1])
                    self.buffer = b"\r\n".join(lines[index + 1:])
                    return reply
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; buffer={self.buffer!r}")
            self.buffer += chunk

    def command(self, line: bytes) -> bytes:
        self.send(line + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.sock.close()

