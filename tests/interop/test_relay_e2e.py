"""Relay end to end with real processes: retries, bounces, expiry, and mixed replies.

mailboat A (tests/mbtest.start_server: alice/bob with AUTH on the submission port) routes
example.net by `[[route]]` to a destination on 127.0.0.5 (a second `mailboat serve`, B) or to a
private Postfix on 127.0.0.3 that relays to B. Its queue retries every second
(`retry = ["1s"]`); the runner looks at the store at least every 5 s, so "the next attempt" comes
within about 6 s.

- down, then up: the message is deferred with the connection error, then sent on the next
  attempt, and `mailboat journey ID --json` lists both attempts;
- permanent 550 from B (no such user there): the DSN arrives in alice's Maildir on A, a
  multipart/report whose Diagnostic-Code carries B's reply exactly as A received it;
- lifetime expiry (max_lifetime = 3s, destination down): the DSN says failed, 4.4.7;
- one transaction, two recipients, Postfix answers 450 to one and 250 to the other: the 250 one
  arrives once, the other stays deferred with Postfix's reply, and once Postfix accepts it (its
  access map emptied, `postfix reload`) it arrives too, alone: nothing is sent twice.
"""

from __future__ import annotations

import json
import re
import smtplib
import ssl
import time
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from mbtest import RunningServer, start_server
from relay_support import PostfixInstance, free_port, serve, wait_for

pytestmark = pytest.mark.interop

A_EXTRA = """\
[relay]
trusted_networks = ["127.0.0.0/8"]
[[route]]
domain = "example.net"
smarthost = "{smarthost}"
[queue]
retry = ["1s"]
max_lifetime = "{lifetime}"
delay_warning = ""
"""


@pytest.fixture
def servers():
    """Collects every server a test starts; stops them all and checks their logs afterwards."""
    started: list = []
    yield started
    logs = ""
    for server in reversed(started):
        if isinstance(server, RunningServer):
            logs += server.stop()
        else:
            server.stop()
    assert "Traceback" not in logs, logs[-5000:]


def start_a(tmp_path, servers: list, smarthost: str, lifetime: str = "1h") -> RunningServer:
    directory = tmp_path / "a"
    directory.mkdir()
    server = start_server(directory, extra=A_EXTRA.format(smarthost=smarthost, lifetime=lifetime))
    servers.append(server)
    return server


def start_b(tmp_path, servers: list, port: int, address: str = "127.0.0.5") -> RunningServer:
    server = serve(tmp_path / "b", hostname="mx-b.example.net", address=f"{address}:{port}",
                   local=("example.net",), users=("dave@example.net", "ok@example.net", "soft@example.net"),
                   config=(tmp_path / "b" / "mailboat.toml") if (tmp_path / "b").exists() else None)
    servers.append(server)
    return server


def submit(server: RunningServer, rcpts: list[str], subject: str, sender: str = "alice@example.com") -> str:
    """Submission with STARTTLS + AUTH as alice; returns A's queue id (from the reply to DATA)."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, ", ".join(rcpts), subject
    message["Message-ID"] = f"<{subject.replace(' ', '-')}@example.com>"
    message.set_content(f"{subject}\n")
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=30) as client:
        client.starttls(context=context)
        client.login(sender, "password123")
        client.mail(sender)
        for rcpt in rcpts:
            assert client.rcpt(rcpt)[0] == 250
        code, reply = client.data(message.as_bytes(policy=policy.SMTP))
    assert code == 250, reply
    return re.search(rb"queued as (\S+)", reply).group(1).decode()


def journey(server: RunningServer, queue_id: str) -> dict:
    done = server.cli("journey", queue_id, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def deliveries(server: RunningServer, queue_id: str) -> list[dict]:
    return [e["detail"] for e in journey(server, queue_id)["events"] if e["kind"] == "delivery"]


def dsn_parts(raw: bytes):
    """(the report, its human-readable part, per-message fields, [per-recipient fields])."""
    report = message_from_bytes(raw)
    assert report.get_content_type() == "multipart/report", report.get_content_type()
    assert report.get_param("report-type") == "delivery-status"
    human, status = report.get_payload()[0], report.get_payload()[1]
    assert status.get_content_type() == "message/delivery-status"
    per_message, *per_recipient = status.get_payload()
    return report, human, per_message, per_recipient


def test_destination_down_then_up_delivered_on_next_attempt(tmp_path, servers) -> None:
    port = free_port("127.0.0.5")
    a = start_a(tmp_path, servers, f"127.0.0.5:{port}")
    queue_id = submit(a, ["dave@example.net"], "down then up")
    first = wait_for(lambda: deliveries(a, queue_id), 15, "the first attempt")
    assert [d["status"] for d in first] == ["deferred"], first
    assert "next_attempt" in first[0]
    b = start_b(tmp_path, servers, port)
    try:
        (arrived,) = b.wait_messages("dave@example.net", 1, timeout=20)
    except AssertionError:
        raise AssertionError(a.stop()[-3000:]) from None
    assert b"Subject: down then up" in arrived
    final = wait_for(lambda: (j := journey(a, queue_id))["status"] == "delivered" and j, 10, "status delivered")
    attempts = [e for e in final["events"] if e["kind"] == "delivery"]
    # Every attempt is there: the refused connection(s) first, then the one that went through.
    assert [e["detail"]["status"] for e in attempts][-1] == "sent"
    assert all(e["detail"]["status"] == "deferred" for e in attempts[:-1]) and len(attempts) >= 2, attempts
    refused = attempts[0]["detail"]
    assert refused["reply"].startswith("4") and re.search(r"(?i)refused|connect", refused["reply"]), refused
    assert refused["to"] == "dave@example.net"
    sent = attempts[-1]["detail"]
    assert re.fullmatch(rf"127\.0\.0\.5\[127\.0\.0\.5\]:{port}", sent["relay"]), sent
    assert re.fullmatch(r"250 2\.0\.0 Ok: queued as \S+", sent["reply"]), sent
    assert attempts[-1]["offset_seconds"] - attempts[0]["offset_seconds"] >= 1.0  # retry = ["1s"]
    assert [e["kind"] for e in final["events"]][-1] == "finished"
    assert a.messages("alice@example.com") == []  # no bounce, no delay warning


def test_permanent_550_bounces_to_the_authenticated_sender(tmp_path, servers) -> None:
    port = free_port("127.0.0.5")
    b = start_b(tmp_path, servers, port)
    a = start_a(tmp_path, servers, f"127.0.0.5:{port}")
    queue_id = submit(a, ["nobody@example.net"], "to nobody")
    try:
        (raw,) = a.wait_messages("alice@example.com", 1, timeout=20)
    except AssertionError:
        raise AssertionError(a.stop()[-3000:] + b.stop()[-3000:]) from None
    (attempt,) = wait_for(lambda: deliveries(a, queue_id), 10, "the attempt in the journey")
    assert attempt["status"] == "bounced" and attempt["reply"].startswith("550 "), attempt
    report, human, per_message, (rcpt,) = dsn_parts(raw)
    assert raw.startswith(b"Return-Path: <>\r\n"), raw[:200]  # from the null sender
    assert report["To"] in ("alice@example.com", "<alice@example.com>")
    assert rcpt["Final-Recipient"] == "rfc822; nobody@example.net"
    assert rcpt["Action"] == "failed"
    assert rcpt["Status"].startswith("5.") and rcpt["Status"] == attempt["dsn"]
    # B's reply, exactly as A received it (the journey keeps the remote reply too).
    diagnostic = re.sub(r"\s+", " ", rcpt["Diagnostic-Code"])
    assert diagnostic == f"smtp; {attempt['reply']}", (diagnostic, attempt)
    assert "nobody@example.net" in diagnostic
    assert rcpt["Remote-MTA"].startswith("dns; 127.0.0.5"), rcpt["Remote-MTA"]
    assert per_message["Reporting-MTA"] == "dns; mx.test.example"
    text = human.get_payload(decode=True).decode()
    assert "nobody@example.net" in text
    assert b.messages("nobody@example.net") == []
    # One bounce only, and the bounce itself is not bounced or retried.
    time.sleep(1.5)
    assert len(a.messages("alice@example.com")) == 1


def test_lifetime_expiry_bounces(tmp_path, servers) -> None:
    port = free_port("127.0.0.5")  # nothing ever listens there
    a = start_a(tmp_path, servers, f"127.0.0.5:{port}", lifetime="3s")
    queue_id = submit(a, ["dave@example.net"], "never arrives")
    try:
        (raw,) = a.wait_messages("alice@example.com", 1, timeout=20)
    except AssertionError:
        raise AssertionError(a.stop()[-3000:]) from None
    attempts = wait_for(lambda: (d := deliveries(a, queue_id)) and d[-1]["status"] != "deferred" and d,
                        10, "the final attempt in the journey")
    assert attempts[-1]["status"] == "expired" and all(d["status"] == "deferred" for d in attempts[:-1]), attempts
    _, _, _, (rcpt,) = dsn_parts(raw)
    assert rcpt["Final-Recipient"] == "rfc822; dave@example.net"
    assert rcpt["Action"] == "failed"
    assert rcpt["Status"] == "4.4.7", rcpt["Status"]
    assert re.search(r"(?i)refused|connect", rcpt["Diagnostic-Code"] or ""), rcpt["Diagnostic-Code"]
    final = journey(a, queue_id)
    assert final["status"] == "failed", final["status"]
    assert re.search(rf"mailboat/smtp\[\d+\]: {queue_id}: to=<dave@example\.net>, .*dsn=4\.4\.7, status=bounced "
                     r"\(delivery time expired: ", a.log), a.log[-3000:]
    assert f"{queue_id}: from=<alice@example.com>, status=expired, returned to sender" in a.log, a.log[-3000:]


def test_4xx_to_one_recipient_2xx_to_the_other(tmp_path, servers) -> None:
    pf_port, b_port = free_port("127.0.0.3"), free_port("127.0.0.5")
    b = start_b(tmp_path, servers, b_port)
    postfix = PostfixInstance("127.0.0.3", pf_port, f"[127.0.0.5]:{b_port}", settings={
        "smtpd_recipient_restrictions": "check_recipient_access texthash:$config_directory/access, "
                                        "permit_mynetworks, reject"})
    servers.append(postfix)
    access = postfix.etc / "access"
    access.write_text("soft@example.net 450 4.2.1 Mailbox busy, try again later\n")
    postfix.start()
    a = start_a(tmp_path, servers, f"127.0.0.3:{pf_port}")
    queue_id = submit(a, ["ok@example.net", "soft@example.net"], "mixed replies")
    try:
        b.wait_messages("ok@example.net", 1, timeout=20)
        # Two attempts for soft@ (the first transaction, then a retry of soft@ alone).
        wait_for(lambda: sum(d["to"] == "soft@example.net" for d in deliveries(a, queue_id)) >= 2, 20,
                 "a second attempt for soft@example.net")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n" + a.stop()[-3000:] + postfix.log()[-3000:]) from None
    attempts = deliveries(a, queue_id)
    ok = [d for d in attempts if d["to"] == "ok@example.net"]
    soft = [d for d in attempts if d["to"] == "soft@example.net"]
    assert [d["status"] for d in ok] == ["sent"], attempts
    assert all(d["status"] == "deferred" and d["reply"] == "450 4.2.1 <soft@example.net>: Recipient address "
               "rejected: Mailbox busy, try again later" for d in soft), soft
    assert journey(a, queue_id)["status"] not in ("delivered", "failed")
    shown = a.cli("queue", "show", queue_id)
    assert "soft@example.net" in shown.stdout and "Mailbox busy" in shown.stdout, shown.stdout

    # Accept it now. A restart rather than `postfix reload`: A keeps its session to Postfix open
    # between retries (they come every few seconds, within its idle limit), and that smtpd keeps
    # the access map it started with. So A must also notice its cached session was closed.
    access.write_text("")
    postfix.stop_master()
    postfix.start()
    try:
        b.wait_messages("soft@example.net", 1, timeout=20)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n" + a.stop()[-3000:] + postfix.log()[-3000:]) from None
    wait_for(lambda: journey(a, queue_id)["status"] == "delivered", 10, "status delivered")
    soft = [d for d in deliveries(a, queue_id) if d["to"] == "soft@example.net"]
    assert soft[-1]["status"] == "sent"
    print("attempts for soft@:", [(d["status"], d["reply"][:60]) for d in soft])
    time.sleep(1.5)  # nothing more arrives: ok@ was not sent again with the retry
    assert len(b.messages("ok@example.net")) == 1 and len(b.messages("soft@example.net")) == 1
    # Postfix saw ok@ in exactly one transaction.
    assert len(re.findall(r"to=<ok@example\.net>, relay=127\.0\.0\.5.*status=sent", postfix.log())) == 1
    assert postfix.queue_files() == 0
