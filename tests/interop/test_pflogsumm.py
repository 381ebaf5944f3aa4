"""Debian's pflogsumm reads a real `mailboat serve` log and counts what happened (SPEC "Logs").

One run: 5 messages received over SMTP (3 delivered into Maildirs, 1 deferred: an alias to a
remote domain routed to a closed port, 1 bounced: its Maildir path is a plain file), and 1
recipient rejected at RCPT (unknown local user). pflogsumm must count exactly that.
"""

import json
import re
import smtplib
import subprocess
import time

import pytest


from mbtest import need_tool, start_server


pytestmark = pytest.mark.interop

EXTRA = """\
"away@example.com" = ["someone@remote.test"]
"broken@example.com" = ["ghost@example.com"]
[[route]]
domain = "remote.test"
smarthost = "127.0.0.1:9"
"""


def counts(report: str) -> dict[str, int]:
    found = {}
    for name in ("received", "delivered", "deferred", "bounced", "rejected"):
        match = re.search(rf"^\s*(\d+)\s+{name}\b", report, re.MULTILINE)
        found[name] = int(match.group(1)) if match else -1
    return found


def test_pflogsumm_counts_a_mailboat_log(tmp_path):
    pflogsumm = need_tool("pflogsumm")
    server = start_server(tmp_path, extra=EXTRA)
    try:
        (server.data_dir / "mail" / "example.com").mkdir(parents=True, exist_ok=True)
        (server.data_dir / "mail" / "example.com" / "ghost").write_text("a file where a Maildir should be")
        body = b"Subject: pflogsumm\r\n\r\nhello\r\n"
        with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as client:
            client.ehlo("client.example")
            for rcpt in ("alice@example.com", "bob@example.com", "alice@example.com", "away@example.com"):
                client.sendmail("sender@example.org", [rcpt], body)
            client.sendmail("", ["broken@example.com"], body)
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.sendmail("sender@example.org", ["nobody@example.com"], body)
        server.wait_messages("alice@example.com", 2)
        server.wait_messages("bob@example.com", 1)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # until the deferral is recorded and the bounce has left
            items = json.loads(server.cli("queue", "list", "--json").stdout)
            if len(items) == 1 and items[0]["attempts"] >= 1:
                break
            time.sleep(0.1)
        assert len(items) == 1 and items[0]["recipients"][0]["address"] == "away@example.com", items
    finally:
        log = server.stop()
    assert "Traceback" not in log
    path = tmp_path / "mailboat.log"
    path.write_text(log)
    result = subprocess.run([pflogsumm, "--syslog-name=mailboat", str(path)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    # delivered: alice twice, bob, and the postmaster's copy of the report about the null-sender
    # message to broken@ (a report no sender can receive goes to postmaster, SPEC).
    assert counts(result.stdout) == {"received": 5, "delivered": 4, "deferred": 1, "bounced": 1,
                                     "rejected": 1}, result.stdout + "\n" + log
