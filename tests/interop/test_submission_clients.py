"""Submission with clients we did not write: swaks with AUTH over STARTTLS and over implicit TLS,
and OpenSSL's s_client for the STARTTLS command-injection case (CVE-2011-0411)."""

from __future__ import annotations

import re
import subprocess

import pytest

from interop_support import need_tool, our_received, run_peer

pytestmark = pytest.mark.interop


def swaks(server, kind: str, *args: str) -> tuple[int, str]:
    command = [need_tool("swaks"), "--server", f"127.0.0.1:{server.ports[kind]}", "--helo", "client.example.org",
               "--timeout", "10", *args]
    done = run_peer(command, timeout=30)
    return done.returncode, done.stdout


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_swaks_auth_over_starttls_relays_as_the_user(server, mechanism):
    code, out = swaks(server, "submission", "--tls", "--auth", mechanism, "--auth-user", "alice@example.com",
                      "--auth-password", "password123", "--from", "alice@example.com", "--to", "bob@example.com",
                      "--header", "From: alice@example.com")
    assert code == 0, out
    assert re.search(r"(?m)^<[-~]  235 2\.7\.0 ", out), out  # swaks writes <~ inside TLS
    assert "password123" not in server.log
    [message] = server.wait_messages("bob@example.com", 1)
    assert our_received(message)["proto"] == "ESMTPSA"


def test_swaks_implicit_tls_auth(server):
    code, out = swaks(server, "submissions", "--tlsc", "--auth", "PLAIN", "--auth-user", "bob@example.com",
                      "--auth-password", "password123", "--from", "bob@example.com", "--to", "alice@example.com",
                      "--header", "From: bob@example.com")
    assert code == 0, out
    [message] = server.wait_messages("alice@example.com", 1)
    hop = our_received(message)
    assert hop["proto"] == "ESMTPSA" and hop["tlsver"] in ("TLSv1.2", "TLSv1.3")


def test_swaks_wrong_password_and_auth_before_tls(server):
    code, out = swaks(server, "submission", "--tls", "--auth", "PLAIN", "--auth-user", "alice@example.com",
                      "--auth-password", "not-the-password", "--from", "alice@example.com", "--to", "bob@example.com")
    assert code != 0 and re.search(r"(?m)^<[-~*]+ *535 5\.7\.8 ", out), out
    # Without STARTTLS the server does not offer AUTH at all: swaks cannot even try.
    code, out = swaks(server, "submission", "--auth", "PLAIN", "--auth-user", "alice@example.com",
                      "--auth-password", "password123", "--from", "alice@example.com", "--to", "bob@example.com")
    assert code != 0 and "AUTH" not in re.findall(r"(?m)^<[-~]  250[- ](\S+)", out), out


def test_openssl_s_client_starttls_injection_is_not_executed(server):
    """The MITM case: a command in the same packet as STARTTLS must die with the plaintext."""
    openssl = need_tool("openssl")
    # s_client does the STARTTLS dance itself; we inject by sending plaintext with -starttls on a raw
    # socket first is not possible, so drive the injection by hand and let s_client verify the TLS side.
    import socket
    import ssl

    sock = socket.create_connection(("127.0.0.1", server.ports["smtp"]), timeout=10)
    sock.recv(1024)
    sock.sendall(b"EHLO client.example.org\r\n")
    sock.recv(4096)
    sock.sendall(b"STARTTLS\r\nMAIL FROM:<injected@example.org>\r\nRCPT TO:<alice@example.com>\r\n")
    assert sock.recv(1024).startswith(b"220 ")
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    tls = context.wrap_socket(sock, server_hostname="mx.test.example")
    tls.sendall(b"EHLO client.example.org\r\n")
    data = b""
    while not re.search(rb"(?m)^250 ", data):
        data += tls.recv(4096)
    tls.sendall(b"DATA\r\n")
    assert tls.recv(1024).startswith(b"503 5.5.1")  # no MAIL, no RCPT: the injected ones never ran
    tls.close()
    # And s_client itself negotiates STARTTLS with us.
    done = subprocess.run([openssl, "s_client", "-starttls", "smtp", "-connect", f"127.0.0.1:{server.ports['smtp']}",
                           "-quiet", "-ign_eof"], input="EHLO client.example.org\r\nQUIT\r\n", text=True,
                          capture_output=True, timeout=20)
    assert re.search(r"(?m)^250-PIPELINING", done.stdout) and "221 2.0.0" in done.stdout, done.stdout + done.stderr
    assert "STARTTLS" not in re.findall(r"(?m)^250[- ](\S+)", done.stdout)  # not offered again inside TLS
