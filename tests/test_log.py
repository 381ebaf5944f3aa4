"""Postfix-style log lines (mailboat/log.py): layout, levels, the per-second stamp, safe()."""

import logging
import os
import re
import time

from mailboat.log import PostfixFormatter, safe, said
from mailboat.smtp import Reply

LINE = re.compile(r"^[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \S+ mailboat/(\w+)\[(\d+)\]: (.*)$", re.S)


def _record(name, level, msg, *args, created=None, exc_info=None):
    record = logging.LogRecord(name, level, "(unknown file)", 0, msg, args, exc_info)
    if created is not None:
        record.created = created
    return record


def test_layout_service_and_pid():
    line = PostfixFormatter().format(_record("mailboat.smtpd", logging.INFO, "connect from %s", "x[1.2.3.4]"))
    match = LINE.match(line)
    assert match, line
    assert match.group(1) == "smtpd" and int(match.group(2)) == os.getpid()
    assert match.group(3) == "connect from x[1.2.3.4]"
    # A logger outside the mailboat.* tree keeps its whole name as the service.
    assert LINE.match(PostfixFormatter().format(_record("other", logging.INFO, "hi"))).group(1) == "other"


def test_warnings_get_postfix_severity_prefix_once():
    formatter = PostfixFormatter()
    assert formatter.format(_record("mailboat.queue", logging.WARNING, "disk low")).endswith(": warning: disk low")
    assert formatter.format(_record("mailboat.queue", logging.ERROR, "error: bad")).endswith(": error: bad")


def test_stamp_follows_each_records_own_second():
    """The stamp is reused within a second and redone for the next one (and for an older one)."""
    formatter = PostfixFormatter()
    base = time.mktime((2026, 11, 24, 10, 0, 59, 0, 0, -1))
    stamps = [formatter.format(_record("mailboat.smtpd", logging.INFO, "m", created=t))[:15]
              for t in (base + 0.1, base + 0.9, base + 1.0, base + 0.5)]
    assert stamps == ["Nov 24 10:00:59", "Nov 24 10:00:59", "Nov 24 10:01:00", "Nov 24 10:00:59"]


def test_stamp_pads_the_day_with_a_space_as_syslog_does():
    """"Nov  4", not "Nov 04": pflogsumm -d today/yesterday looks for the former."""
    created = time.mktime((2026, 11, 4, 9, 5, 7, 0, 0, -1))
    line = PostfixFormatter().format(_record("mailboat.smtpd", logging.INFO, "m", created=created))
    assert line.startswith("Nov  4 09:05:07 "), line
    assert LINE.match(line), line


def test_exception_text_follows_the_line():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys
        record = _record("mailboat.smtpd", logging.ERROR, "failed", exc_info=sys.exc_info())
    text = PostfixFormatter().format(record)
    first, rest = text.split("\n", 1)
    assert first.endswith(": error: failed")
    assert "ValueError: boom" in rest


def test_safe_escapes_line_breaks_and_bounds_length():
    assert safe("a\r\nb\x85c\u2028") == "a\\x0d\\x0ab\\x85c\\u2028"
    assert safe("x" * 400) == "x" * 300 + "..."


def test_said_renders_a_reply_as_postfix_logs_it():
    """Code, enhanced status, text: pflogsumm's reject detail groups by this text."""
    assert said(Reply.make(550, "5.1.1", "<x@y>: Recipient address rejected: User unknown")) == \
        "550 5.1.1 <x@y>: Recipient address rejected: User unknown"
    assert said(Reply.make(421, None, "closing", "now")) == "421 closing now"
    assert said(Reply.make(554, "5.7.1", "<a\x85b>")) == "554 5.7.1 <a\\x85b>"  # escaped like any client text
