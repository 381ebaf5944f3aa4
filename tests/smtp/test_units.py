"""Small units: LineReader, command argument parsers, capabilities, SASL helpers."""

from __future__ import annotations

import pytest

from mailboat import smtp
from mailboat.smtp import replies, sasl
from mailboat.smtp.commands import (
    ENDLESS_SLACK,
    MAX_AUTH_LINE,
    MAX_COMMAND_LINE,
    MAX_LINE,
    LineReader,
    LineTooLong,
    decode_line,
    parse_auth,
    parse_bdat,
    split_command,
)
from mailboat.smtp.errors import RemoteProtocolError

from dialog import converse


def read_all(pieces: list[bytes]) -> list[bytes | str]:
    reader, buf, out = LineReader(), b"", []
    for piece in pieces:
        buf += piece
        while True:
            pos, line = reader.read(buf, 0)
            buf = buf[pos:]
            if line is None:
                break
            if isinstance(line, LineTooLong):
                out.append("ENDLESS" if line.endless else "TOO LONG")
            else:
                out.append(line)
    return out


@pytest.mark.parametrize(
    "pieces",
    [
        [b"NOOP\r\nRSET\r\n"],
        [b"NOOP\r", b"\nRSET\r\n"],
        [b"NO", b"OP\r\nRS", b"ET\r", b"\n"],
    ],
)
def test_line_reader_splits_only_on_crlf(pieces: list[bytes]) -> None:
    assert read_all(pieces) == [b"NOOP", b"RSET"]


def test_line_reader_long_lines() -> None:
    assert read_all([b"x" * 600, b"\r", b"\nNOOP\r\n"]) == ["TOO LONG", b"NOOP"]
    assert read_all([b"NOOP " + b"x" * 600 + b"\r\nNOOP\r\n"]) == ["TOO LONG", b"NOOP"]
    assert read_all([b"AUTH PLAIN " + b"x" * 5000 + b"\r\n"]) == [b"AUTH PLAIN " + b"x" * 5000]
    # AUTH may be 12288 octets: a longer one is skipped past MAX_LINE, and the session goes on.
    assert read_all([b"AUTH PLAIN " + b"x" * (MAX_LINE + 10), b"\r", b"\nNOOP\r\n"]) == ["TOO LONG", b"NOOP"]


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        # 512 + ENDLESS_SLACK octets without CRLF: endless, whether or not a CRLF would follow.
        ([b"x" * (MAX_COMMAND_LINE + ENDLESS_SLACK)], ["ENDLESS"]),
        ([b"x" * (MAX_COMMAND_LINE + ENDLESS_SLACK - 1) + b"\r\nNOOP\r\n"], ["TOO LONG", b"NOOP"]),
        ([b"x" * (MAX_COMMAND_LINE + ENDLESS_SLACK) + b"\r\nNOOP\r\n"], ["ENDLESS"]),
        ([b"x" * (MAX_COMMAND_LINE + ENDLESS_SLACK - 1)], []),  # one octet short: still waiting
        ([b"x" * (MAX_COMMAND_LINE + ENDLESS_SLACK - 1) + b"\r"], []),  # the CR may start the CRLF
        # AUTH's bound is its own 12288 + ENDLESS_SLACK; nothing is read after an endless line.
        ([b"AUTH " + b"x" * (MAX_AUTH_LINE + ENDLESS_SLACK), b"\r\nNOOP\r\n"], ["ENDLESS"]),
        ([b"GET /"] + [b"x" * 65536] * 4 + [b"\r\nNOOP\r\n"], ["ENDLESS"]),
    ],
)
def test_line_reader_endless_lines(pieces: list[bytes], expected: list) -> None:
    assert read_all(pieces) == expected
    joined = b"".join(pieces)
    assert read_all([joined[i : i + 1000] for i in range(0, len(joined), 1000)]) == expected


@pytest.mark.parametrize(
    ("raw", "reply"),
    [(b"a\nb", replies.BAD_LINE_ENDING), (b"a\rb", replies.BAD_LINE_ENDING), (b"a\x00", replies.NUL_IN_COMMAND),
     (b"\xc3", replies.BAD_ENCODING)],
)
def test_decode_line_refusals(raw: bytes, reply: smtp.Reply) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_line(raw)
    assert info.value.reply == reply


def test_split_command() -> None:
    assert split_command("mail FROM:<a@b>") == ("MAIL", "FROM:<a@b>")
    assert split_command("NOOP") == ("NOOP", "")
    assert split_command("1234 x") == ("", "x")
    assert split_command("ÄÖ x")[0] == ""


@pytest.mark.parametrize(("arg", "result"),
                         [("0 LAST", (0, True)), ("10", (10, False)), ("7 last", (7, True)), ("5  LAST", (5, True))])
def test_parse_bdat(arg: str, result: tuple[int, bool]) -> None:
    assert parse_bdat(arg) == result


@pytest.mark.parametrize(
    ("arg", "result"),
    [("plain", ("PLAIN", None)), ("PLAIN =", ("PLAIN", "")), ("PLAIN AGEAYg==", ("PLAIN", "AGEAYg==")),
     ("X-OAUTH2 YWJj", ("X-OAUTH2", "YWJj"))],
)
def test_parse_auth(arg: str, result: tuple[str, str | None]) -> None:
    assert parse_auth(arg) == result


def test_parse_ehlo_round_trip() -> None:
    reply = smtp.ehlo_reply("mx", max_message_size=100, starttls=True, auth_mechanisms=("PLAIN", "LOGIN"))
    caps = smtp.parse_ehlo(smtp.Reply.parse(reply.to_bytes()))
    assert caps["SIZE"] == ("100",) and caps["AUTH"] == ("PLAIN", "LOGIN") and "STARTTLS" in caps


def test_sasl_helpers() -> None:
    assert sasl.decode_plain("AHVzZXIAcGFzcw==") == ("", "user", "pass")
    assert sasl.decode_plain("YWRtaW4AdXNlcgBwYXNz") == ("admin", "user", "pass")
    for bad in ("!!!", "dXNlcg==", "AAA="):
        with pytest.raises(ValueError):
            sasl.decode_plain(bad)
    assert sasl.LOGIN_USERNAME.to_bytes() == b"334 VXNlcm5hbWU6\r\n"
    assert sasl.challenge(b"").to_bytes() == b"334 \r\n"


def test_source_route_is_stripped_to_the_final_hop() -> None:
    conv = converse(b"EHLO c\r\nMAIL FROM:<a@b.example>\r\n"
                    b"RCPT TO:<@relay.example:victim@example.net>\r\nRCPT TO:<@example.com>\r\n")
    rcpt = conv.of_type(smtp.RcptTo)[0]
    assert rcpt.path.address == "victim@example.net" and rcpt.path.source_route == ("relay.example",)
    assert conv.last.startswith("501 5.1.3")
