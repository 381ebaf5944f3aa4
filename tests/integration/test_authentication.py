"""Sender authentication end to end: a real server, a real DNS server (nsd), real clients.

The clients connect from 127.0.0.1, which the server normally leaves unchecked (this machine's
own software); `[auth] check_local_clients = true` makes it judge them like any MX client.
"""

from __future__ import annotations

import asyncio
import smtplib
import subprocess
import sys

from mailboat.auth.dkim.verify import verify_message
from mailboat.resolver.dnspython import DnspythonResolver

from mbtest import start_server

BODY = b"Subject: {subject}\r\nDate: Mon, 23 Nov 2026 22:40:22 +0000\r\nMessage-ID: <{subject}@x>\r\n\r\nhello\r\n"


def zones(dkim_record: str = "") -> dict[str, str]:
    return {
        # Authorises 127.0.0.1: SPF passes and aligns, so DMARC passes.
        "good.example": 'good.example. TXT "v=spf1 ip4:127.0.0.1 -all"\n_dmarc TXT "v=DMARC1; p=reject"\n',
        # Authorises only another host, and asks receivers to reject failures.
        "strict.example": 'strict.example. TXT "v=spf1 ip4:192.0.2.1 -all"\n_dmarc TXT "v=DMARC1; p=reject"\n',
        "junk.example": 'junk.example. TXT "v=spf1 ip4:192.0.2.1 -all"\n_dmarc TXT "v=DMARC1; p=quarantine"\n',
        "example.com": dkim_record,
    }


def message(sender_domain: str, subject: str) -> bytes:
    return f"From: someone@{sender_domain}\r\n".encode() + BODY.replace(b"{subject}", subject.encode())


def test_spf_dmarc_verdicts_and_authentication_results(tmp_path, nsd):
    dns = nsd(zones())
    server = start_server(tmp_path, extra=f'[dns]\nnameservers = ["{dns.nameserver}"]\n'
                                          '[auth]\ncheck_local_clients = true\n')
    try:
        with smtplib.SMTP("127.0.0.1", server.ports["smtp"], local_hostname="client.example", timeout=15) as client:
            client.sendmail("someone@good.example", ["alice@example.com"], message("good.example", "good"))
            try:
                client.sendmail("someone@strict.example", ["alice@example.com"], message("strict.example", "bad"))
                raise AssertionError("a p=reject DMARC failure was accepted")
            except smtplib.SMTPDataError as exc:
                assert (exc.smtp_code, exc.smtp_error[:5]) == (550, b"5.7.1")
            client.sendmail("someone@junk.example", ["alice@example.com"], message("junk.example", "junk"))
            # A forged Authentication-Results with our authserv-id must not survive.
            forged = b"Authentication-Results: mx.test.example; dmarc=pass\r\n" + message("good.example", "forged")
            client.sendmail("someone@good.example", ["bob@example.com"], forged)
        [good] = server.wait_messages("alice@example.com", 1)
        results = good.split(b"Received:")[0]
        assert b"Authentication-Results: mx.test.example;" in results
        assert b"spf=pass" in results and b"dmarc=pass" in results
        junk_dir = server.maildir("alice@example.com") / ".Junk" / "new"
        [junk] = [p.read_bytes() for p in junk_dir.iterdir()]
        assert b"dmarc=fail" in junk and b"Subject: junk" in junk
        [forged_copy] = server.wait_messages("bob@example.com", 1)
        assert forged_copy.count(b"Authentication-Results: mx.test.example;") == 1
        assert b"dmarc=pass\r\nSubject: forged" not in forged_copy
    finally:
        server.stop()


def test_authenticated_mail_is_dkim_signed_and_verifies(tmp_path, nsd):
    key = tmp_path / "example.com.mail.key"
    done = subprocess.run([sys.executable, "-m", "mailboat", "dkim", "keygen", "example.com", "--selector", "mail",
                           "--out", str(key)], capture_output=True, text=True, check=True)
    record = done.stdout.strip().splitlines()[-1]
    txt = record.split(" IN TXT ", 1)[1]
    dns = nsd(zones(f"mail._domainkey TXT {txt}\n"))
    server = start_server(tmp_path, extra=f'[dns]\nnameservers = ["{dns.nameserver}"]\n'
                                          f'[[dkim.sign]]\ndomain = "example.com"\nselector = "mail"\nkey = "{key}"\n')
    try:
        import ssl
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=15) as client:
            client.starttls(context=context)
            client.login("alice@example.com", "password123")
            client.sendmail("alice@example.com", ["bob@example.com"], message("example.com", "signed")
                            .replace(b"someone@example.com", b"alice@example.com"))
        [delivered] = server.wait_messages("bob@example.com", 1)
    finally:
        server.stop()
    assert delivered.startswith(b"Return-Path: <alice@example.com>\r\nDelivered-To: bob@example.com\r\n")
    stored = delivered.split(b"\r\n", 2)[2]  # as it left the queue, before the Maildir headers
    assert b"DKIM-Signature: " in stored
    results = asyncio.run(verify_message(stored, DnspythonResolver([dns.nameserver], timeout=3)))
    assert [(r.result.value, r.domain) for r in results] == [("pass", "example.com")]
