"""Debian's pflogsumm reads a real `mailboat serve` log and counts what happened (SPEC "Logs").

One run of `mailboat serve` logging to a file (`log.file`), real traffic over sockets:

- 6 messages received over SMTP: 3 delivered into Maildirs (`mailboat/local`), 1 relayed to
  Postfix's smtp-sink (`mailboat/smtp`, relay=127.0.0.1[127.0.0.1]:PORT), 1 bounced (its Maildir
  path is a plain file), 1 sent to a smarthost that answers every RCPT with 4xx: deferred, then
  expired (queue.max_lifetime = 3s), returned to the sender with a non-delivery report (which is
  delivered to alice: the 5th delivery); the two remote ones reach their domains through aliases;
- 2 recipients rejected at RCPT: unknown local user (550 5.1.1), relay denied (554 5.7.1).

Then the real pflogsumm: `pflogsumm --syslog-name=mailboat LOG`. pflogsumm keeps only the
lines of one day with `-d today`; that test does not use it, so the date of the log (and the
machine's clock and timezone) plays no part. `-d` is tested on its own, on lines stamped by
mailboat's formatter for a fixed single-digit day, with pflogsumm's clock pinned to that day. A second
test delivers over LMTP (to smtp-sink -L):
those lines are `mailboat/lmtp[PID]`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import smtplib
import socket
import subprocess
import time
from pathlib import Path

import pytest

from mailboat.log import PostfixFormatter

from mbtest import need_tool, start_server

pytestmark = pytest.mark.interop

BODY = b"Subject: pflogsumm\r\n\r\nhello\r\n"


class SmtpSink:
    """Postfix's smtp-sink on a free loopback port; `flags` as its manual (-r rcpt: 4xx to RCPT)."""

    def __init__(self, *flags: str) -> None:
        binary = need_tool("smtp-sink")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        user = ["-u", "nobody"] if os.getuid() == 0 else []
        self.proc = subprocess.Popen([binary, *user, *flags, f"127.0.0.1:{self.port}", "10"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError("smtp-sink did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


@pytest.fixture
def sinks():
    started: list[SmtpSink] = []

    def start(*flags: str) -> SmtpSink:
        started.append(SmtpSink(*flags))
        return started[-1]

    yield start
    for sink in started:
        sink.stop()


def pflogsumm(log: Path, *options: str) -> str:
    binary = need_tool("pflogsumm")
    result = subprocess.run([binary, "--syslog-name=mailboat", *options, str(log)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def counts(report: str) -> dict[str, int]:
    found = {}
    for name in ("received", "delivered", "deferred", "bounced", "rejected"):
        match = re.search(rf"^\s*(\d+)\s+{name}\b", report, re.MULTILINE)
        found[name] = int(match.group(1)) if match else -1
    return found


def wait_until(check, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


def test_pflogsumm_counts_a_mailboat_log(tmp_path, sinks):
    accepting, refusing = sinks(), sinks("-r", "rcpt")
    log_file = tmp_path / "mailboat.log"
    server = start_server(tmp_path, extra=f"""\
"broken@example.com" = ["ghost@example.com"]
"carol@example.com" = ["carol@remote.test"]
"dave@example.com" = ["dave@slow.test"]
[log]
file = "{log_file}"
[queue]
retry = ["1s"]
max_lifetime = "3s"
delay_warning = ""
[[route]]
domain = "remote.test"
smarthost = "127.0.0.1:{accepting.port}"
[[route]]
domain = "slow.test"
smarthost = "127.0.0.1:{refusing.port}"
""")
    try:
        ghost = server.maildir("ghost@example.com")
        ghost.parent.mkdir(parents=True, exist_ok=True)
        ghost.write_text("a file where a Maildir should be")
        with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as client:
            client.ehlo("client.example")
            for rcpt in ("alice@example.com", "bob@example.com", "alice@example.com", "carol@example.com"):
                client.sendmail("sender@example.org", [rcpt], BODY)
            client.sendmail("", ["broken@example.com"], BODY)
            client.sendmail("alice@example.com", ["dave@example.com"], BODY)
            client.mail("sender@example.org")
            assert client.rcpt("nobody@example.com")[0] == 550
            assert client.rcpt("someone@elsewhere.test")[0] == 554
            client.rset()
        # alice: two messages, then the non-delivery report for dave once his message expired.
        server.wait_messages("alice@example.com", 3, timeout=40)
        server.wait_messages("bob@example.com", 1)
        wait_until(lambda: json.loads(server.cli("queue", "list", "--json").stdout) == [], "the queue empties")
    finally:
        server.stop()
    log = log_file.read_text()
    assert "Traceback" not in log and server.log == "", server.log

    report = pflogsumm(log_file)
    # received: 6 over SMTP (the bounce is not received: Postfix's bounces are not either);
    # delivered: 3 local + carol (smtp) + the report to alice + postmaster's copy of the report
    # about the null-sender message to broken@ (a report no sender can receive goes to postmaster,
    # SPEC); deferred: dave's message (one message however often deferred); bounced: ghost (5xx)
    # and dave (expired); rejected: 2 RCPTs.
    assert counts(report) == {"received": 6, "delivered": 6, "deferred": 1, "bounced": 2, "rejected": 2}, \
        report + "\n" + log
    detail = report[report.index("message reject detail"):]
    assert "Recipient address rejected: User unknown" in detail and "Relay access denied" in detail, report
    # With --verbose-msg-detail pflogsumm lists each reject's full reply: the enhanced status codes.
    verbose = pflogsumm(log_file, "--verbose-msg-detail")
    detail = verbose[verbose.index("message reject detail"):]
    assert "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown" in detail, verbose
    assert "554 5.7.1 <someone@elsewhere.test>: Relay access denied" in detail, verbose
    bounces = verbose[verbose.index("message bounce detail"):]
    assert "delivery time expired" in bounces, verbose
    # --smtpd-stats pairs "connect from" and "disconnect from" lines by PID: one session here.
    stats = pflogsumm(log_file, "--smtpd-stats")
    assert re.search(r"^\s*1\s+connections$", stats, re.MULTILINE), stats

    # The agents, as Postfix names them.
    assert re.search(r" mailboat/local\[\d+\]: \w+: to=<bob@example\.com>, relay=local, .*status=sent ", log), log
    assert re.search(r" mailboat/smtp\[\d+\]: \w+: to=<carol@remote\.test>, orig_to=<carol@example\.com>, "
                     rf"relay=127\.0\.0\.1\[127\.0\.0\.1\]:{accepting.port}, delay=[\d.]+, "
                     r"delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=2\.0\.0, status=sent \(250 2\.0\.0 Ok", log), log
    assert re.search(r" mailboat/smtp\[\d+\]: \w+: to=<dave@slow\.test>, .*dsn=4\.4\.7, status=bounced "
                     r"\(delivery time expired: ", log), log
    assert re.search(r" mailboat/qmgr\[\d+\]: \w+: from=<alice@example\.com>, status=expired, returned to sender$",
                     log, re.MULTILINE), log
    assert re.search(r" mailboat/bounce\[\d+\]: \w+: sender non-delivery notification: \w+$", log, re.MULTILINE), log
    assert re.search(r" mailboat/smtpd\[\d+\]: NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.1\]: 550 5\.1\.1 "
                     r"<nobody@example\.com>: Recipient address rejected: User unknown; from=<sender@example\.org> "
                     r"to=<nobody@example\.com> proto=ESMTP helo=<client\.example>$", log, re.MULTILINE), log


def test_lmtp_deliveries_log_as_lmtp(tmp_path, sinks):
    """Local mail delivered over LMTP (delivery.lmtp, here Postfix's smtp-sink -L) logs as
    `mailboat/lmtp[PID]`, and pflogsumm counts it delivered."""
    target = sinks("-L")
    log_file = tmp_path / "mailboat.log"
    server = start_server(tmp_path, extra=f'[log]\nfile = "{log_file}"\n[delivery]\nlmtp = "127.0.0.1:{target.port}"\n')
    try:
        with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as client:
            client.sendmail("sender@example.org", ["alice@example.com"], BODY)
        wait_until(lambda: json.loads(server.cli("queue", "list", "--json").stdout) == []
                   and "status=sent" in log_file.read_text(), "the LMTP delivery")
    finally:
        server.stop()
    log = log_file.read_text()
    assert re.search(rf" mailboat/lmtp\[\d+\]: \w+: to=<alice@example\.com>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:"
                     rf"{target.port}, .*dsn=2\.\d\.\d, status=sent \(250 2\.", log), log
    assert counts(pflogsumm(log_file)) == {"received": 1, "delivered": 1, "deferred": 0, "bounced": 0,
                                           "rejected": 0}, log


def test_a_mail_refused_for_disk_space_counts_as_a_reject(tmp_path):
    """MAIL refused for want of queue space (limits.queue_minfree above any disk): one warning
    line with the figures, and one `NOQUEUE: reject: MAIL` line pflogsumm counts as a reject (a
    "warning: NOQUEUE: reject:" line would be counted as a warning instead)."""
    log_file = tmp_path / "mailboat.log"
    server = start_server(tmp_path, extra=f'[log]\nfile = "{log_file}"\n[limits]\nqueue_minfree = {10**18}\n')
    try:
        with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as client:
            client.ehlo("client.example")
            assert client.mail("sender@example.org")[0] == 452
    finally:
        server.stop()
    log = log_file.read_text()
    assert re.search(r" mailboat/smtpd\[\d+\]: NOQUEUE: reject: MAIL from localhost\[127\.0\.0\.1\]: 452 4\.3\.1 "
                     r"Insufficient system storage; from=<sender@example\.org> proto=ESMTP helo=<client\.example>$",
                     log, re.MULTILINE), log
    assert re.search(r" mailboat/smtpd\[\d+\]: warning: not enough free space in mail queue: ", log), log
    report = pflogsumm(log_file)
    assert counts(report)["rejected"] == 1, report + "\n" + log


def test_pflogsumm_day_filter_matches_mailboat_stamps(tmp_path):
    """pflogsumm -d today/yesterday keeps the lines whose stamp starts "Nov  4" (syslog pads the
    day with a space). Lines stamped by mailboat's formatter for Nov 3 and Nov 4 (local time);
    pflogsumm runs with Perl's time() pinned to Nov 4, 13:00, so neither the date nor the
    timezone of the machine matters."""
    binary = need_tool("pflogsumm")
    formatter = PostfixFormatter()

    def line(day: int, queue_id: str) -> str:
        record = logging.LogRecord("mailboat.smtpd", logging.INFO, "", 0, "%s: client=x.example[192.0.2.1]",
                                   (queue_id,), None)
        record.created = time.mktime((2026, 11, day, 12, 0, 0, 0, 0, -1))
        return formatter.format(record) + "\n"

    log_file = tmp_path / "mailboat.log"
    log_file.write_text(line(3, "A1") + line(3, "A2") + line(4, "B1"))
    now = int(time.mktime((2026, 11, 4, 13, 0, 0, 0, 0, -1)))
    pinned = 'BEGIN { my $t = shift @ARGV; *CORE::GLOBAL::time = sub { $t } } $0 = shift @ARGV; do $0; die $@ if $@'
    for day, expected in (("today", 1), ("yesterday", 2)):
        result = subprocess.run(["perl", "-e", pinned, str(now), binary, "--syslog-name=mailboat", "-d", day,
                                 str(log_file)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert counts(result.stdout)["received"] == expected, day + "\n" + log_file.read_text() + result.stdout
