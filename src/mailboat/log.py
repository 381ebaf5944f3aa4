"""Logging: Postfix-style lines (`mailboat/smtpd[PID]: QUEUEID: ...`) so pflogsumm reads them.

Logger names under "mailboat." name the service: logging.getLogger("mailboat.smtpd") logs as
`mailboat/smtpd[PID]`. `safe()` strips control bytes from anything a client sent before it is
logged, so no one can forge a log line (CR/LF injection).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import time

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def safe(value: object, limit: int = 300) -> str:
    """A client-supplied value made safe for one log line."""
    text = str(value)
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
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


def setup_logging(file: str = "", level: str = "info") -> None:
    root = logging.getLogger("mailboat")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler: logging.Handler = logging.FileHandler(file) if file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(PostfixFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
