"""The open-relay battery (security.md §4) against a real `mailboat serve` over SMTP.

Server `mx.test.example` on 127.0.0.1, local domains example.com and mx.test.example, victim
domain example.net. Loopback is NOT trusted, so every probe from here is an unauthenticated
outsider: each RCPT must be refused (554/550 5.7.1 relay denied, 501 syntax, 550 5.1.1 unknown
local user), never 250, and at the end nothing may have been queued for a non-local domain.
Positive controls show the refusals are not just a broken server: local recipients get 250,
an authenticated submission client and a client on a configured trusted network may relay
plain external addresses, and even they cannot use the routing tricks (% ! quoted @).
"""

from __future__ import annotations

import json
import re
import smtplib

import pytest

from security_support import Raw, queue_rows, queued_events, start_server

LOCAL_DOMAINS = {"example.com", "mx.test.example"}
ME, IP = "mx.test.example", "127.0.0.1"

# (probe id, MAIL FROM path, RCPT TO path). Numbers follow security.md §4.
BATTERY = [
    # A. nmap smtp-open-relay.nse / Metasploit smtp_relay (relaytest -> bob, domain -> example.net)
    ("A1-null-sender", "<>", "<bob@example.net>"),
    ("A2-external-sender", "<antispam@example.net>", "<bob@example.net>"),
    ("A3-sender-at-our-host", f"<antispam@{ME}>", "<bob@example.net>"),
    ("A4-sender-at-our-literal", f"<antispam@[{IP}]>", "<bob@example.net>"),
    ("A4b-rcpt-at-our-literal", f"<antispam@[{IP}]>", f"<bob@[{IP}]>"),
    ("A5-percent-at-literal", f"<antispam@[{IP}]>", f"<bob%example.net@[{IP}]>"),
    ("A6-percent-at-our-host", f"<antispam@[{IP}]>", f"<bob%example.net@{ME}>"),
    ("A7-quoted-at-only", f"<antispam@[{IP}]>", '<"bob@example.net">'),
    ("A8-quoted-percent-only", f"<antispam@[{IP}]>", '<"bob%example.net">'),
    ("A9-double-at-literal", f"<antispam@[{IP}]>", f"<bob@example.net@[{IP}]>"),
    ("A10-quoted-at-literal", f"<antispam@[{IP}]>", f'<"bob@example.net"@[{IP}]>'),
    ("A11-double-at-our-host", f"<antispam@[{IP}]>", f"<bob@example.net@{ME}>"),
    ("A12-source-route-literal", f"<antispam@[{IP}]>", f"<@[{IP}]:bob@example.net>"),
    ("A13-source-route-our-host", f"<antispam@[{IP}]>", f"<@{ME}:bob@example.net>"),
    ("A14-bang-only", f"<antispam@[{IP}]>", "<example.net!bob>"),
    ("A15-bang-at-literal", f"<antispam@[{IP}]>", f"<example.net!bob@[{IP}]>"),
    ("A16-bang-at-our-host", f"<antispam@[{IP}]>", f"<example.net!bob@{ME}>"),
    # B. sender spoofing: the sender never makes an external recipient acceptable
    ("B17-sender-is-victim", "<bob@example.net>", "<bob@example.net>"),
    ("B18-sender-is-our-postmaster", "<postmaster@example.com>", "<bob@example.net>"),
    ("B18b-sender-is-our-user", "<alice@example.com>", "<bob@example.net>"),
    ("B19-sender-localhost", "<spamtest@localhost>", "<bob@example.net>"),
    ("B20-sender-unqualified", "<spamtest>", "<bob@example.net>"),
    ("B21-sender-literal", f"<spamtest@[{IP}]>", "<bob@example.net>"),
    # C. routing hacks through a local domain (Postfix allow_untrusted_routing / resolve_dequoted_address)
    ("C23-percent-local", "<antispam@example.org>", "<bob%example.net@example.com>"),
    ("C24-quoted-at-local", "<antispam@example.org>", '<"bob@example.net"@example.com>'),
    ("C25-double-at-local", "<antispam@example.org>", "<bob@example.net@example.com>"),
    ("C26-source-route-local", "<antispam@example.org>", "<@example.com:bob@example.net>"),
    ("C27-multi-hop-route", "<antispam@example.org>", f"<@example.com,@{ME}:bob@example.net>"),
    ("C28-bang-at-local", "<antispam@example.org>", "<example.net!bob@example.com>"),
    ("C29-multi-bang", "<antispam@example.org>", "<example.com!example.net!bob>"),
    ("C30-double-percent", "<antispam@example.org>", "<bob%example.net%example.com@example.com>"),
    ("C31-quoted-percent-local", "<antispam@example.org>", '<"bob%example.net"@example.com>'),
    ("C32-escaped-at", "<antispam@example.org>", "<bob\\@example.net@example.com>"),
    ("C32b-quoted-escaped-at", "<antispam@example.org>", '<"bob\\@example.net"@example.com>'),
    ("C33-percent-no-at", "<antispam@example.org>", "<bob%example.net>"),
    ("C-percent-our-host-upper", "<antispam@example.org>", "<bob%EXAMPLE.NET@EXAMPLE.COM>"),
    ("C-bang-trailing-dot", "<antispam@example.org>", "<example.net!bob@example.com.>"),
    ("C-quoted-bang-local", "<antispam@example.org>", '<"example.net!bob"@example.com>'),
    # D. domain forms and literals
    ("D34-trailing-dot", "<antispam@example.org>", "<bob@example.net.>"),
    ("D35-upper-case", "<antispam@example.org>", "<bob@EXAMPLE.NET>"),
    ("D35b-mixed-case", "<antispam@example.org>", "<Bob@Example.Net>"),
    ("D36-foreign-v4-literal", "<antispam@example.org>", "<bob@[192.0.2.10]>"),
    ("D37-foreign-v6-literal", "<antispam@example.org>", "<bob@[IPv6:2001:db8::10]>"),
    ("D38-bare-ip", "<antispam@example.org>", f"<bob@{IP}>"),
    ("D38b-localhost", "<antispam@example.org>", "<bob@localhost>"),
    ("D38c-our-literal", "<antispam@example.org>", f"<bob@[{IP}]>"),
    ("D38d-our-v6-literal", "<antispam@example.org>", "<bob@[IPv6:::1]>"),
    ("D38e-local-user-at-our-literal", "<antispam@example.org>", f"<alice@[{IP}]>"),
    ("D39-bracketed-name", "<antispam@example.org>", "<bob@[example.net]>"),
    ("D40-port-in-domain", "<antispam@example.org>", "<bob@example.net:2525>"),
    ("D41-reversed-double-at", "<antispam@example.org>", "<bob@example.com@example.net>"),
    ("D42-no-brackets", "<antispam@example.org>", "bob@example.net"),
    ("D42b-unclosed", "<antispam@example.org>", "<bob@example.net"),
    ("D-general-literal", "<antispam@example.org>", "<bob@[x-tag:example.net]>"),
    ("D-subdomain-of-local", "<antispam@example.org>", "<bob@sub.example.com>"),
    ("D-local-as-suffix", "<antispam@example.org>", "<bob@example.com.example.net>"),
    ("D-lookalike-prefix", "<antispam@example.org>", "<bob@evilexample.com>"),
    ("D-postmaster-external", "<antispam@example.org>", "<postmaster@example.net>"),
]

# Forms that are plain external destinations once parsed: a trusted or authenticated client may
# relay these; everything else in BATTERY stays refused for everybody.
PLAIN_EXTERNAL = {"A1-null-sender", "A2-external-sender", "A3-sender-at-our-host", "A4-sender-at-our-literal",
                  "A13-source-route-our-host", "B17-sender-is-victim", "B18-sender-is-our-postmaster",
                  "B18b-sender-is-our-user", "B19-sender-localhost", "B21-sender-literal", "C26-source-route-local",
                  "C27-multi-hop-route", "D35-upper-case", "D35b-mixed-case", "D36-foreign-v4-literal",
                  "D37-foreign-v6-literal", "D38-bare-ip", "D38b-localhost", "D-subdomain-of-local",
                  "D-local-as-suffix", "D-lookalike-prefix", "D-postmaster-external",
                  # RCPT at an address literal: external for the router (our literal included)
                  "A4b-rcpt-at-our-literal", "D38c-our-literal", "D38d-our-v6-literal",
                  "D38e-local-user-at-our-literal"}
REFUSAL = re.compile(rb"^(?:554 5\.7\.1|550 5\.7\.1|454 4\.7\.1|501 5\.1\.[37]|501 5\.5\.4|550 5\.1\.1"
                     rb"|553 5\.[0-9]\.[0-9]"
                     rb"|550 5\.1\.2)")


@pytest.fixture(scope="module")
def untrusted(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("relay-untrusted"))
    yield server
    log = server.stop()
    assert "Traceback" not in log, log[-4000:]


@pytest.fixture(scope="module")
def trusted(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("relay-trusted"),
                          extra='[relay]\ntrusted_networks = ["127.0.0.0/8", "::1/128"]\n')
    yield server
    log = server.stop()
    assert "Traceback" not in log, log[-4000:]


def probe(port: int, sender: str, rcpt: str, helo: bytes = b"client.example.org") -> tuple[bytes, bytes]:
    """(MAIL reply, RCPT reply); the RCPT reply is b"" when MAIL was already refused."""
    with Raw(port) as raw:
        raw.hello(helo)
        mail = raw.command(b"MAIL FROM:" + sender.encode())
        if not mail.startswith(b"250"):
            return mail, b""
        rcpt_reply = raw.command(b"RCPT TO:" + rcpt.encode())
        assert raw.command(b"RSET").startswith(b"250"), "the session must stay usable after a refusal"
        raw.command(b"QUIT")
    return mail, rcpt_reply


def assert_refused(mail: bytes, rcpt: bytes, what: str) -> None:
    if not rcpt:  # MAIL refused: nothing can be relayed in this transaction
        assert REFUSAL.match(mail) or mail[:1] in (b"4", b"5"), f"{what}: MAIL {mail!r}"
        return
    assert not rcpt.startswith(b"2"), f"{what}: RELAYED: {rcpt!r}"
    assert REFUSAL.match(rcpt), f"{what}: unexpected refusal {rcpt!r}"


@pytest.mark.parametrize("name, sender, rcpt", BATTERY, ids=[b[0] for b in BATTERY])
def test_untrusted_client_cannot_relay(untrusted, name, sender, rcpt):
    mail, rcpt_reply = probe(untrusted.ports["smtp"], sender, rcpt)
    assert_refused(mail, rcpt_reply, name)


@pytest.mark.parametrize("helo", [ME.encode(), b"localhost", b"[127.0.0.1]", b"example.com"])
def test_claiming_to_be_us_in_helo_changes_nothing(untrusted, helo):
    # B22: HELO with our own name / localhost / our literal, then a local sender to an outside rcpt.
    mail, rcpt = probe(untrusted.ports["smtp"], "<postmaster@example.com>", "<bob@example.net>", helo=helo)
    assert_refused(mail, rcpt, f"HELO {helo!r}")


@pytest.mark.parametrize("line", [
    b"XCLIENT ADDR=127.0.0.1 NAME=localhost",          # E44
    b"XFORWARD ADDR=127.0.0.1",                        # E45
    b"PROXY TCP4 10.0.0.1 127.0.0.1 1234 25",          # E46 on a listener without PROXY support
    b"PROXY TCP4 10.0.0.1 127.0.0.1 1234 25\r\nPROXY", # twice, one segment
])
def test_trust_spoofing_channels_are_refused(untrusted, line):
    with Raw(untrusted.ports["smtp"]) as raw:
        if line.startswith(b"PROXY"):  # a PROXY header comes first, before the greeting is read
            raw.send(line + b"\r\n")
            assert raw.reply().startswith(b"220 ")
            assert raw.reply()[:1] == b"5"
            if line.endswith(b"PROXY"):
                assert raw.reply()[:1] == b"5"
            assert raw.command(b"EHLO client.example.org").startswith(b"250")
        else:
            raw.hello()
            assert raw.command(line)[:1] == b"5", line
        assert raw.command(b"MAIL FROM:<antispam@example.org>").startswith(b"250")
        rcpt = raw.command(b"RCPT TO:<bob@example.net>")
        assert rcpt.startswith(b"554 5.7.1"), rcpt


def test_local_recipients_are_still_accepted(untrusted):
    # Positive control: the refusals above are policy, not a broken RCPT.
    for rcpt in ("<alice@example.com>", "<ALICE@EXAMPLE.COM>", "<alice@Example.Com>", "<postmaster@mx.test.example>",
                 "<Postmaster>", "<postmaster@example.com>", "<alice+tag@example.com>"):
        mail, reply = probe(untrusted.ports["smtp"], "<antispam@example.net>", rcpt)
        assert reply.startswith(b"250 "), (rcpt, reply)


def test_nothing_was_queued_for_a_remote_domain(untrusted):
    # Runs after the battery (module order): the queue and every "queued" journey event hold
    # local recipients only. One accepted message is sent first so the check is not vacuous.
    with smtplib.SMTP("127.0.0.1", untrusted.ports["smtp"], timeout=10) as client:
        client.sendmail("antispam@example.net", ["alice@example.com"], b"Subject: control\r\n\r\nx\r\n")
    untrusted.wait_messages("alice@example.com", 1)
    events = [json.loads(d) for d in queued_events(untrusted.data_dir)]
    assert events, "the control message left no queued event"
    recipients = [r for e in events for r in e["recipients"]]
    for row in queue_rows(untrusted.data_dir):
        recipients += [r[0] for r in json.loads(row["envelope"])["rcpt"]]
    for address in recipients:
        assert address.rpartition("@")[2].lower().rstrip(".") in LOCAL_DOMAINS, f"queued for {address}"
    log = untrusted.log
    assert "Relay access denied" in log or "relay denied" in log.lower()


# -- trusted network and authenticated submission (positive controls, §4 E47) ----------------

@pytest.mark.parametrize("name, sender, rcpt", [b for b in BATTERY if b[0] not in PLAIN_EXTERNAL],
                         ids=[b[0] for b in BATTERY if b[0] not in PLAIN_EXTERNAL])
def test_trusted_network_still_cannot_use_routing_tricks(trusted, name, sender, rcpt):
    mail, rcpt_reply = probe(trusted.ports["smtp"], sender, rcpt)
    assert_refused(mail, rcpt_reply, name)


@pytest.mark.parametrize("rcpt", ["<bob@example.net>", "<bob@EXAMPLE.NET>", "<bob@[192.0.2.10]>",
                                  "<@example.com:bob@example.net>"])
def test_trusted_network_may_relay_plain_external(trusted, rcpt):
    mail, reply = probe(trusted.ports["smtp"], "<antispam@example.org>", rcpt)
    assert mail.startswith(b"250") and reply.startswith(b"250 "), (rcpt, reply)


def test_authenticated_submission_may_relay_but_not_trick(untrusted):
    import ssl

    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", untrusted.ports["submission"], timeout=10) as client:
        client.starttls(context=context)
        client.ehlo()
        client.login("alice@example.com", "password123")
        client.mail("alice@example.com")
        assert client.rcpt("bob@example.net")[0] == 250
        for trick in ("bob%example.net@example.com", '"bob@example.net"@example.com', "example.net!bob@example.com"):
            code, text = client.rcpt(trick)
            assert (code, text[:5]) == (550, b"5.7.1"), (trick, code, text)
        client.rset()
    # The same RCPT without AUTH on port 25 is refused (the positive control's negative half).
    mail, reply = probe(untrusted.ports["smtp"], "<alice@example.com>", "<bob@example.net>")
    assert reply.startswith(b"554 5.7.1")
