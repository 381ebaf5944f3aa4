"""`mailboat sendmail` and `mailboat-sendmail` as real subprocesses writing a real SQLite queue,
with the server stopped and with a real `mailboat serve` running on loopback ports."""

import email
import email.policy
import json
import os
import pwd
import smtplib
import subprocess
import sys
from pathlib import Path

import pytest

from mbtest import start_server

MAILBOAT = [sys.executable, "-m", "mailboat"]
ENTRY_POINT = Path(sys.executable).with_name("mailboat-sendmail")


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "mailboat.toml"
    path.write_text(f'hostname = "mx.example.com"\ndata_dir = "{tmp_path / "data"}"\n')
    return path


def sendmail(config, *args, input=b"Subject: hi\n\nhello\n", command=None):
    cmd = command or [*MAILBOAT, "sendmail"]
    return subprocess.run([*cmd, "--config", str(config), *args], input=input, capture_output=True, timeout=60)


def queue(config):
    out = subprocess.run([*MAILBOAT, "queue", "list", "--json", "--config", str(config)], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    return json.loads(out)


def stored(config, queue_id):
    out = subprocess.run([*MAILBOAT, "queue", "show", queue_id, "--json", "--config", str(config)],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return json.loads(out)


def test_recipients_from_arguments_and_defaults_added(config):
    result = sendmail(config, "-oi", "-oem", "-odb", "-bm", "-fbob@example.org", "-F", "Bob B",
                      "alice@example.net, postmaster")
    assert result.returncode == 0 and result.stderr == b"" and result.stdout == b""
    [item] = queue(config)
    assert item["sender"] == "bob@example.org" and item["protocol"] == "local"
    assert [r["address"] for r in item["recipients"]] == ["alice@example.net", "postmaster@mx.example.com"]
    headers = dict(stored(config, item["queue_id"])["headers"])
    assert " ".join(headers["Received"].split()).startswith(
        f"by mx.example.com (mailboat, from userid {os.getuid()}) id {item['queue_id']};")
    assert headers["From"] == '"Bob B" <bob@example.org>' and headers["Date"]
    assert headers["Message-ID"] == f"<{item['queue_id']}@mx.example.com>"


def test_t_reads_headers_removes_bcc_and_converts_line_ends(config, tmp_path):
    message = (b"From: Me <me@example.org>\nTo: a@example.net,\n  b@example.net\nCc: C <c@example.net>\n"
               b"Bcc: hidden@example.net\nSubject: x\n\nline\n..dots stay\n")
    assert sendmail(config, "-t", "-i", "extra@example.net", input=message).returncode == 0
    [item] = queue(config)
    assert sorted(r["address"] for r in item["recipients"]) == [
        "a@example.net", "b@example.net", "c@example.net", "extra@example.net", "hidden@example.net"]
    db = tmp_path / "data" / "queue.db"
    import sqlite3
    data = sqlite3.connect(db).execute("SELECT data FROM body").fetchone()[0]
    assert b"Bcc" not in data and b"hidden" not in data
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only
    assert data.endswith(b"\r\n\r\nline\r\n..dots stay\r\n")
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg["From"] == "Me <me@example.org>"  # kept, not replaced


def test_single_dot_ends_the_message_without_i(config, tmp_path):
    assert sendmail(config, "a@example.net", input=b"Subject: x\n\nbefore\n.\nafter\n").returncode == 0
    import sqlite3
    data = sqlite3.connect(tmp_path / "data" / "queue.db").execute("SELECT data FROM body").fetchone()[0]
    assert data.endswith(b"before\r\n") and b"after" not in data


def test_dsn_options_and_null_sender(config):
    assert sendmail(config, "-f", "<>", "-N", "success,failure", "-R", "hdrs", "-V", "ENV-1",
                    "a@example.net").returncode == 0
    [item] = queue(config)
    assert item["sender"] == "" and item["ret"] == "HDRS" and item["envid"] == "ENV-1"
    assert item["recipients"][0]["notify"] == ["SUCCESS", "FAILURE"]


USER = pwd.getpwuid(os.getuid()).pw_name


def test_default_sender_is_invoking_user(config):
    assert sendmail(config, "a@example.net").returncode == 0
    assert queue(config)[0]["sender"] == f"{USER}@mx.example.com"  # the hostname is a local domain


def test_default_sender_is_at_a_local_domain_when_the_hostname_is_not_one(tmp_path):
    """Its bounces must be deliverable here: user@first local domain, not user@hostname."""
    config = tmp_path / "c.toml"
    config.write_text(f'hostname = "mx.example.com"\ndata_dir = "{tmp_path / "data"}"\n'
                      '[domains]\nlocal = ["example.org", "example.com"]\n')
    assert sendmail(config, "a@example.net", "-f", "root").returncode == 0
    assert sendmail(config, "a@example.net").returncode == 0
    assert [item["sender"] for item in queue(config)] == ["root@example.org", f"{USER}@example.org"]


@pytest.mark.parametrize("args, code, text", [
    ((), 64, b"no recipients"),
    (("-N", "never,success", "a@example.net"), 64, b"-N"),
    (("-bs",), 64, b"not supported"),
    (("-q",), 64, b"unrecognized"),
    (("a\x01b@example.net",), 65, b"bad address"),
])
def test_sysexits(config, args, code, text):
    result = sendmail(config, *args)
    assert result.returncode == code, result.stderr
    assert text in result.stderr and len(result.stderr.splitlines()) == 1 and b"Traceback" not in result.stderr
    assert not (config.parent / "data" / "queue.db").exists() or queue(config) == []


def test_config_error_is_ex_config(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('hostname = "no spaces allowed"\n')
    result = sendmail(bad, "a@example.net")
    assert result.returncode == 78 and len(result.stderr.splitlines()) == 1


def test_unwritable_queue_is_ex_tempfail(tmp_path):
    config = tmp_path / "c.toml"
    (tmp_path / "file").write_text("not a directory")
    config.write_text(f'hostname = "mx.example.com"\ndata_dir = "{tmp_path / "file" / "data"}"\n')
    result = sendmail(config, "a@example.net")
    assert result.returncode == 75 and b"nothing was queued" in result.stderr


def test_entry_point_and_bp(config):
    if not ENTRY_POINT.exists():
        pytest.skip("mailboat-sendmail is not installed in this environment (pip install -e .)")
    assert sendmail(config, "-ti", input=b"To: z@example.net\n\nhi\n", command=[str(ENTRY_POINT)]).returncode == 0
    listing = sendmail(config, "-bp", command=[str(ENTRY_POINT)])
    assert listing.returncode == 0 and b"z@example.net" in listing.stdout and b"in 1 Request." in listing.stdout


def local_config(tmp_path, *users):
    """Local domain example.com (not the hostname), one alias, the given accounts; no server."""
    config = tmp_path / "local.toml"
    config.write_text(f'hostname = "mx.example.com"\ndata_dir = "{tmp_path / "data"}"\n'
                      '[domains]\nlocal = ["example.com"]\n[aliases]\n"sales@example.com" = ["alice@example.com"]\n')
    for user in users:
        subprocess.run([*MAILBOAT, "user", "add", user, "--password-stdin", "--config", str(config)],
                       input=b"password123\n", check=True, capture_output=True, timeout=60)
    return config


def nothing_stored(data_dir: Path, config) -> bool:
    return (not (data_dir / "queue.db").exists() or queue(config) == []) and not (data_dir / "mail").exists()


def test_unknown_local_recipient_is_ex_nouser_and_nothing_is_stored(tmp_path):
    config = local_config(tmp_path, "alice@example.com")
    result = sendmail(config, "nobody@example.com")
    assert result.returncode == 67, result.stderr
    assert result.stderr.splitlines() == [
        b"mailboat: sendmail: 550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown; "
        b"nothing was queued"]
    assert nothing_stored(tmp_path / "data", config)


def test_one_line_per_refused_recipient_and_none_of_the_others_queued(tmp_path):
    config = local_config(tmp_path, "alice@example.com")
    result = sendmail(config, "-t", "alice@example.com", "nobody@example.com", "sales@example.com",
                      "friend@example.net", input=b"To: Ghost <ghost@example.com>, postmaster@example.com\n\nhi\n")
    assert result.returncode == 67 and b"Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and b"<nobody@example.com>" in lines[0] and b"<ghost@example.com>" in lines[1]
    assert all(b" 550 5.1.1 " in line for line in lines)
    assert not any(a in result.stderr for a in (b"alice@", b"sales@", b"friend@", b"postmaster@"))
    assert nothing_stored(tmp_path / "data", config)
    # The same recipients without the unknown ones are queued.
    assert sendmail(config, "alice@example.com", "sales@example.com", "friend@example.net").returncode == 0
    assert len(queue(config)) == 1


def test_running_server_refuses_what_smtp_refuses_and_delivers_the_rest(tmp_path):
    server = start_server(tmp_path)
    try:
        with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as client:
            client.ehlo("client.example.org")
            client.mail("sender@example.org")
            code, text = client.rcpt("nobody@example.com")
        assert (code, text[:5]) == (550, b"5.1.1")
        refused = sendmail(server.config, "nobody@example.com", input=b"Subject: lost?\n\nhi\n")
        assert refused.returncode == 67 and b"<nobody@example.com>" in refused.stderr, refused.stderr
        sent = sendmail(server.config, "alice@example.com", input=b"Subject: found\n\nhi\n")
        assert sent.returncode == 0, sent.stderr
        [delivered] = server.wait_messages("alice@example.com", 1)
        assert b"Subject: found" in delivered
        assert not server.maildir("nobody@example.com").exists() and b"lost?" not in delivered
        assert queue(server.config) == []
    finally:
        server.stop()
