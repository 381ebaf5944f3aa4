"""Shared helpers for the interop tests: peers we did not write (swaks, Postfix's smtp-source).

Why not a tests/interop/conftest.py: tests/ has no __init__.py, so pytest imports every conftest.py
as the top-level module "conftest" and drops the previous one from sys.modules before importing
the next; a second conftest.py would shadow tests/conftest.py for every later
`from conftest import ...`. A uniquely named module on the test directory's path avoids that.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

_INTEGRATION = str(Path(__file__).resolve().parent.parent / "integration")
if _INTEGRATION not in sys.path:
    sys.path.insert(0, _INTEGRATION)

from conftest import RunningServer, need_tool, start_server  # noqa: E402  (tests/conftest.py)
from ourheaders import our_received, received_headers  # noqa: E402  (tests/integration/ourheaders.py)

__all__ = ["LoggedServer", "logged_server", "need_tool", "our_received", "received_headers", "run_peer",
           "smtpd_queue_ids"]

# `mailboat/smtpd[PID]: QUEUEID: from=<...>, size=..., nrcpt=... (queue active)`
_FROM_LINE = re.compile(r"mailboat/smtpd\[\d+\]: ([0-9A-Za-z]+): from=<")


class LoggedServer:
    """A RunningServer whose stderr is drained by a thread while it runs.

    The shared `server` fixture pipes stderr and reads it only in stop(): a few thousand
    messages log megabytes, the 64 KiB pipe fills, and the server blocks in its log handler. Here a
    thread keeps reading, and stop() returns the whole log as RunningServer.stop() does.
    """

    def __init__(self, running: RunningServer) -> None:
        self.running = running
        self._lines: list[str] = []
        self._log: str | None = None
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        for line in self.running.proc.stderr:
            self._lines.append(line)

    def __getattr__(self, name: str):
        return getattr(self.running, name)

    def log_so_far(self) -> str:
        return "".join(self._lines)

    def stop(self) -> str:
        if self._log is None:
            proc = self.running.proc
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            self._thread.join(10)
            self._log = "".join(self._lines)
        return self._log


@pytest.fixture
def logged_server(tmp_path):
    """Like conftest's `server`, with stderr drained continuously (for load tests)."""
    running = LoggedServer(start_server(tmp_path))
    yield running
    log = running.stop()
    assert "Traceback" not in log, log[-5000:]


def run_peer(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run a peer client with a hard time limit; its transcript is in .stdout (stderr merged)."""
    try:
        return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{Path(args[0]).name} did not finish within {timeout} s: {exc.output!r}"[-3000:])


def smtpd_queue_ids(log: str) -> list[str]:
    """Queue ids of the `QUEUEID: from=<...>` lines smtpd logs when it accepts a message."""
    return _FROM_LINE.findall(log)
