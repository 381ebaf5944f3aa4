"""STARTTLS (RFC 3207, CVE-2011-0411) and AUTH (RFC 4954) handling."""

from __future__ import annotations

import base64

import pytest

from mailboat import smtp
from mailboat.smtp import replies

from dialog import converse

TLS = {"starttls_available": True}


def plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def test_starttls_discards_buffered_plaintext() -> None:
    conn = smtp.ServerConnection("mx", **TLS)
    conn.start()
    conn.receive_data(b"EHLO c\r\n")
    conn.next_event()
    conn.accept()
    conn.receive_data(b"STARTTLS\r\nMAIL FROM:<x@y.example>\r\n")
    assert conn.next_event() == smtp.StartTls()
    assert conn.data_to_send().endswith(b"220 2.0.0 Ready to start TLS\r\n")
    with pytest.raises(smtp.LocalProtocolError):
        conn.next_event()  # nothing may be read before the handshake
    with pytest.raises(smtp.LocalProtocolError):
        conn.receive_data(b"plaintext")
    conn.tls_established()
    assert conn.tls_active and conn.helo_name is None and not conn.esmtp
    assert conn.next_event() is smtp.NEED_DATA  # the injected MAIL is gone
    conn.receive_data(b"MAIL FROM:<x@y.example>\r\n")
    event = conn.next_event()
    assert isinstance(event, smtp.CommandRejected) and event.reply == replies.NEED_HELO


def test_starttls_in_one_segment_never_sees_the_injected_mail() -> None:
    conv = converse(b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<x@y.example>\r\n", **TLS)
    assert not conv.of_type(smtp.MailFrom)
    assert conv.last == "220 2.0.0 Ready to start TLS"
    conv2 = converse([b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<x@y.example>\r\n", b"MAIL FROM:<x@y.example>\r\n"], **TLS)
    assert conv2.last == "503 5.5.1 Error: send HELO/EHLO first"


def test_after_tls_ehlo_offers_auth_but_not_starttls() -> None:
    conv = converse([b"EHLO c\r\nSTARTTLS\r\n", b"EHLO c\r\n"], auth_mechanisms=("PLAIN",), **TLS)
    assert conv.last == "250 AUTH PLAIN"
    assert "250-STARTTLS" not in conv.lines[conv.lines.index("220 2.0.0 Ready to start TLS") :]


@pytest.mark.parametrize(
    ("chunks", "options", "expected"),
    [
        ([b"EHLO c\r\nSTARTTLS now\r\n"], TLS, "501 5.5.4 Syntax: STARTTLS"),
        ([b"EHLO c\r\nSTARTTLS\r\n", b"EHLO c\r\nSTARTTLS\r\n"], TLS, str(replies.TLS_ALREADY_ACTIVE)),
        ([b"EHLO c\r\nSTARTTLS\r\n"], {"tls_active": True, **TLS}, str(replies.TLS_ALREADY_ACTIVE)),
        ([b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nSTARTTLS\r\n"], TLS, str(replies.STARTTLS_IN_TRANSACTION)),
        ([b"EHLO c\r\nSTARTTLS\r\n"], {}, str(replies.NOT_IMPLEMENTED)),
    ],
)
def test_starttls_refusals(chunks: list[bytes], options: dict, expected: str) -> None:
    assert converse(chunks, **options).last == expected


def test_implicit_tls_has_no_starttls() -> None:
    conv = converse(b"EHLO c\r\n", tls_active=True, **TLS)
    assert "250-STARTTLS" not in conv.lines and "250 STARTTLS" not in conv.lines


def test_tls_established_resets_authentication() -> None:
    conn = smtp.ServerConnection("mx", auth_mechanisms=("PLAIN",), auth_requires_tls=False, **TLS)
    conn.start()
    conn.receive_data(f"EHLO c\r\nAUTH PLAIN {plain('user', 'pass')}\r\n".encode())
    conn.next_event()
    conn.accept()
    assert isinstance(conn.next_event(), smtp.Auth)
    conn.set_authenticated("user")
    conn.send(replies.AUTH_OK)
    assert conn.authenticated and conn.auth_identity == "user"
    conn.receive_data(b"STARTTLS\r\n")
    assert conn.next_event() == smtp.StartTls()
    conn.tls_established()
    assert not conn.authenticated and conn.auth_identity is None


# -- AUTH -----------------------------------------------------------------------------------

AUTH = {"auth_mechanisms": ("PLAIN", "LOGIN"), "tls_active": True}


def test_auth_plain_with_initial_response() -> None:
    conv = converse(f"EHLO c\r\nAUTH PLAIN {plain('user', 'pass')}\r\n".encode(), **AUTH)
    assert conv.last == "235 2.7.0 Authentication successful"
    assert conv.conn.authenticated and conv.conn.auth_identity == "user"
    assert conv.of_type(smtp.Auth)[0].initial_response == plain("user", "pass")


def test_auth_plain_with_challenge() -> None:
    conv = converse(f"EHLO c\r\nAUTH plain\r\n{plain('user', 'pass')}\r\n".encode(), **AUTH)
    assert conv.lines[-2:] == ["334 ", "235 2.7.0 Authentication successful"]
    assert conv.of_type(smtp.AuthResponse) == [smtp.AuthResponse(plain("user", "pass"))]


def test_auth_login() -> None:
    user, password = base64.b64encode(b"user").decode(), base64.b64encode(b"pass").decode()
    conv = converse(f"EHLO c\r\nAUTH LOGIN\r\n{user}\r\n{password}\r\n".encode(), **AUTH)
    assert conv.lines[-3:] == ["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6", "235 2.7.0 Authentication successful"]


def test_auth_failure_then_success() -> None:
    conv = converse(f"EHLO c\r\nAUTH PLAIN {plain('user', 'bad')}\r\nAUTH PLAIN {plain('user', 'pass')}\r\n"
                    .encode(), **AUTH)
    assert conv.lines[-2:] == ["535 5.7.8 Authentication credentials invalid", "235 2.7.0 Authentication successful"]


def test_auth_empty_initial_response() -> None:
    conv = converse(b"EHLO c\r\nAUTH PLAIN =\r\n", **AUTH)
    assert conv.of_type(smtp.Auth) == [smtp.Auth("PLAIN", "")]


@pytest.mark.parametrize(
    ("chunk", "options", "expected"),
    [
        (b"EHLO c\r\nAUTH PLAIN\r\n*\r\n", AUTH, "501 5.0.0 Authentication cancelled"),
        (b"EHLO c\r\nAUTH PLAIN\r\nnot base64!\r\n", AUTH, "501 5.5.2 *"),
        (b"EHLO c\r\nAUTH PLAIN\r\n" + b"A" * 13000 + b"\r\n", AUTH, "500 5.5.6 *"),
        (b"EHLO c\r\nAUTH CRAM-MD5\r\n", AUTH, "504 5.5.4 *"),
        (b"EHLO c\r\nAUTH\r\n", AUTH, "501 5.5.4 *"),
        (b"EHLO c\r\nAUTH PLAIN a b\r\n", AUTH, "501 5.5.4 *"),
        (b"EHLO c\r\nAUTH PLAIN @@@@\r\n", AUTH, "501 5.5.4 *"),
        (b"AUTH PLAIN\r\n", AUTH, "503 5.5.1 *"),
        (b"HELO c\r\nAUTH PLAIN\r\n", AUTH, "503 5.5.1 Error: send EHLO first"),
        (b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nAUTH PLAIN\r\n", AUTH, str(replies.AUTH_IN_TRANSACTION)),
        (b"EHLO c\r\nAUTH PLAIN\r\n", {"auth_mechanisms": ("PLAIN",)}, "538 5.7.11 *"),
        (b"EHLO c\r\nAUTH PLAIN\r\n", {}, "502 5.5.1 *"),
    ],
)
def test_auth_refusals(chunk: bytes, options: dict, expected: str) -> None:
    conv = converse(chunk, **options)
    assert smtp.Reply.parse(conv.last.encode() + b"\r\n")  # well-formed
    import re

    assert re.fullmatch(re.escape(expected).replace(r"\*", ".*"), conv.last), conv.lines
    assert not conv.conn.authenticated


def test_second_auth_refused() -> None:
    conv = converse(f"EHLO c\r\nAUTH PLAIN {plain('user', 'pass')}\r\nAUTH PLAIN\r\n".encode(), **AUTH)
    assert conv.last == str(replies.ALREADY_AUTHENTICATED)


def test_auth_after_cancel_returns_to_command_mode() -> None:
    conv = converse(b"EHLO c\r\nAUTH PLAIN\r\n*\r\nNOOP\r\n", **AUTH)
    assert conv.lines[-2:] == ["501 5.0.0 Authentication cancelled", "250 2.0.0 Ok"]


def test_sasl_lines_are_never_logged() -> None:
    secret = plain("user", "secret")
    conv = converse(f"EHLO c\r\nMAIL FROM:<a@b.example>\r\nAUTH PLAIN {secret}\r\n".encode(), **AUTH)
    rejected = conv.of_type(smtp.CommandRejected)
    assert rejected[-1].command == "AUTH PLAIN"
    conv = converse(b"EHLO c\r\nAUTH PLAIN\r\nbad!secret\r\n", **AUTH)
    assert "secret" not in conv.of_type(smtp.CommandRejected)[-1].command
    conv = converse(b"EHLO c\r\nAUTH\tPLAIN secret\r\nAUTH PLAIN secret " + b"x" * 13000 + b"\r\n", **AUTH)
    assert [r.command for r in conv.of_type(smtp.CommandRejected)] == ["AUTH PLAIN", "AUTH PLAIN"]


def test_auth_transaction_after_success() -> None:
    conv = converse(f"EHLO c\r\nAUTH PLAIN {plain('user', 'pass')}\r\nMAIL FROM:<a@b.example> AUTH=user\r\n"
                    .encode(), **AUTH)
    assert conv.last == "250 2.1.0 Ok"
    assert conv.of_type(smtp.MailFrom)[0].params.auth == "user"
