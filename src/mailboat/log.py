"""Logging: Postfix-style lines (`mailboat/smtpd[PID]: QUEUEID: ...`) so pflogsumm reads them.

Logger names under "mailboat." name the service: logging.getLogger("mailboat.smtpd") logs as
`mailboat/smtpd[PID]`. `safe()` strips control bytes from anything a client sent before it is
logged, so no one can forge a log line (CR/LF injection).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import logging.handlers
import os
import queue
import re
import socket
import sys
import threading
import time

# C0, DEL, C1 (NEL U+0085 among them) and U+2028/U+2029: each is a line break to some log reader.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def safe(value: object, limit: int = 300) -> str:
    """A client-supplied value made safe for one log line."""
    text = str(value)
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if m.group() < "\u0100" else f"\\u{ord(m.group()):04x}",
                        text)
    return text if len(text) <= limit else text[:limit] + "..."


class PostfixFormatter(logging.Formatter):
    """`Nov 24 01:17:00 host mailboat/smtpd[123]: message` (syslog layout, local time)."""

    def __init__(self) -> None:
        super().__init__()
        self._host = socket.gethostname().split(".")[0]
        self._pid = os.getpid()

    def format(self, record: logging.LogRecord) -> str:
        service = record.name.split(".", 1)[1] if "." in record.name else record.name
        stamp = time.strftime("%b %d %H:%M:%S", time.localtime(record.created))
        message = record.getMessage()
        if record.levelno >= logging.WARNING and not message.startswith(("warning:", "error:", "fatal:")):
            message = f"{record.levelname.lower()}: {message}"
        line = f"{stamp} {self._host} mailboat/{service}[{self._pid}]: {message}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


BATCH_DELAY = 0.05  # seconds a log record may wait on the event loop thread before its hand-over


class _EnqueueHandler(logging.handlers.QueueHandler):
    """Hands records to the writer thread as they are: no formatting on the event loop.

    On an event loop thread the records of BATCH_DELAY seconds go over together (one list, one
    put, one wake-up of the writer thread, by a call_later callback) instead of one put each: a
    put wakes the writer thread, and on these VMs that hand-off (a futex wake, a GIL hand-over)
    cost more than making the record (profile: 5-11 % of the loop thread). Elsewhere (worker
    threads, no loop) a record goes at once. flush_logging() hands over what is still waiting.
    """

    def __init__(self, records: queue.SimpleQueue) -> None:
        super().__init__(records)
        self._batch: list[logging.LogRecord] = []
        self._batch_loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record

    def emit(self, record: logging.LogRecord) -> None:
        pending = self._batch_loop
        if pending is not None:
            if pending.is_running():
                if threading.get_ident() == self._loop_thread:
                    self._batch.append(record)
                else:  # another thread while a loop collects: alone
                    self.queue.put_nowait([record])
                return
            self._hand_over()  # that loop stopped before its hand-over ran
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            self.queue.put_nowait([record])
            return
        self._batch, self._batch_loop, self._loop_thread = [record], loop, threading.get_ident()
        try:
            loop.call_later(BATCH_DELAY, self._hand_over)
        except RuntimeError:  # the loop is closing
            self._hand_over()

    def _hand_over(self) -> None:
        batch, self._batch, self._batch_loop, self._loop_thread = self._batch, [], None, None
        if batch:
            self.queue.put_nowait(batch)

    def flush(self) -> None:
        if self._batch:
            self._hand_over()


class _BatchListener(logging.handlers.QueueListener):
    """QueueListener whose queue carries lists of records (see _EnqueueHandler)."""

    def handle(self, records: list[logging.LogRecord]) -> None:  # type: ignore[override]
        for record in records:
            super().handle(record)


_listener: logging.handlers.QueueListener | None = None
_settings: tuple[str, str] | None = None


def reopen_after_fork() -> None:
    """Start logging again as setup_logging() last set it up (after flush_logging() and a fork:
    the writer thread does not survive fork, and the PID in each line must be this process's)."""
    global _listener
    _listener = None  # a thread of the parent's, if any: not ours to stop
    if _settings is not None:
        setup_logging(*_settings)


def setup_logging(file: str = "", level: str = "info") -> None:
    """Postfix-style lines to stderr or a file, written by a thread of their own.

    The event loop only enqueues records: formatting and the write happen on the writer thread,
    so a slow disk or a stderr pipe nobody reads cannot stall SMTP sessions.
    """
    global _listener, _settings
    _settings = (file, level)
    # Facts we never log; skipping them saves a stack walk per record (the hot path logs a lot).
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger("mailboat")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    if _listener is not None:
        _listener.stop()
    target: logging.Handler = logging.FileHandler(file) if file else logging.StreamHandler(sys.stderr)
    target.setFormatter(PostfixFormatter())
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _listener = _BatchListener(records, target)
    _listener.start()
    root.addHandler(_EnqueueHandler(records))
    root.setLevel(level.upper())
    root.propagate = False


@atexit.register
def flush_logging() -> None:
    """Write out what is still queued (at exit, and before a one-line CLI error)."""
    global _listener
    for handler in logging.getLogger("mailboat").handlers:
        handler.flush()  # records of this loop iteration still waiting for their hand-over
    if _listener is not None:
        _listener.stop()
        _listener = None
