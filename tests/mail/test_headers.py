"""mail.headers: the quick look-ups (get_first, get_all with the name pre-check) must find exactly
what a full parse of the header section finds, for any header section."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mailboat.mail.headers import Field, get_all, get_first, parse_fields, split_message

NAMES = ["Message-ID", "message-id", "Authentication-Results", "Received", "X-Mailboat-Folder", "Subject"]
# Lines built from pieces that make the tricky cases likely: names at and away from line starts,
# folding, lines without a colon, bare LF, a leading colon, the name inside another field's value.
PIECES = st.sampled_from([
    "Message-ID", "message-id", "Authentication-Results", "Received", "Subject", "X-Other",
    ": ", ":", " ", "\t", "value", "<a@b>", "garbage", "\r\n", "\n", "\r\n ", "\r\n\t", "\r\n\r\n",
    "From ", "x ", "Message-ID:", "\r\nMessage-ID: <m@x>",
])


def full_parse_all(message: bytes, name: str) -> list[Field]:
    return [f for f in parse_fields(split_message(message)[0]) if f.name.lower() == name.lower()]


@settings(max_examples=3000, deadline=None)
@given(st.lists(PIECES, max_size=30), st.sampled_from(NAMES))
def test_quick_lookups_equal_a_full_parse(pieces: list[str], name: str) -> None:
    message = "".join(pieces).encode()
    expected = full_parse_all(message, name)
    assert get_all(message, name) == expected
    assert get_first(message, name) == (expected[0] if expected else None)


def test_get_first_finds_the_topmost_field() -> None:
    message = b"Received: x\r\nMessage-ID: <1@a>\r\nSubject: s\r\nMessage-ID: <2@a>\r\n\r\nMessage-ID: body\r\n"
    assert get_first(message, "message-id") == Field("Message-ID", b"Message-ID: <1@a>\r\n")
    assert get_first(message, "Authentication-Results") is None
    assert [f.raw for f in get_all(message, "Message-ID")] == [b"Message-ID: <1@a>\r\n", b"Message-ID: <2@a>\r\n"]


def test_a_mention_inside_a_value_is_not_a_field() -> None:
    message = b"Subject: about Message-ID: headers\r\nMessage-ID: <3@a>\r\n\r\n"
    assert get_first(message, "Message-ID") == Field("Message-ID", b"Message-ID: <3@a>\r\n")
