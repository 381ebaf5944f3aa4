"""Reply values: rendering, parsing, validation (RFC 5321 §4.2, RFC 3463, RFC 2034)."""

import pytest

from mailboat.smtp import Reply, replies


@pytest.mark.parametrize(
    ("reply", "wire"),
    [
        (Reply.make(250, "2.1.0", "Ok"), b"250 2.1.0 Ok\r\n"),
        (Reply.make(550, "5.1.1", "No such", "user here"), b"550-5.1.1 No such\r\n550 5.1.1 user here\r\n"),
        (Reply(250, None, ("mx", "PIPELINING")), b"250-mx\r\n250 PIPELINING\r\n"),
        (Reply(354, None, ("Go ahead",)), b"354 Go ahead\r\n"),
        (Reply(334, None, ("",)), b"334 \r\n"),
        (Reply(221, (2, 0, 0), ()), b"221 2.0.0\r\n"),
        (Reply(250, None, ()), b"250 \r\n"),
    ],
)
def test_to_bytes(reply: Reply, wire: bytes) -> None:
    assert reply.to_bytes() == wire


@pytest.mark.parametrize(
    "reply",
    [
        Reply.make(250, "2.1.0", "Ok"),
        Reply.make(550, "5.1.1", "No such", "user here"),
        Reply(250, None, ("mx.example.com", "PIPELINING", "SIZE 10")),
        Reply(354, None, ("End data with <CR><LF>.<CR><LF>",)),
        Reply.make(421, "4.7.0", "Too many errors"),
        Reply(334, None, ("",)),
    ],
)
def test_parse_round_trip(reply: Reply) -> None:
    assert Reply.parse(reply.to_bytes()) == reply


def test_parse_without_text_and_status_only() -> None:
    assert Reply.parse(b"250\r\n") == Reply(250, None, ("",))
    assert Reply.parse(b"221 2.0.0\r\n") == Reply(221, (2, 0, 0), ("",))


def test_parse_status_class_must_match_code() -> None:
    # "4.0.0" under a 250 is text, not a status
    assert Reply.parse(b"250 4.0.0 hmm\r\n") == Reply(250, None, ("4.0.0 hmm",))


@pytest.mark.parametrize(
    "wire",
    [b"250 Ok", b"25 Ok\r\n", b"250-a\r\n251 b\r\n", b"250 a\r\n250 b\r\n", b"250-a\r\n", b"250x\r\n", b"099 x\r\n"],
)
def test_parse_rejects_malformed(wire: bytes) -> None:
    with pytest.raises(ValueError):
        Reply.parse(wire)


@pytest.mark.parametrize(
    ("code", "status", "lines"),
    [
        (199, None, ()),
        (600, None, ()),
        (250, (5, 0, 0), ()),
        (354, (3, 0, 0), ()),
        (550, None, ("a\r\n250 injected",)),
        (550, None, ("a\nb",)),
        (550, None, ("nul\x00",)),
    ],
)
def test_invalid_replies_refused(code: int, status: tuple[int, int, int] | None, lines: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        Reply(code, status, lines)


def test_make_rejects_bad_status() -> None:
    with pytest.raises(ValueError):
        Reply.make(250, "2.0", "x")


def test_classification() -> None:
    assert replies.OK.is_positive and not replies.OK.is_transient and not replies.OK.is_permanent
    assert replies.START_DATA.is_positive
    assert replies.TOO_MANY_RECIPIENTS.is_transient
    assert replies.MESSAGE_TOO_BIG.is_permanent
    assert replies.MESSAGE_TOO_BIG.status_text == "5.3.4"
    assert str(Reply.make(550, "5.1.1", "a", "b")) == "550-5.1.1 a / 550 5.1.1 b"


def test_catalogue_is_consistent() -> None:
    """Every catalogued reply is a Reply; all but 2yz greetings/3yz carry an enhanced status."""
    for name in dir(replies):
        value = getattr(replies, name)
        if isinstance(value, Reply) and value.code // 100 != 3:
            assert value.status is not None, name
