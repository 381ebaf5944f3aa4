"""`mailboat user add` as a user runs it: only addresses this server receives mail for, and the
local parts our SMTP server's RCPT parser takes (SMTPUTF8 ones included), end to end.
"""

from __future__ import annotations

import base64
import smtplib
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mbtest import start_server

MAILBOAT = [sys.executable, "-m", "mailboat"]


def user(*args: str, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*MAILBOAT, "user", *args, "--config", str(config)], input="password123\n",
                          capture_output=True, text=True, timeout=60)


def wait_messages(maildir: Path, count: int) -> list[bytes]:
    """The messages of a Maildir once `count` have arrived (bounded: 20 s)."""
    deadline = time.monotonic() + 20
    new = maildir / "new"
    while time.monotonic() < deadline:
        found = sorted(new.iterdir()) if new.exists() else []
        if len(found) >= count:
            return [p.read_bytes() for p in found]
        time.sleep(0.05)
    raise AssertionError(f"{maildir}: fewer than {count} messages arrived")


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "c.toml"
    config.write_text('data_dir = "data"\n[domains]\nlocal = ["example.com", "example.net"]\n')
    return config


def test_an_address_outside_the_local_domains_is_refused_and_nothing_stored(tmp_path):
    config = write_config(tmp_path)
    result = user("add", "alice@example.org", "--password-stdin", config=config)
    assert result.returncode == 2
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr == (f"mailboat: alice@example.org: example.org is not a local domain of this server "
                             f"(local domains: example.com, example.net): add it to [domains] local in {config}; "
                             "nothing stored\n")
    assert not (tmp_path / "data" / "users.db").exists()
    assert user("list", config=config).stdout == ""


def test_with_the_embedded_default_the_message_says_where_to_configure(tmp_path):
    result = subprocess.run([*MAILBOAT, "user", "add", "alice@example.org", "--password-stdin"], input="password123\n",
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "example.org is not a local domain" in result.stderr
    assert "local domains: localhost" in result.stderr
    assert "add it to [domains] local in a configuration (mailboat.toml or --config FILE)" in result.stderr
    assert not (tmp_path / "mailboat-data" / "users.db").exists()


@pytest.mark.parametrize("address, message", [
    ("alice", "'alice' is not a full address: write local@domain"),
    ("two words@example.com", "malformed local part"),
    ("alice@exa_mple.com", "its domain 'exa_mple.com' is not a domain name"),
    ("a%b@example.com", "a local part with %, ! or @ is refused at RCPT"),
    ("x" * 65 + "@example.com", "local part longer than 64 octets"),
])
def test_an_address_the_rcpt_parser_refuses_is_refused(tmp_path, address, message):
    config = write_config(tmp_path)
    result = user("add", address, "--password-stdin", config=config)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "data" / "users.db").exists()


def test_an_internationalised_domain_is_matched_in_either_form(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('data_dir = "data"\n[domains]\nlocal = ["bücher.example"]\n', encoding="utf-8")
    added = user("add", "Anna@Bücher.Example", "--password-stdin", config=config)
    assert (added.returncode, added.stdout) == (0, "added anna@xn--bcher-kva.example\n"), added.stderr
    again = user("add", "anna@xn--bcher-kva.example", "--password-stdin", config=config)
    assert again.returncode == 1 and "already exists" in again.stderr


def auth_plain(client: smtplib.SMTP, identity: str, password: str) -> tuple[int, bytes]:
    """AUTH PLAIN with a UTF-8 identity (RFC 4616: SASL strings are UTF-8; smtplib's login() only
    encodes ASCII)."""
    token = base64.b64encode(f"\0{identity}\0{password}".encode()).decode("ascii")
    return client.docmd("AUTH", f"PLAIN {token}")


def test_an_smtputf8_account_receives_mail_and_authenticates(tmp_path):
    server = start_server(tmp_path, users=("josé@example.com", "用户@example.com"))
    try:
        assert [line.split("\t")[0] for line in server.cli("user", "list").stdout.splitlines()] == [
            "josé@example.com", "用户@example.com"]
        message = "From: <sender@example.org>\r\nSubject: =?utf-8?q?ol=C3=A1?=\r\n\r\nolá\r\n".encode()
        with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=15) as client:
            client.ehlo("client.example")
            assert client.has_extn("smtputf8")
            refused = client.sendmail("sender@example.org", ["josé@example.com", "用户@example.com"], message,
                                      mail_options=["SMTPUTF8"])
            assert refused == {}
        [first] = wait_messages(tmp_path / "data" / "mail" / "example.com" / "jos%C3%A9", 1)
        assert b"Delivered-To: jos\xc3\xa9@example.com\r\n" in first
        [second] = wait_messages(tmp_path / "data" / "mail" / "example.com" / "%E7%94%A8%E6%88%B7", 1)
        assert "Delivered-To: 用户@example.com\r\n".encode() in second

        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=15) as client:
            client.starttls(context=context)
            client.ehlo("client.example")
            assert auth_plain(client, "josé@example.com", "wrong-password")[0] == 535
            code, reply = auth_plain(client, "JOSÉ@example.com", "password123")
            assert (code, reply[:5]) == (235, b"2.7.0"), reply
            refused = client.sendmail("josé@example.com", ["用户@example.com"], b"Subject: from jose\r\n\r\nhi\r\n",
                                      mail_options=["SMTPUTF8"])
            assert refused == {}
        delivered = wait_messages(tmp_path / "data" / "mail" / "example.com" / "%E7%94%A8%E6%88%B7", 2)
        assert any("Return-Path: <josé@example.com>".encode() in m and b"Subject: from jose" in m for m in delivered)
    finally:
        server.stop()
