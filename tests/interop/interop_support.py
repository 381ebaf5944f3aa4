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
from pathlib import Path

import pytest

_INTEGRATION = str(Path(__file__).resolve().parent.parent / "integration")
if _INTEGRATION not in sys.path:
    sys.path.insert(0, _INTEGRATION)

from mbtest import need_tool, start_server  # noqa: E402  (tests/conftest.py)
from ourheaders import our_received, received_headers  # noqa: E402  (tests/integration/ourheaders.py)

__all__ = ["logged_server", "need_tool", "our_received", "received_headers", "run_peer",
           "smtpd_queue_ids"]

# `mailboat/qmgr[PID]: QUEUEID: from=<...>, size=..., nrcpt=... (queue active)`
_FROM_LINE = re.compile(r"mailboat/qmgr\[\d+\]: ([0-9A-Za-z]+): from=<")


@pytest.fixture
def logged_server(tmp_path):
    """conftest's `server` (its stderr is drained continuously, so load tests cannot stall it)."""
    running = start_server(tmp_path)
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
    """Queue ids of the `QUEUEID: from=<...>` lines logged when a message is accepted."""
    return _FROM_LINE.findall(log)
