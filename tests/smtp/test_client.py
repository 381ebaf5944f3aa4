"""ClientConnection against our own ServerConnection, back to back, no sockets (RFC 5321, 2033, 2920)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_client_pair import Pair

from mailboat import smtp
from mailboat.smtp.client import ClientConnection, Closed, TlsReady, TransactionDone
from mailboat.smtp.outgoing import OutgoingRecipient, Transaction, normalize_line_endings, prepare_message

R = smtp.Reply.make


def test_pipelined_transaction_is_one_write_and_the_message_arrives_intact() -> None:
    pair = Pair()
    pair.ready()
    before = len(pair.writes)
    assert pair.send(b"Subject: x\r\n\r\n.leading dot\r\nbody\r\n", "b@x.example", "c@x.example") == \
        ["250 2.0.0 Ok: queued as TEST"] * 2
    # MAIL + 2 RCPT + DATA in one write, then the content: two round trips per message.
    assert len(pair.writes) - before == 2
    assert pair.writes[before] == (b"MAIL FROM:<a@client.example> SIZE=34\r\nRCPT TO:<b@x.example>\r\n"
                                   b"RCPT TO:<c@x.example>\r\nDATA\r\n")
    assert pair.messages == [b"Subject: x\r\n\r\n.leading dot\r\nbody\r\n"]
    assert pair.client.reusable
    assert pair.send(b"second\r\n", "b@x.example") == ["250 2.0.0 Ok: queued as TEST"]
    assert pair.messages[1] == b"second\r\n"
    assert pair.close().reply.code == 221


def test_bare_lf_and_cr_are_sent_as_crlf_and_a_missing_final_crlf_is_added() -> None:
    pair = Pair()
    pair.ready()
    assert pair.send(b"a\nb\rc\r\n.\n..\nend", "b@x.example")[0].startswith("250")
    assert pair.messages == [b"a\r\nb\r\nc\r\n.\r\n..\r\nend\r\n"]


def test_mixed_recipient_replies_each_recipient_keeps_its_own() -> None:
    refuse = {smtp.RcptTo: lambda e: R(550, "5.1.1", "no such user") if e.path.local_part == "bad" else
              R(451, "4.2.0", "greylisted") if e.path.local_part == "grey" else None}
    pair = Pair(hooks=refuse)
    pair.ready()
    assert pair.send(b"x\r\n", "ok@x.example", "bad@x.example", "grey@x.example") == [
        "250 2.0.0 Ok: queued as TEST", "550 5.1.1 no such user", "451 4.2.0 greylisted"]


def test_all_recipients_refused_then_rset_goes_with_the_next_mail() -> None:
    pair = Pair(hooks={smtp.RcptTo: lambda e: R(550, "5.1.1", "no") if e.path.local_part == "bad" else None})
    pair.ready()
    assert pair.send(b"x\r\n", "bad@x.example") == ["550 5.1.1 no"]
    assert pair.messages == []
    assert pair.send(b"y\r\n", "ok@x.example") == ["250 2.0.0 Ok: queued as TEST"]
    assert pair.writes[-2].startswith(b"RSET\r\nMAIL FROM:")
    assert pair.messages == [b"y\r\n"]


def test_mail_refused_decides_every_recipient() -> None:
    pair = Pair(hooks={smtp.MailFrom: lambda e: R(550, "5.7.1", "sender blocked")})
    pair.ready()
    assert pair.send(b"x\r\n", "a@x.example", "b@x.example") == ["550 5.7.1 sender blocked"] * 2


def test_data_refused_and_final_refused() -> None:
    pair = Pair(hooks={smtp.MessageComplete: lambda e: R(554, "5.7.0", "spam")})
    pair.ready()
    assert pair.send(b"x\r\n", "a@x.example") == ["554 5.7.0 spam"]
    pair = Pair(hooks={smtp.Data: lambda e: R(451, "4.3.0", "try later")})
    pair.ready()
    assert pair.send(b"x\r\n", "a@x.example") == ["451 4.3.0 try later"]


def test_lmtp_one_final_reply_per_accepted_recipient() -> None:
    def finals(rcpts):
        return [R(250, "2.0.0", f"delivered {p.local_part}") if p.local_part != "full" else
                R(452, "4.2.2", "over quota") for p in rcpts]

    pair = Pair(lmtp=True, finals=finals,
                hooks={smtp.RcptTo: lambda e: R(550, "5.1.1", "unknown") if e.path.local_part == "nobody" else None})
    pair.ready()
    assert pair.writes[0] == b"LHLO client.example\r\n"
    assert pair.send(b"x\r\n", "one@x", "nobody@x", "full@x", "two@x") == [
        "250 2.0.0 delivered one", "550 5.1.1 unknown", "452 4.2.2 over quota", "250 2.0.0 delivered two"]


def test_size_limit_refused_locally_with_5_3_4() -> None:
    pair = Pair(server_options={"max_message_size": 100})
    pair.ready()
    writes = len(pair.writes)
    assert pair.send(b"x" * 50 + b"\r\n" + b"y" * 60 + b"\r\n", "a@x.example")[0].startswith("552 5.3.4")
    assert len(pair.writes) == writes  # nothing was sent


def test_8bit_smtputf8_and_dsn_parameters_reach_the_server() -> None:
    pair = Pair()
    pair.ready()
    rcpt = OutgoingRecipient("bøb@x.example", notify=("SUCCESS", "FAILURE"), orcpt="rfc822;old+x@x.example")
    pair.send("Subject: é\r\n\r\nçà\r\n".encode(), rcpt, sender="å@client.example", smtputf8=True, ret="HDRS",
              envid="id+1=2")
    mail = next(e for e in pair.events if isinstance(e, smtp.MailFrom))
    assert mail.params.body == "8BITMIME" and mail.params.smtputf8
    assert (mail.params.ret, mail.params.envid) == ("HDRS", "id+1=2")
    rcpt_event = next(e for e in pair.events if isinstance(e, smtp.RcptTo))
    assert rcpt_event.params.notify == ("SUCCESS", "FAILURE")
    assert rcpt_event.params.orcpt == ("rfc822", "old+x@x.example")


def test_starttls_then_ehlo_again_and_capabilities_forgotten() -> None:
    pair = Pair(server_options={"starttls_available": True})
    pair.ready()
    assert "STARTTLS" in pair.client.capabilities
    pair.client.starttls()
    event = pair.next()
    assert isinstance(event, TlsReady) and event.reply.code == 220
    assert pair.client.capabilities  # still known until the handshake
    pair.client.tls_established()
    assert pair.client.capabilities == {}
    assert pair.next().reply.code == 250
    assert pair.client.tls_active and "STARTTLS" not in pair.client.capabilities
    assert pair.send(b"x\r\n", "a@x.example")[0].startswith("250")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b"\r\n.\r\n", b"\n.\n", b"..", b"\xc3\xa9"]),
                max_size=40))
def test_any_content_arrives_as_crlf_normalised_text_and_never_ends_early(parts: list[bytes]) -> None:
    message = b"".join(parts)
    pair = Pair()
    pair.ready()
    replies = pair.send(message, "a@x.example")
    assert replies[0].startswith("250"), replies
    expected = normalize_line_endings(message)
    if expected and not expected.endswith(b"\r\n"):
        expected += b"\r\n"
    assert pair.messages[0] == expected
    assert b"\r" not in expected.replace(b"\r\n", b"") and b"\n" not in expected.replace(b"\r\n", b"")
    assert len(pair.messages) == 1 and pair.client.reusable


def test_transaction_needs_ready_state() -> None:
    conn = ClientConnection("c.example")
    txn = Transaction("a@b", (OutgoingRecipient("c@d"),), prepare_message(b"x"))
    with pytest.raises(smtp.LocalProtocolError):
        conn.start_transaction(txn)
    assert isinstance(conn.next_event(), type(smtp.NEED_DATA))
    assert not isinstance(conn.next_event(), (Closed, TransactionDone))
