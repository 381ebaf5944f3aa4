"""Abuse of the SMTP port that is not smuggling or relay, against a real `mailboat serve`.

Cross-protocol requests (an HTTP POST whose body carries SMTP), recipient harvesting, the bare
`<Postmaster>`, a line that never ends, junk commands, and TLS 1.2 CBC suites. The server here
has a hostname that is not one of its local domains (as on most MX hosts), and a tiny
`limits.error_sleep`: the tests count replies and log lines, never time.
"""

from __future__ import annotations

import socket
import ssl
import subprocess

import pytest

from mbtest import MAILBOAT, NO_DNS, insecure_context, one_process, start_config
from security_support import MESSAGE, Raw, need_tool, wait_until

BODY = (b"EHLO attacker.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n"
        b"Subject: cross-protocol\r\n\r\nsmuggled through HTTP\r\n.\r\nQUIT\r\n")
CONFIG = """\
hostname = "mx.test.example"
data_dir = "{data_dir}"
[[listener]]
kind = "smtp"
address = "127.0.0.1:0"
[[listener]]
kind = "submissions"
address = "127.0.0.1:0"
[domains]
local = ["example.com"]
[limits]
error_sleep = "0.01s"
""" + NO_DNS


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("abuse")
    config = base / "mailboat.toml"
    config.write_text(one_process(CONFIG.format(data_dir=base / "data")))
    subprocess.run([*MAILBOAT, "user", "add", "bob@example.com", "--password-stdin", "--config", str(config)],
                   input="password123\n", text=True, check=True, capture_output=True)
    running = start_config(config, base / "data")
    yield running
    log = running.stop()
    assert "Traceback" not in log, log[-4000:]


def delivered(server, address: str = "bob@example.com") -> list[bytes]:
    return server.messages(address)


# -- cross-protocol: HTTP to the SMTP port ---------------------------------------------------------

def test_http_post_with_smtp_in_its_body_delivers_nothing(server):
    request = (b"POST /submit HTTP/1.1\r\nHost: 127.0.0.1:25\r\nUser-Agent: Mozilla/5.0\r\n"
               b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(BODY)) + BODY
    with Raw(server.ports["smtp"]) as raw:
        assert raw.reply().startswith(b"220 ")
        raw.send(request)  # all at once, as a browser form POST arrives
        assert raw.reply() == b"521 5.7.0 Error: non-SMTP command, closing connection"
        assert raw.closed_by_server()
        assert raw.buffer == b""  # nothing of the body was answered
    server.wait_log("non-SMTP command from localhost[127.0.0.1]: POST /submit HTTP/1.1")
    # A control message proves delivery works, so the count below is not vacuous.
    with Raw(server.ports["smtp"]) as raw:
        raw.hello()
        for line in (b"MAIL FROM:<a@example.org>", b"RCPT TO:<bob@example.com>"):
            assert raw.command(line).startswith(b"250 ")
        assert raw.command(b"DATA").startswith(b"354")
        assert raw.command(MESSAGE.replace(b"hello", b"control") + b".").startswith(b"250 ")
    assert wait_until(lambda: any(b"Subject: control" in m for m in delivered(server)))
    assert not any(b"cross-protocol" in m for m in delivered(server))


def test_curl_data_binary_gets_the_close(server):
    curl = need_tool("curl")
    done = subprocess.run([curl, "-sS", "--max-time", "10", "--data-binary", "@-",
                           f"http://127.0.0.1:{server.ports['smtp']}/"], input=BODY.replace(b"cross", b"curl"),
                          capture_output=True, timeout=30)
    assert done.returncode != 0  # curl never gets an HTTP answer
    server.wait_log("non-SMTP command from localhost[127.0.0.1]: POST / HTTP/1.1")
    assert not any(b"curl-protocol" in m for m in delivered(server))


def test_header_line_as_command_closes(server):
    with Raw(server.ports["smtp"]) as raw:
        raw.hello()
        raw.send(b"Host: mx.test.example\r\nMAIL FROM:<a@example.org>\r\n")
        assert raw.reply().startswith(b"521 5.7.0")
        assert raw.closed_by_server() and raw.buffer == b""


# -- recipient harvesting ----------------------------------------------------------------------------

def test_unknown_recipients_are_slowed_then_disconnected(server):
    replies = []
    with Raw(server.ports["smtp"]) as raw:
        raw.hello()
        assert raw.command(b"MAIL FROM:<probe@example.org>").startswith(b"250")
        for n in range(30):
            replies.append(raw.command(b"RCPT TO:<guess%d@example.com>" % n)[:9])
            if raw.buffer:  # the 421 came with this refusal, in the same write
                break
        assert raw.reply() == b"421 4.7.0 Error: too many errors, closing connection"
        assert raw.closed_by_server()
    # limits.errors = 20: twenty refusals, the 421 right after the last one, then the close.
    assert replies == [b"550 5.1.1"] * 20
    log = server.wait_log("too many errors from localhost[127.0.0.1]")
    # past limits.soft_errors = 10 the replies were slowed (logged once per session)
    assert log.count("localhost[127.0.0.1]: 11 errors, slowing down error replies") >= 1


# -- RFC 5321 §4.1.1.3: the bare <Postmaster> ----------------------------------------------------------

@pytest.mark.parametrize("path", [b"<Postmaster>", b"<postmaster>", b"<POSTMASTER>"])
def test_bare_postmaster_is_accepted_and_delivered(server, path):
    tag = path.strip(b"<>")
    with Raw(server.ports["smtp"]) as raw:
        raw.hello()
        assert raw.command(b"MAIL FROM:<someone@example.org>").startswith(b"250 ")
        assert raw.command(b"RCPT TO:" + path).startswith(b"250 2.1.5")
        assert raw.command(b"DATA").startswith(b"354")
        assert raw.command(MESSAGE.replace(b"hello", b"to " + tag) + b".").startswith(b"250 ")
    assert wait_until(lambda: any(b"Subject: to " + tag in m for m in delivered(server, "postmaster@example.com")))


# -- a line that never ends -----------------------------------------------------------------------------

def test_endless_line_is_refused_and_closed(server):
    with Raw(server.ports["smtp"], timeout=20) as raw:
        raw.hello()
        raw.send(b"NOOP " + b"x" * 8192)  # no CRLF: 4 KiB past the 512 limit is enough
        assert raw.reply() == b"500 5.5.2 Error: line too long"
        assert raw.closed_by_server()
    server.wait_log("rejected NOOP xxxx")


# -- junk commands -----------------------------------------------------------------------------------

def test_101_noops_get_421(server):
    with Raw(server.ports["smtp"]) as raw:
        raw.hello()
        raw.send(b"NOOP\r\n" * 101)
        answers = [raw.reply() for _ in range(101)]
        assert answers[:100] == [b"250 2.0.0 Ok"] * 100
        assert answers[100].startswith(b"421 4.7.0")
        assert raw.closed_by_server()


# -- TLS 1.2: ECDHE + AEAD only ----------------------------------------------------------------------

def tls12_client(ciphers: str) -> ssl.SSLContext:
    context = insecure_context()
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(ciphers)
    return context


def handshake(port: int, context: ssl.SSLContext) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname="mx.test.example") as tls:
            return tls.cipher()[0]


# ECDHE-ECDSA suites because the bootstrap certificate is ECDSA (an RSA-key-exchange suite such
# as AES128-SHA256 could never be agreed with it). These two CBC suites are in OpenSSL's default
# list (the SHA-1 ones are not), so only the server's own list refuses them.
@pytest.mark.parametrize("cipher", ["ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA384"])
def test_tls12_cbc_handshake_is_refused(server, cipher):
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        handshake(server.ports["submissions"], tls12_client(cipher))


@pytest.mark.parametrize("cipher", ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                                    "ECDHE-ECDSA-CHACHA20-POLY1305"])
def test_tls12_ecdhe_aead_handshake_succeeds(server, cipher):
    assert handshake(server.ports["submissions"], tls12_client(cipher)) == cipher


def test_openssl_s_client_cbc_over_starttls_fails(server):
    openssl = need_tool("openssl")

    def s_client(cipher: str) -> subprocess.CompletedProcess:
        return subprocess.run([openssl, "s_client", "-connect", f"127.0.0.1:{server.ports['smtp']}",
                               "-starttls", "smtp",
                               "-tls1_2", "-cipher", cipher], input=b"QUIT\r\n", capture_output=True, timeout=30)

    refused = s_client("ECDHE-ECDSA-AES128-SHA256:AES128-SHA256")
    assert refused.returncode != 0 and b"no peer certificate available" in refused.stdout
    assert b"Cipher is ECDHE" not in refused.stdout and b"Cipher is AES" not in refused.stdout
    accepted = s_client("ECDHE-ECDSA-AES128-GCM-SHA256")
    assert accepted.returncode == 0 and b"ECDHE-ECDSA-AES128-GCM-SHA256" in accepted.stdout
