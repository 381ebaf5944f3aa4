"""Logging: Postfix-style lines (`mailboat/smtpd[PID]: QUEUEID: ...`) so pflogsumm reads them.

Logger names under "mailboat." name the service: logging.getLogger("mailboat.smtpd") logs as
`mailboat/smtpd[PID]`. `safe()` strips control bytes from anything a client sent before it is
logged, so no one can forge a log line (CR/LF injection). `said()` renders a reply for a
`NOQUEUE: reject:` line.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
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


def said(reply) -> str:
    """An SMTP reply as Postfix logs what a client was told: "550 5.1.1 <x@y>: Recipient address
    rejected: ..." (code, enhanced status, text; pflogsumm groups rejects by this text)."""
    status = f" {reply.status_text}" if reply.status_text else ""
    return safe(f"{reply.code}{status} {' '.join(reply.lines)}".rstrip())


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")  # not the locale's


class PostfixFormatter(logging.Formatter):
    """`Nov 24 01:17:00 host mailboat/smtpd[123]: message` (syslog layout, local time; the day is
    padded with a space, "Nov  4", as syslog writes it and pflogsumm -d matches it)."""

    def __init__(self) -> None:
        super().__init__()
        self._host = socket.gethostname().split(".")[0]
        self._pid = os.getpid()
        self._prefixes: dict[str, str] = {}  # logger name -> " host mailboat/service[pid]: "
        self._second = -1  # the last line's second, and its stamp: every line of a second shares it
        self._stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        prefix = self._prefixes.get(record.name)
        if prefix is None:
            service = record.name.split(".", 1)[1] if "." in record.name else record.name
            prefix = self._prefixes[record.name] = f" {self._host} mailboat/{service}[{self._pid}]: "
        second = int(record.created)
        if second != self._second:
            t = time.localtime(second)  # syslog's "Nov  4", space-padded: what pflogsumm -d looks for
            self._second = second
            self._stamp = f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        message = record.getMessage()
        if record.levelno >= logging.WARNING and not message.startswith(("warning:", "error:", "fatal:")):
            message = f"{record.levelname.lower()}: {message}"
        line = self._stamp + prefix + message
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


BATCH_DELAY = 0.05  # seconds a log record may wait on the event loop thread before its hand-over


class _Writer:
    """The thread that writes log text: one write (and flush) per batch of lines.

    It only writes: lines are formatted before they reach it. Python code on a second thread
    competes with the event loop for the GIL, and each of its system calls must win the GIL back
    (up to a 5 ms switch interval while the loop is busy); a thread that formatted and wrote
    record by record cost the loop more than the records themselves.
    """

    def __init__(self, stream) -> None:
        self._stream = stream
        self._texts: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="mailboat-log-writer", daemon=True)
        self._thread.start()

    def put(self, text: str) -> None:
        self._texts.put(text)

    def _run(self) -> None:
        while True:
            text = self._texts.get()
            if text is None:
                return
            parts = [text]
            while True:  # take whatever else is waiting: one write for all of it
                try:
                    more = self._texts.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._write("".join(parts))
                    return
                parts.append(more)
            self._write("".join(parts))

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):
            pass  # a full disk or a closed stderr must not take the server down

    def stop(self) -> None:
        self._texts.put(None)
        self._thread.join()
        if self._stream is not sys.stderr:
            try:
                self._stream.close()
            except OSError:
                pass


class _BatchHandler(logging.Handler):
    """Formats records and hands the text to the _Writer.

    On an event loop thread the records of BATCH_DELAY seconds are formatted and handed over
    together by one call_later callback (one put, one wake-up of the writer thread) instead of
    one each: on these VMs that hand-off (a futex wake, a GIL hand-over) cost more than making
    the record (profile: 5-11 % of the loop thread). Elsewhere (worker threads, no loop) a record
    goes at once. flush() hands over what is still waiting.
    """

    def __init__(self, writer: _Writer, formatter: logging.Formatter) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self._writer = writer
        self._batch: list[logging.LogRecord] = []
        self._batch_loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    def handle(self, record: logging.LogRecord) -> bool:  # no lock: emit() is thread-aware
        if self.filter(record):
            self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        pending = self._batch_loop
        if pending is not None:
            if pending.is_running():
                if threading.get_ident() == self._loop_thread:
                    self._batch.append(record)
                else:  # another thread while a loop collects: alone
                    self._writer.put(self._text([record]))
                return
            self._hand_over()  # that loop stopped before its hand-over ran
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            self._writer.put(self._text([record]))
            return
        self._batch, self._batch_loop, self._loop_thread = [record], loop, threading.get_ident()
        try:
            loop.call_later(BATCH_DELAY, self._hand_over)
        except RuntimeError:  # the loop is closing
            self._hand_over()

    def _text(self, records: list[logging.LogRecord]) -> str:
        lines = []
        for record in records:
            try:
                lines.append(self.format(record) + "\n")
            except Exception:  # a bad format string in one call must not lose the others
                lines.append(f"mailboat: unprintable log record from {record.name}\n")
        return "".join(lines)

    def _hand_over(self) -> None:
        batch, self._batch, self._batch_loop, self._loop_thread = self._batch, [], None, None
        if batch:
            self._writer.put(self._text(batch))

    def flush(self) -> None:
        if self._batch:
            self._hand_over()


_writer: _Writer | None = None
_settings: tuple[str, str] | None = None


def reopen_after_fork() -> None:
    """Start logging again as setup_logging() last set it up (after flush_logging() and a fork:
    the writer thread does not survive fork, and the PID in each line must be this process's)."""
    global _writer
    _writer = None  # a thread of the parent's, if any: not ours to stop
    if _settings is not None:
        setup_logging(*_settings)


def setup_logging(file: str = "", level: str = "info") -> None:
    """Postfix-style lines to stderr or a file, written by a thread of their own.

    The event loop formats each batch of records once per BATCH_DELAY; the write happens on the
    writer thread, so a slow disk or a stderr pipe nobody reads cannot stall SMTP sessions.
    """
    global _writer, _settings
    _settings = (file, level)
    # Facts we never log; skipping them saves a stack walk per record (the hot path logs a lot).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger("mailboat")
    for handler in list(root.handlers):
        handler.flush()
        root.removeHandler(handler)
    if _writer is not None:
        _writer.stop()
    stream = open(file, "a", encoding="utf-8", errors="backslashreplace") if file else sys.stderr
    _writer = _Writer(stream)
    root.addHandler(_BatchHandler(_writer, PostfixFormatter()))
    root.setLevel(level.upper())
    root.propagate = False


@atexit.register
def flush_logging() -> None:
    """Write out what is still queued (at exit, and before a one-line CLI error)."""
    global _writer
    for handler in logging.getLogger("mailboat").handlers:
        handler.flush()  # records of this loop iteration still waiting for their hand-over
    if _writer is not None:
        _writer.stop()
        _writer = None
