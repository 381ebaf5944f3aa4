"""ClientConnection against scripted, hostile or unusual servers: every reply byte is ours to choose."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailboat import smtp
from mailboat.smtp.client import (
    MAX_REPLY_LINE,
    ClientConnection,
    Closed,
    Greeting,
    HelloDone,
    TlsReady,
    TransactionDone,
)
from mailboat.smtp.outgoing import OutgoingRecipient, Transaction, prepare_message

EHLO_PLAIN = b"250-mx.example\r\n250-SIZE 1000\r\n250 8BITMIME\r\n"  # no PIPELINING: lock-step


def txn(*rcpts: str, message: bytes = b"hi\r\n", sender: str = "a@c.example", **kw) -> Transaction:
    return Transaction(sender, tuple(OutgoingRecipient(r) for r in rcpts), prepare_message(message), **kw)


def ready(ehlo: bytes = EHLO_PLAIN, lmtp: bool = False) -> ClientConnection:
    conn = ClientConnection("c.example", lmtp=lmtp)
    conn.receive_data(b"220 mx.example ESMTP\r\n")
    assert isinstance(conn.next_event(), Greeting)
    conn.hello()
    conn.data_to_send()
    conn.receive_data(ehlo)
    assert conn.next_event().reply.code == 250
    return conn


def step(conn: ClientConnection, reply: bytes) -> object:
    conn.receive_data(reply)
    return conn.next_event()


GARBAGE = [
    pytest.param(b"HELLO THERE\r\n", id="no-code"),
    pytest.param(b"220 ok\n250 smuggled\r\n", id="bare-LF-inside"),
    pytest.param(b"220 ok\rX\r\n", id="bare-CR-inside"),
    pytest.param(b"220-a\r\n250 b\r\n", id="codes-disagree"),
    pytest.param(b"600 too high\r\n", id="code-600"),
    pytest.param(b"199 too low\r\n", id="code-199"),
    pytest.param(b"220 nul\x00here\r\n", id="NUL"),
    pytest.param(b"22 short\r\n", id="two-digits"),
    pytest.param(b"220" + b"x" * (MAX_REPLY_LINE + 10), id="endless-line"),
    pytest.param(b"220-x\r\n" * 300 + b"220 x\r\n", id="too-many-lines"),
]


@pytest.mark.parametrize("data", GARBAGE)
def test_garbage_greeting_is_a_protocol_error(data: bytes) -> None:
    conn = ClientConnection("c.example")
    conn.receive_data(data)
    with pytest.raises(smtp.RemoteProtocolError):
        conn.next_event()
    assert isinstance(conn.next_event(), Closed)
    assert conn.abort_transaction(smtp.Reply.make(451, "4.4.2", "x")) is None


def test_garbage_in_the_middle_of_a_transaction_keeps_nothing_decided_by_it() -> None:
    conn = ready()
    conn.start_transaction(txn("b@x"))
    assert conn.data_to_send() == b"MAIL FROM:<a@c.example> SIZE=4\r\n"
    with pytest.raises(smtp.RemoteProtocolError):
        step(conn, b"250 ok\r\n\x16\x03\x01garbage\r\n")  # a 250 to MAIL, then junk
    result = conn.abort_transaction(smtp.Reply.make(451, "4.5.0", "protocol error"))
    assert [str(r) for r in result.replies] == ["451 4.5.0 protocol error"] and result.remote == (False,)


def test_unsolicited_reply_is_a_protocol_error() -> None:
    conn = ClientConnection("c.example")
    conn.receive_data(b"220 hi\r\n250 nobody asked\r\n")
    assert isinstance(conn.next_event(), Greeting)
    with pytest.raises(smtp.RemoteProtocolError):
        conn.next_event()


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_replies_split_anywhere_give_the_same_events(data: st.DataObject) -> None:
    wire = b"220-mx.example hello\r\n220 second line\r\n"
    cuts = sorted(data.draw(st.sets(st.integers(1, len(wire) - 1), max_size=6)))
    conn = ClientConnection("c.example")
    pieces = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    event = smtp.NEED_DATA
    for piece in pieces:
        assert event is smtp.NEED_DATA
        conn.receive_data(piece)
        event = conn.next_event()
    assert event == Greeting(smtp.Reply(220, None, ("mx.example hello", "second line")))


def test_lock_step_without_pipelining_and_mixed_replies() -> None:
    conn = ready()
    conn.start_transaction(txn("ok@x", "bad@x", "grey@x"))
    assert conn.data_to_send() == b"MAIL FROM:<a@c.example> SIZE=4\r\n"
    assert step(conn, b"250 2.1.0 ok\r\n") is smtp.NEED_DATA
    assert conn.data_to_send() == b"RCPT TO:<ok@x>\r\n"
    step(conn, b"250 2.1.5 ok\r\n")
    assert conn.data_to_send() == b"RCPT TO:<bad@x>\r\n"
    step(conn, b"550 5.1.1 unknown\r\n")
    assert conn.data_to_send() == b"RCPT TO:<grey@x>\r\n"
    step(conn, b"450 4.2.0 greylisted\r\n")
    assert conn.data_to_send() == b"DATA\r\n"
    step(conn, b"354 go\r\n")
    assert conn.data_to_send() == b"hi\r\n.\r\n"
    event = step(conn, b"250 2.0.0 queued\r\n")
    assert isinstance(event, TransactionDone)
    assert [str(r) for r in event.result.replies] == ["250 2.0.0 queued", "550 5.1.1 unknown",
                                                     "450 4.2.0 greylisted"]
    assert conn.reusable


def test_lock_step_all_refused_sends_no_data() -> None:
    conn = ready()
    conn.start_transaction(txn("bad@x"))
    conn.data_to_send()
    step(conn, b"250 ok\r\n")
    conn.data_to_send()
    event = step(conn, b"550 5.1.1 unknown\r\n")
    assert isinstance(event, TransactionDone) and conn.data_to_send() == b""
    conn.start_transaction(txn("ok@x"))
    assert conn.data_to_send() == b"RSET\r\n"  # the server still holds our MAIL FROM


def test_421_in_the_middle_decides_the_rest_and_closes() -> None:
    conn = ready()
    conn.start_transaction(txn("one@x", "two@x"))
    conn.data_to_send()
    step(conn, b"250 ok\r\n")
    step(conn, b"250 ok\r\n")
    event = step(conn, b"421 4.3.2 shutting down\r\n")
    assert [str(r) for r in event.result.replies] == ["421 4.3.2 shutting down"] * 2
    assert conn.next_event() == Closed(smtp.Reply.make(421, "4.3.2", "shutting down"))
    assert not conn.reusable


def test_eof_during_lmtp_finals_keeps_the_replies_already_received() -> None:
    conn = ready(b"250-lmtp.example\r\n250 PIPELINING\r\n", lmtp=True)
    conn.start_transaction(txn("one@x", "two@x"))
    conn.data_to_send()
    step(conn, b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 2.0.0 one saved\r\n")
    conn.receive_data(b"")
    assert conn.next_event() == Closed(None)
    result = conn.abort_transaction(smtp.Reply.make(451, "4.4.2", "lost connection"))
    assert [str(r) for r in result.replies] == ["250 2.0.0 one saved", "451 4.4.2 lost connection"]
    assert result.remote == (True, False)


def test_ehlo_refused_falls_back_to_helo_and_then_no_extension_is_used() -> None:
    conn = ClientConnection("c.example")
    step(conn, b"220 old.example\r\n")
    conn.hello()
    assert conn.data_to_send() == b"EHLO c.example\r\n"
    assert step(conn, b"502 5.5.1 what?\r\n") is smtp.NEED_DATA
    assert conn.data_to_send() == b"HELO c.example\r\n"
    event = step(conn, b"250 old.example\r\n")
    assert isinstance(event, HelloDone) and not conn.esmtp and conn.capabilities == {}
    conn.start_transaction(txn("b@x", message="é\r\n".encode()))
    assert conn.data_to_send() == b"MAIL FROM:<a@c.example>\r\n"  # no SIZE, no BODY


def test_smtputf8_needed_but_not_offered_fails_with_5_6_7_without_sending() -> None:
    conn = ready()
    conn.start_transaction(txn("bø@x.example"))
    event = conn.next_event()
    assert isinstance(event, TransactionDone)
    assert str(event.result.replies[0]).startswith("550 5.6.7") and event.result.remote == (False,)
    assert conn.data_to_send() == b""
    # An SMTPUTF8 envelope whose addresses and headers are ASCII needs nothing special.
    conn.start_transaction(txn("b@x.example", smtputf8=True, message="Subject: a\r\n\r\nbødy\r\n".encode()))
    assert conn.data_to_send().startswith(b"MAIL FROM:<a@c.example> SIZE=")


def test_starttls_response_injection_is_discarded() -> None:
    conn = ready(b"250-mx.example\r\n250-STARTTLS\r\n250 PIPELINING\r\n")
    conn.starttls()
    assert conn.data_to_send() == b"STARTTLS\r\n"
    # An attacker appends a fake EHLO reply without STARTTLS in the same plaintext segment.
    event = step(conn, b"220 2.0.0 go ahead\r\n250-mx.example\r\n250 SIZE 10\r\n")
    assert isinstance(event, TlsReady) and event.reply.code == 220
    assert conn.discarded_after_starttls > 0
    with pytest.raises(smtp.LocalProtocolError):
        conn.receive_data(b"250 more plaintext\r\n")
    conn.tls_established()
    assert conn.data_to_send() == b"EHLO c.example\r\n" and conn.capabilities == {}
    assert step(conn, b"250-mx.example\r\n250 PIPELINING\r\n").reply.code == 250
    assert conn.tls_active and set(conn.capabilities) == {"PIPELINING"}


def test_starttls_refused_stays_in_plaintext() -> None:
    conn = ready(b"250-mx.example\r\n250 STARTTLS\r\n")
    conn.starttls()
    conn.data_to_send()
    event = step(conn, b"454 4.7.0 TLS not available\r\n")
    assert isinstance(event, TlsReady) and event.reply.code == 454 and conn.reusable and not conn.tls_active


def test_commands_never_carry_cr_or_lf() -> None:
    conn = ready()
    with pytest.raises(smtp.LocalProtocolError):
        conn.start_transaction(txn("b@x\r\nRCPT TO:<evil@y>"))


def test_data_accepted_with_no_recipient_sends_an_empty_message() -> None:
    conn = ready(b"250-mx.example\r\n250 PIPELINING\r\n")
    conn.start_transaction(txn("bad@x"))
    conn.data_to_send()
    assert step(conn, b"250 ok\r\n550 no\r\n354 go\r\n") is smtp.NEED_DATA
    assert conn.data_to_send() == b".\r\n"  # RFC 2920 §3.1; never the message itself
    event = step(conn, b"554 no valid recipients\r\n")
    assert [str(r) for r in event.result.replies] == ["550 no"]
