"""Driver misuse raises LocalProtocolError; client bytes never raise."""

from __future__ import annotations

import pytest

from mailboat import smtp
from mailboat.smtp import replies


def ready(data: bytes = b"", **options: object) -> smtp.ServerConnection:
    conn = smtp.ServerConnection("mx", **options)
    conn.start()
    conn.data_to_send()
    if data:
        conn.receive_data(data)
    return conn


def test_next_event_before_start() -> None:
    with pytest.raises(smtp.LocalProtocolError):
        smtp.ServerConnection("mx").next_event()


def test_start_twice_and_bad_greeting() -> None:
    conn = ready()
    with pytest.raises(smtp.LocalProtocolError):
        conn.start()
    with pytest.raises(smtp.LocalProtocolError):
        smtp.ServerConnection("mx").start(replies.OK)


def test_answers_without_a_decision() -> None:
    conn = ready()
    for call in (conn.accept, lambda: conn.send(replies.OK), lambda: conn.set_authenticated("u"), conn.tls_established):
        with pytest.raises(smtp.LocalProtocolError):
            call()


@pytest.mark.parametrize(
    ("data", "steps", "bad_reply"),
    [
        (b"EHLO c\r\n", 0, replies.START_DATA),
        (b"EHLO c\r\nMAIL FROM:<a@b.example>\r\n", 1, replies.START_DATA),
        (b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n", 3, replies.OK),
        (b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 0 LAST\r\n", 3, replies.START_DATA),
    ],
)
def test_reply_codes_are_checked(data: bytes, steps: int, bad_reply: smtp.Reply) -> None:
    conn = ready(data)
    for _ in range(steps):
        conn.next_event()
        conn.accept()
    event = conn.next_event()
    assert isinstance(event, smtp.DecisionEvent)
    with pytest.raises(smtp.LocalProtocolError):
        conn.send(bad_reply)
    assert conn.awaiting_reply  # the mistake did not consume the decision


def test_message_complete_has_no_default() -> None:
    conn = ready(b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 0 LAST\r\n")
    for _ in range(3):
        conn.next_event()
        conn.accept()
    assert conn.next_event() == smtp.MessageComplete(0)
    with pytest.raises(smtp.LocalProtocolError):
        conn.accept()


def test_235_requires_set_authenticated() -> None:
    conn = ready(b"EHLO c\r\nAUTH PLAIN\r\n", auth_mechanisms=("PLAIN",), tls_active=True)
    conn.next_event()
    conn.accept()
    assert conn.next_event() == smtp.Auth("PLAIN", None)
    with pytest.raises(smtp.LocalProtocolError):
        conn.accept()
    with pytest.raises(smtp.LocalProtocolError):
        conn.send(replies.AUTH_OK)
    conn.set_authenticated("me")
    conn.send(replies.AUTH_OK)
    assert conn.auth_identity == "me"


def test_receive_after_eof() -> None:
    conn = ready()
    conn.receive_data(b"")
    conn.receive_data(b"")  # repeated EOF is harmless
    with pytest.raises(smtp.LocalProtocolError):
        conn.receive_data(b"NOOP\r\n")


def test_closed_forever() -> None:
    conn = ready(b"QUIT\r\n")
    assert conn.next_event() == smtp.Quit()
    for _ in range(3):
        assert conn.next_event() == smtp.ConnectionClosed()
    assert conn.closed


def test_need_data_is_a_singleton() -> None:
    assert smtp.NeedData() is smtp.NEED_DATA
    assert repr(smtp.NEED_DATA) == "NEED_DATA"


def test_events_are_frozen() -> None:
    event = smtp.DataChunk(b"x")
    with pytest.raises(AttributeError):
        event.data = b"y"  # type: ignore[misc]
