"""The inbound path end to end: real `mailboat serve`, real clients (smtplib and raw sockets)."""

from __future__ import annotations

import smtplib
import time

import pytest

from mbtest import Raw, start_server
from mbtest import insecure_context as insecure
from ourheaders import our_received, received_headers

MESSAGE = b"From: Sender <sender@example.org>\r\nTo: alice@example.com\r\nSubject: hello\r\n\r\nBody line.\r\n"


def smtp(server, kind="smtp") -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", server.ports[kind], local_hostname="client.example.org", timeout=10)
    return client


def test_plain_smtplib_message_arrives_once_with_one_received(server):
    with smtp(server) as client:
        client.ehlo()
        client.mail("sender@example.org")
        client.rcpt("alice@example.com")
        code, text = client.data(MESSAGE)
    assert code == 250 and text.startswith(b"2.0.0 Ok: queued as ")
    queue_id = text.rsplit(b" ", 1)[1].decode()
    [delivered] = server.wait_messages("alice@example.com", 1)
    assert delivered.startswith(b"Return-Path: <sender@example.org>\r\nDelivered-To: alice@example.com\r\n")
    assert len(received_headers(delivered)) == 1
    assert delivered.endswith(MESSAGE)
    hop = our_received(delivered)
    assert hop == {**hop, "helo": "client.example.org", "rdns": "localhost", "ip": "127.0.0.1",
                   "by": "mx.test.example", "proto": "ESMTP", "id": queue_id, "tlsver": None,
                   "for": "alice@example.com"}
    time.sleep(0.3)
    assert len(server.messages("alice@example.com")) == 1


def test_large_local_message_is_in_the_mailbox_when_the_250_comes(server):
    """A large message for local mailboxes is delivered before it is queued (runner.deliver_first):
    both copies are in new/ the moment the client has its 250, and the queue never holds it."""
    big = MESSAGE + b"x" * 998 + b"\r\n" + (b"y" * 78 + b"\r\n") * 1500  # ~120 KB
    with smtp(server) as client:
        client.ehlo()
        client.mail("sender@example.org")
        client.rcpt("alice@example.com")
        client.rcpt("bob@example.com")
        code, text = client.data(big)
        assert code == 250, text
        assert [m.endswith(big) for m in server.messages("alice@example.com") + server.messages("bob@example.com")] \
            == [True, True]
    queue_id = text.rsplit(b" ", 1)[1].decode()
    assert server.cli("queue", "list").stdout.strip() in ("", "Mail queue is empty")
    log = server.wait_log(f"{queue_id}: removed")
    assert log.count(f"{queue_id}: to=<") == 2 and f"{queue_id}: from=<sender@example.org>" in log


def test_starttls_records_version_and_cipher(server):
    with smtp(server) as client:
        client.starttls(context=insecure())
        client.sendmail("sender@example.org", ["bob@example.com"], MESSAGE)
    [delivered] = server.wait_messages("bob@example.com", 1)
    hop = our_received(delivered)
    assert hop["proto"] == "ESMTPS"
    assert hop["tlsver"] in ("TLSv1.2", "TLSv1.3") and hop["cipher"]


def test_smtputf8_with_type(server):
    message = "From: Jürgen <jürgen@exämple.org>\r\nSubject: grüße\r\n\r\nü\r\n".encode()
    with smtp(server) as client:
        client.starttls(context=insecure())
        client.ehlo()
        assert client.has_extn("smtputf8")
        client.sendmail("jürgen@exämple.org", ["alice@example.com"], message,
                        mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    [delivered] = server.wait_messages("alice@example.com", 1)
    assert our_received(delivered)["proto"] == "UTF8SMTPS"
    assert "Return-Path: <jürgen@exämple.org>".encode() in delivered
    assert delivered.endswith(message)


def test_bdat_chunks(server):
    raw = Raw(server.ports["smtp"])
    try:
        assert raw.reply().startswith(b"220 ")
        assert b"CHUNKING" in raw.command(b"EHLO client.example.org")
        assert raw.command(b"MAIL FROM:<sender@example.org>").startswith(b"250 ")
        assert raw.command(b"RCPT TO:<alice@example.com>").startswith(b"250 ")
        first, second = MESSAGE[:30], MESSAGE[30:]
        raw.send(b"BDAT %d\r\n" % len(first) + first)
        assert raw.reply().startswith(b"250 ")
        raw.send(b"BDAT %d LAST\r\n" % len(second) + second)
        assert raw.reply().startswith(b"250 2.0.0 Ok: queued as ")
        assert raw.command(b"QUIT").startswith(b"221 ")
    finally:
        raw.close()
    [delivered] = server.wait_messages("alice@example.com", 1)
    assert delivered.endswith(MESSAGE)


def test_alias_with_two_recipients_has_no_for_clause(server):
    with smtp(server) as client:
        client.sendmail("sender@example.org", ["sales@example.com"], MESSAGE)
    for user in ("alice@example.com", "bob@example.com"):
        [delivered] = server.wait_messages(user, 1)
        assert our_received(delivered)["for"] == "sales@example.com"  # one envelope recipient
    with smtp(server) as client:
        client.sendmail("sender@example.org", ["alice@example.com", "bob@example.com"], MESSAGE)
    # Maildir names do not sort by arrival: tell the two messages apart by their `for` clause.
    fors = sorted(str(our_received(m)["for"]) for m in server.wait_messages("bob@example.com", 2))
    assert fors == ["None", "sales@example.com"]


@pytest.mark.parametrize("rcpt, code, status", [
    ("victim@example.net", 554, b"5.7.1"),
    ("nobody@example.com", 550, b"5.1.1"),
    ("user%example.net@example.com", 550, b"5.7.1"),
    ("user@[192.0.2.1]", 554, b"5.7.1"),
])
def test_refused_recipients(server, rcpt, code, status):
    with smtp(server) as client:
        client.ehlo()
        client.mail("sender@example.org")
        got_code, text = client.rcpt(rcpt)
    assert (got_code, text[:5]) == (code, status)


def test_source_route_is_stripped_to_the_final_hop(server):
    raw = Raw(server.ports["smtp"])  # smtplib cannot send a source route
    try:
        raw.reply()
        raw.command(b"EHLO client.example.org")
        raw.command(b"MAIL FROM:<sender@example.org>")
        assert raw.command(b"RCPT TO:<@mx.test.example,@example.com:victim@example.net>").startswith(b"554 5.7.1")
        assert raw.command(b"RCPT TO:<@example.net:alice@example.com>").startswith(b"250 ")
    finally:
        raw.close()


def test_hop_limit(server):
    looped = b"".join(b"Received: from a by b; Mon, 23 Nov 2026 22:40:22 +0000\r\n" for _ in range(51)) + MESSAGE
    with smtp(server) as client:
        client.ehlo()
        client.mail("sender@example.org")
        client.rcpt("alice@example.com")
        code, text = client.data(looped)
    assert (code, text[:5]) == (554, b"5.4.6")
    with smtp(server) as client:  # 50 is fine
        client.sendmail("sender@example.org", ["alice@example.com"], looped.split(b"\r\n", 1)[1])
    server.wait_messages("alice@example.com", 1)


def test_submission_requires_tls_then_auth(server):
    with smtp(server, "submission") as client:
        client.ehlo()
        assert client.has_extn("starttls")
        code, text = client.mail("alice@example.com")
        assert (code, text[:5]) == (530, b"5.7.0")
        client.rset()
        client.starttls(context=insecure())
        client.ehlo()
        code, text = client.mail("alice@example.com")
        assert (code, text) == (530, b"5.7.0 Authentication required")


def test_submissions_is_implicit_tls(server):
    with smtplib.SMTP_SSL("127.0.0.1", server.ports["submissions"], context=insecure(), timeout=10) as client:
        code, _ = client.ehlo("client.example.org")
        assert code == 250 and not client.has_extn("starttls")
        assert client.sock.version() in ("TLSv1.2", "TLSv1.3")


def test_lmtp_one_reply_per_recipient(server):
    raw = Raw(server.ports["lmtp"])
    try:
        raw.reply()
        assert raw.command(b"LHLO client.example.org").startswith(b"250")
        raw.command(b"MAIL FROM:<sender@example.org>")
        assert raw.command(b"RCPT TO:<alice@example.com>").startswith(b"250 ")
        assert raw.command(b"RCPT TO:<nobody@example.com>").startswith(b"550 5.1.1")
        assert raw.command(b"RCPT TO:<bob@example.com>").startswith(b"250 ")
        assert raw.command(b"DATA").startswith(b"354 ")
        raw.send(MESSAGE + b".\r\n")
        assert raw.reply().startswith(b"250 2.0.0")
        assert raw.reply().startswith(b"250 2.0.0")
        assert raw.command(b"QUIT").startswith(b"221")
    finally:
        raw.close()
    assert our_received(server.wait_messages("alice@example.com", 1)[0])["proto"] == "LMTP"


def test_starttls_injection_is_discarded(server):
    raw = Raw(server.ports["smtp"])
    raw.reply()
    raw.command(b"EHLO client.example.org")
    raw.send(b"STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n")
    assert raw.reply().startswith(b"220 ")
    tls = insecure().wrap_socket(raw.sock, server_hostname="mx.test.example")
    raw.sock, raw.buffer = tls, b""
    assert raw.command(b"EHLO client.example.org").startswith(b"250")
    # Had the injected MAIL run, this would be "503 nested MAIL" or RCPT would be accepted.
    assert raw.command(b"RCPT TO:<alice@example.com>").startswith(b"503 5.5.1")
    assert raw.command(b"MAIL FROM:<real@example.org>").startswith(b"250 ")
    raw.close()


def test_disconnect_mid_data_leaves_nothing(server):
    raw = Raw(server.ports["smtp"])
    raw.reply()
    raw.command(b"EHLO client.example.org")
    raw.command(b"MAIL FROM:<sender@example.org>")
    raw.command(b"RCPT TO:<alice@example.com>")
    raw.command(b"DATA")
    raw.send(MESSAGE)  # no final dot
    raw.close()
    raw = Raw(server.ports["smtp"])
    raw.reply()
    raw.command(b"EHLO client.example.org")
    raw.command(b"MAIL FROM:<sender@example.org>")
    raw.command(b"RCPT TO:<alice@example.com>")
    raw.send(b"BDAT 1000 LAST\r\n" + MESSAGE)  # fewer octets than announced
    raw.close()
    with smtp(server) as client:  # the server still serves, and only this message arrives
        client.sendmail("sender@example.org", ["bob@example.com"], MESSAGE)
    server.wait_messages("bob@example.com", 1)
    time.sleep(0.5)
    assert server.messages("alice@example.com") == []
    listing = server.cli("queue", "list")  # nothing half-received was queued either
    assert (listing.returncode, listing.stdout.strip()) == (0, "Mail queue is empty"), listing


@pytest.mark.parametrize("ending", [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r\n\x00.\r\n", b"\r.\r"])
def test_smuggling_never_yields_a_second_message(server, ending):
    raw = Raw(server.ports["smtp"])
    raw.reply()
    raw.command(b"EHLO client.example.org")
    raw.command(b"MAIL FROM:<sender@example.org>")
    raw.command(b"RCPT TO:<alice@example.com>")
    raw.command(b"DATA")
    raw.send(b"Subject: first\r\n\r\nbody" + ending + b"MAIL FROM:<smuggled@example.org>\r\n"
             b"RCPT TO:<bob@example.com>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n")
    reply = raw.reply()
    assert reply.startswith(b"550 5.5.2") or reply.startswith(b"550 5.6.0"), reply
    assert raw.command(b"NOOP").startswith(b"250")  # still in sync: nothing left over as commands
    raw.close()
    time.sleep(0.5)
    assert server.messages("bob@example.com") == [] and server.messages("alice@example.com") == []


def test_size_limits(tmp_path):
    server = start_server(tmp_path, extra="[limits]\nmessage_size = 100000\n")
    try:
        with smtp(server) as client:
            client.ehlo()
            assert client.esmtp_features["size"] == "100000"
            code, text = client.mail("sender@example.org", ["SIZE=200000"])
            assert (code, text[:5]) == (552, b"5.3.4")
            client.rset()
            client.mail("sender@example.org")
            client.rcpt("alice@example.com")
            code, text = client.data(MESSAGE + (b"x" * 900 + b"\r\n") * 170)
            assert (code, text[:5]) == (552, b"5.3.4")
            code, _ = client.noop()
            assert code == 250
    finally:
        server.stop()
    assert server.messages("alice@example.com") == []


def login(client: smtplib.SMTP, user: str = "alice@example.com", password: str = "password123") -> None:
    client.starttls(context=insecure())
    client.ehlo()
    client.login(user, password)


def test_submission_auth_plain_then_relay_as_self(server):
    with smtp(server, "submission") as client:
        client.ehlo()
        assert "auth" not in client.esmtp_features  # never offered before TLS
        code, text = client.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHBhc3N3b3JkMTIz")
        assert (code, text[:6]) == (538, b"5.7.11")
        client.starttls(context=insecure())
        client.ehlo()
        assert set(client.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}
        client.login("alice@example.com", "password123")
        # An authenticated user may relay (the message waits in the queue until relay lands).
        client.mail("alice@example.com")
        assert client.rcpt("bob@example.net")[0] == 250
        client.rset()
        code, text = client.mail("bob@example.com")
        assert (code, text[:5]) == (553, b"5.7.1")
        client.rset()
        client.mail("alice+news@example.com")
        client.rcpt("bob@example.com")
        code, text = client.data(b"From: Mallory <bob@example.com>\r\nSubject: forged\r\n\r\nx\r\n")
        assert (code, text[:5]) == (553, b"5.7.1")
        client.sendmail("alice@example.com", ["bob@example.com"],
                        b"From: alice@example.com\r\nSubject: hi\r\n\r\nx\r\n")
    [delivered] = server.wait_messages("bob@example.com", 1)
    assert our_received(delivered)["proto"] == "ESMTPSA"


def test_submissions_auth_login(server):
    with smtplib.SMTP_SSL("127.0.0.1", server.ports["submissions"], context=insecure(), timeout=10) as client:
        client.ehlo("client.example.org")
        client.user, client.password = "bob@example.com", "password123"
        code, _ = client.auth("LOGIN", client.auth_login, initial_response_ok=False)
        assert code == 235
        client.sendmail("bob@example.com", ["alice@example.com"],
                        MESSAGE.replace(b"sender@example.org", b"bob@example.com"))
    [delivered] = server.wait_messages("alice@example.com", 1)
    assert our_received(delivered)["proto"] == "ESMTPSA"


def test_failed_logins_close_the_session(server):
    import base64
    wrong = base64.b64encode(b"\0alice@example.com\0wrong-password").decode()
    with smtp(server, "submission") as client:
        client.starttls(context=insecure())
        client.ehlo()
        assert client.docmd("AUTH", f"PLAIN {wrong}")[0] == 535
        assert client.docmd("AUTH", f"PLAIN {wrong}")[0] == 535
        assert client.docmd("AUTH", f"PLAIN {wrong}")[0] == 535
        assert client.noop()[0] == 421  # "421 4.7.0 Too many failed authentications", then closed
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    with smtp(server, "submission") as client:  # the right password still works from a new session
        login(client)


def test_connection_limits_and_timeouts(tmp_path):
    server = start_server(tmp_path, extra='[limits]\nconnections_per_ip = 2\n[timeouts]\ncommand = "1s"\n')
    try:
        first, second = Raw(server.ports["smtp"]), Raw(server.ports["smtp"])
        assert first.reply().startswith(b"220 ") and second.reply().startswith(b"220 ")
        third = Raw(server.ports["smtp"])
        assert third.reply().startswith(b"421 4.7.0")
        third.close()
        # An idle client is dropped after [timeouts].command with 421 4.4.2 (RFC 5321 §4.5.3.2).
        assert first.reply().startswith(b"421 4.4.2")
        second.close()
        first.close()
        time.sleep(0.2)
        again = Raw(server.ports["smtp"])  # the slots were given back
        assert again.reply().startswith(b"220 ")
        again.close()
    finally:
        log = server.stop()
    assert "timeout after command" in log and "Too many connections from 127.0.0.1" in log


def test_stopping_the_server_closes_idle_sessions_with_421(tmp_path):
    server = start_server(tmp_path)
    raw = Raw(server.ports["smtp"])
    try:
        raw.reply()
        raw.command(b"EHLO client.example.org")
        started = time.monotonic()
        server.proc.terminate()
        assert raw.reply().startswith(b"421 4.3.2")
        server.proc.wait(10)
        assert time.monotonic() - started < 4  # not the whole grace period
    finally:
        raw.close()
        server.stop()
