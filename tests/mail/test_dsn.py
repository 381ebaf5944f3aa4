"""RFC 3464 reports from mail.dsn, parsed back with the stdlib email package field by field."""

import email
import email.policy
import re

import pytest

from mailboat.mail.dsn import DeliveryReport, RecipientReport, build_dsn, is_delivery_report, may_report, wants
from mailboat.mail.envelope import Envelope, Recipient

T0 = 1_700_000_000.0
ORIGINAL = (b"Received: from client.example (unknown [192.0.2.7])\r\n\tby mx.example.com (mailboat) with ESMTP id "
            b"0AbCdEfGhIjKlM; Tue, 14 Nov 2023 22:13:20 +0000\r\nFrom: Alice <alice@example.org>\r\n"
            b"Subject: =?utf-8?q?caf=C3=A9?=\r\nDKIM-Signature: v=1; a=rsa-sha256; d=example.org;\r\n"
            b" bh=abc; b=def\r\n\r\nBody line 1\r\n8-bit: caf\xc3\xa9\r\n.leading dot\r\n")


def report(*recipients: RecipientReport, ret=None, envid="ENV-42") -> DeliveryReport:
    return DeliveryReport("mx.example.com", "0AbCdEfGhIjKlM", "alice@example.org", T0, recipients,
                          envid=envid, ret=ret)


FAILED = RecipientReport("bob@example.net", "failed", "5.1.1", original_recipient="rfc822;Bob@Example.NET",
                         remote_mta="mx.example.net", diagnostic="550 5.1.1 <bob@example.net>: User unknown",
                         last_attempt=T0 + 5)


def parse(data: bytes):
    return email.message_from_bytes(data, policy=email.policy.default)


def test_failure_report_structure_and_fields():
    data = build_dsn(report(FAILED), ORIGINAL, message_id="<dsn1@mx.example.com>", at=T0 + 6)
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only: no bare LF anywhere
    msg = parse(data)
    assert msg["From"] == "Mail Delivery System <MAILER-DAEMON@mx.example.com>"
    assert msg["To"] == "alice@example.org" and msg["Auto-Submitted"] == "auto-replied"
    assert msg["Subject"] == "Undelivered Mail Returned to Sender" and msg["Message-ID"] == "<dsn1@mx.example.com>"
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    text, status, returned = msg.get_payload()
    assert text.get_content_type() == "text/plain"
    human = " ".join(text.get_content().split())
    assert "could not be delivered" in human and "<bob@example.net>" in human
    assert "550 5.1.1 <bob@example.net>: User unknown" in human and "What you can do" in human
    assert status.get_content_type() == "message/delivery-status"
    per_message, per_rcpt = status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; mx.example.com"
    assert per_message["Original-Envelope-Id"] == "ENV-42"
    assert per_message["Arrival-Date"] == "Tue, 14 Nov 2023 22:13:20 +0000"
    assert per_rcpt["Original-Recipient"] == "rfc822;Bob@Example.NET"
    assert per_rcpt["Final-Recipient"] == "rfc822; bob@example.net"
    assert per_rcpt["Action"] == "failed" and per_rcpt["Status"] == "5.1.1"
    assert per_rcpt["Remote-MTA"] == "dns; mx.example.net"
    assert per_rcpt["Diagnostic-Code"] == "smtp; 550 5.1.1 <bob@example.net>: User unknown"
    assert per_rcpt["Last-Attempt-Date"] == "Tue, 14 Nov 2023 22:13:25 +0000"
    assert per_rcpt["Will-Retry-Until"] is None
    assert returned.get_content_type() == "message/rfc822"
    assert returned["Content-Transfer-Encoding"] == "8bit"


def test_original_attached_byte_for_byte():
    data = build_dsn(report(FAILED), ORIGINAL, message_id="<d@x>")
    # Never re-serialised: the folded DKIM header, the 8-bit line and the dot line are all intact.
    assert ORIGINAL in data
    boundary = re.search(rb'boundary="([^"]+)"', data).group(1)
    assert boundary not in ORIGINAL


def test_ret_hdrs_returns_headers_only():
    data = build_dsn(report(FAILED, ret="HDRS"), ORIGINAL, message_id="<d@x>")
    returned = parse(data).get_payload()[2]
    assert returned.get_content_type() == "text/rfc822-headers"
    assert b"Body line 1" not in data and b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org;\r\n bh=abc" in data
    assert "headers only" in parse(data).get_payload()[0].get_content()


def test_delay_report_has_will_retry_until():
    delayed = RecipientReport("bob@example.net", "delayed", "4.4.1", remote_mta="mx.example.net",
                              diagnostic="451 4.4.1 connection timed out", last_attempt=T0 + 3600,
                              will_retry_until=T0 + 5 * 86400)
    msg = parse(build_dsn(report(delayed, envid=None), ORIGINAL, message_id="<d@x>"))
    assert msg["Subject"] == "Delayed Mail (still being retried)"
    per_message, per_rcpt = msg.get_payload()[1].get_payload()
    assert per_message["Original-Envelope-Id"] is None
    assert per_rcpt["Action"] == "delayed" and per_rcpt["Status"] == "4.4.1"
    assert per_rcpt["Will-Retry-Until"] == "Sun, 19 Nov 2023 22:13:20 +0000"
    assert per_rcpt["Original-Recipient"] is None  # no ORCPT given: RFC 3464 §2.3.1
    assert "do not need to send it again" in msg.get_payload()[0].get_content()


def test_several_recipients_and_success_report():
    ok = RecipientReport("carol@example.com", "delivered", "2.0.0", diagnostic="250 2.0.0 delivered to maildir",
                         alias="team@example.com", last_attempt=T0 + 1)
    msg = parse(build_dsn(report(ok), ORIGINAL, message_id="<d@x>"))
    assert msg["Subject"] == "Successful Mail Delivery Report"
    assert "(sent to <team@example.com>)" in msg.get_payload()[0].get_content()
    both = parse(build_dsn(report(FAILED, ok), ORIGINAL, message_id="<d@x>"))
    groups = both.get_payload()[1].get_payload()
    assert [g["Action"] for g in groups[1:]] == ["failed", "delivered"]
    assert both["Subject"] == "Undelivered Mail Returned to Sender"


def test_hostile_values_cannot_forge_fields():
    evil = RecipientReport("bob@example.net", "failed", "5.0.0", remote_mta="mx\r\nAction: delivered",
                           diagnostic="550 no\r\nStatus: 2.0.0\r\n\r\nFinal-Recipient: rfc822; x@y")
    msg = parse(build_dsn(report(evil, envid="E\r\nX-Evil: 1"), ORIGINAL, message_id="<d@x>"))
    per_message, *groups = msg.get_payload()[1].get_payload()
    assert len(groups) == 1 and groups[0]["Action"] == "failed" and groups[0]["Status"] == "5.0.0"
    assert per_message["X-Evil"] is None and per_message["Original-Envelope-Id"] == "E X-Evil: 1"


def test_long_diagnostic_is_folded():
    long = RecipientReport("bob@example.net", "failed", "5.7.1", diagnostic="550 5.7.1 " + "policy " * 40)
    data = build_dsn(report(long), ORIGINAL, message_id="<d@x>")
    status = data.split(b"message/delivery-status\r\n\r\n", 1)[1].split(b"\r\n--", 1)[0]
    assert max(len(line) for line in status.split(b"\r\n")) <= 78
    group = parse(data).get_payload()[1].get_payload()[1]
    assert " ".join(group["Diagnostic-Code"].split()) == "smtp; 550 5.7.1 " + " ".join(["policy"] * 40)


@pytest.mark.parametrize("notify, action, expected", [
    (None, "failed", True), (None, "delayed", True), (None, "delivered", False),
    (("NEVER",), "failed", False), (("SUCCESS",), "failed", False), (("SUCCESS",), "delivered", True),
    (("FAILURE",), "delayed", False), (("DELAY", "FAILURE"), "delayed", True),
])
def test_notify_decides(notify, action, expected):
    assert wants(Recipient("b@example.net", notify=notify), action) is expected


def test_never_bounce_null_sender_or_a_bounce():
    env = Envelope("alice@example.org", (Recipient("b@example.net"),))
    assert may_report(env, ORIGINAL)
    assert not may_report(Envelope("", (Recipient("b@example.net"),)), ORIGINAL)
    dsn = build_dsn(report(FAILED), ORIGINAL, message_id="<d@x>")
    assert is_delivery_report(dsn) and not may_report(env, dsn)
    assert not is_delivery_report(b"Content-Type: multipart/report; report-type=disposition-notification\r\n\r\n")


def test_our_own_findings_are_ours_not_a_servers():
    refused = RecipientReport("dave@example.net", "failed", "4.4.7", last_attempt=T0 + 5,
                              local_diagnostic="connect to mx.example.net[192.0.2.1]:25: Connection refused")
    lost = RecipientReport("erin@example.net", "delayed", "4.4.2", remote_mta="mx.example.net",
                           local_diagnostic="lost connection with mx.example.net[192.0.2.1]:25 while awaiting "
                                            "reply to DATA")
    msg = parse(build_dsn(report(refused, lost), ORIGINAL, message_id="<d@mx.example.com>", at=T0 + 6))
    text, status, _ = msg.get_payload()
    human = " ".join(text.get_content().split())
    assert "mailboat could not connect to mx.example.net[192.0.2.1]:25: Connection refused." in human
    assert ("mailboat could not deliver it to mx.example.net: lost connection with mx.example.net[192.0.2.1]:25 "
            "while awaiting reply to DATA.") in human
    assert "said" not in human
    _, first, second = status.get_payload()
    assert first["Remote-MTA"] is None
    assert first["Diagnostic-Code"] == "X-mailboat; connect to mx.example.net[192.0.2.1]:25: Connection refused"
    assert second["Remote-MTA"] == "dns; mx.example.net" and second["Diagnostic-Code"].startswith("X-mailboat; lost")


def test_postmaster_copy_is_addressed_to_the_postmaster_and_says_why():
    bounce = DeliveryReport("mx.example.com", "0AbCdEfGhIjKlM", "", T0, (FAILED,), to="postmaster@example.com",
                            why="the message has no return address")
    msg = parse(build_dsn(bounce, ORIGINAL, message_id="<d@mx.example.com>", at=T0 + 6))
    assert msg["To"] == "postmaster@example.com"
    human = " ".join(msg.get_payload()[0].get_content().split())
    assert "Postmaster copy: this report is for the null sender <>, who cannot receive it (the message has no " \
           "return address)." in human
