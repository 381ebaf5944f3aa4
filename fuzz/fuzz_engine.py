"""atheris (libFuzzer) harness for the sans-I/O SMTP server engine, smtp.ServerConnection.

Each input picks engine options and read boundaries from its first bytes, then feeds the rest
through a session driven by an application that accepts everything (HELO, MAIL, RCPT, DATA,
AUTH after one 334, STARTTLS, end of message). Invariants checked on every input (h11's):

1. the engine never raises: client bytes only ever produce replies;
2. every output line is a well-formed reply line, and replies are complete at the end;
3. no second message from one DATA: DATA transactions that completed are at most the number
   of real CRLF.CRLF terminators in the input (SMTP smuggling, security.md §1), and without
   any CRLF.CRLF and any BDAT there is no completed message at all;
4. the same input delivered whole and cut at the chosen boundaries gives the same events and
   the same output (STARTTLS aside: what it discards depends on what was buffered, by design).

Run it (see fuzz/README.md):  .venv/bin/python fuzz/fuzz_engine.py fuzz/corpus -max_total_time=600
`drive()` is importable without atheris; tests/smtp/test_hostile_fuzz_regressions.py replays findings.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field

from mailboat import smtp

REPLY_LINE = re.compile(rb"[2-5][0-9][0-9][ -][^\r\n]*")
TERMINATOR = re.compile(rb"(?=\r\n\.\r\n)")


@dataclass
class Options:
    lmtp: bool = False
    starttls: bool = False
    tls_active: bool = True
    auth: bool = True
    max_message_size: int = 300
    max_recipients: int = 3
    max_errors: int = 12


@dataclass
class Outcome:
    events: list[object] = field(default_factory=list)
    output: bytes = b""
    data_messages: int = 0  # MessageComplete/MessageAborted that ended a DATA (not BDAT)
    messages: int = 0  # MessageComplete of any kind


def _answer(conn: smtp.ServerConnection, event: object, state: dict) -> None:
    """The accept-everything application."""
    match event:
        case smtp.Helo() | smtp.MailFrom() | smtp.RcptTo():
            conn.accept()
        case smtp.Data():
            state["in_data"] = True
            conn.accept()
        case smtp.MessageComplete():
            for _ in range(len(conn.accepted_recipients) if conn.lmtp else 1):
                conn.send(smtp.Reply.make(250, "2.0.0", "Ok: queued"))
        case smtp.Auth(initial_response=None):
            conn.send(smtp.Reply(334, None, ("",)))
        case smtp.Auth() | smtp.AuthResponse():
            conn.set_authenticated("user@example.org")
            conn.send(smtp.Reply.make(235, "2.7.0", "Authentication successful"))
        case smtp.StartTls():
            conn.tls_established()


def drive(chunks: list[bytes], options: Options) -> Outcome:
    """Feed `chunks` (one receive_data each, then EOF) through a fresh engine."""
    conn = smtp.ServerConnection(
        "mx.example.com", lmtp=options.lmtp, max_message_size=options.max_message_size,
        max_recipients=options.max_recipients, max_errors=options.max_errors,
        starttls_available=options.starttls, tls_active=options.tls_active,
        auth_mechanisms=("PLAIN", "LOGIN") if options.auth else (),
    )
    conn.start()
    outcome = Outcome()
    out = bytearray(conn.data_to_send())
    state = {"in_data": False}
    pending = [*chunks, b""]
    while True:
        event = conn.next_event()
        out += conn.data_to_send()
        if event is smtp.NEED_DATA:
            if not pending:
                raise AssertionError("NEED_DATA after EOF")
            conn.receive_data(pending.pop(0))
            continue
        if isinstance(event, smtp.ConnectionClosed):
            break
        if isinstance(event, smtp.MessageComplete | smtp.MessageAborted):
            if state["in_data"]:
                outcome.data_messages += 1
            outcome.messages += isinstance(event, smtp.MessageComplete)
            state["in_data"] = False
        outcome.events.append(event)
        _answer(conn, event, state)
        out += conn.data_to_send()
    outcome.output = bytes(out)
    return outcome


def normalised(events: list[object]) -> list[object]:
    """Merge each completed message's DataChunks (chunking follows the reads); drop the rest."""
    result: list[object] = []
    content: bytes | None = None
    for event in events:
        if isinstance(event, smtp.DataChunk):
            content = (content or b"") + event.data
            continue
        if isinstance(event, smtp.MessageComplete) and content is not None:
            result.append(smtp.DataChunk(content))
        content = None
        if not isinstance(event, smtp.MessageAborted | smtp.Reset):
            result.append(event)
    return result


def check_output(output: bytes) -> None:
    lines = output.split(b"\r\n")
    assert lines[-1] == b"", f"output does not end with CRLF: {output[-80:]!r}"
    open_reply = False
    for line in lines[:-1]:
        assert REPLY_LINE.fullmatch(line), f"not a reply line: {line[:120]!r}"
        open_reply = line[3:4] == b"-"
    assert not open_reply, "a multi-line reply was left unfinished"


def check(stream: bytes, cuts: list[int], options: Options) -> None:
    """All invariants for one input; raises AssertionError (or the engine's exception) on a finding."""
    whole = drive([stream], options)
    check_output(whole.output)
    terminators = len(TERMINATOR.findall(stream)) + (1 if b".\r\n" in stream else 0)
    assert whole.data_messages <= terminators, (whole.data_messages, terminators)
    if b"BDAT" not in stream.upper() and b"\r\n.\r\n" not in stream:
        # ".\r\n" as the very first DATA line also ends a message: "DATA\r\n.\r\n" has CRLF.CRLF.
        assert whole.messages == 0, "a message completed without CRLF.CRLF or BDAT"
    if b"STARTTLS" in stream.upper():
        return
    bounds = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    pieces = [stream[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]
    split = drive(pieces, options)
    assert split.output == whole.output, "output depends on read boundaries"
    assert normalised(split.events) == normalised(whole.events), "events depend on read boundaries"


def decode_input(data: bytes) -> tuple[bytes, list[int], Options]:
    """First byte: option flags; next byte: number of cuts; then 2 bytes per cut; rest: the stream."""
    if not data:
        return b"", [], Options()
    flags = data[0]
    options = Options(lmtp=bool(flags & 1), starttls=bool(flags & 2), tls_active=not flags & 2,
                      auth=not flags & 4, max_message_size=0 if flags & 8 else 300)
    ncuts = data[1] % 8 if len(data) > 1 else 0
    cuts = [int.from_bytes(data[2 + 2 * i:4 + 2 * i], "little") for i in range(ncuts)]
    return data[2 + 2 * ncuts:], cuts, options


def test_one_input(data: bytes) -> None:
    stream, cuts, options = decode_input(data)
    check(stream, cuts, options)


def main() -> None:
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
